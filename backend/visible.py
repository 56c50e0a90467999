"""Text from users and from Stripe, made safe to print on support's terminal.

A spend description, an email or an event's detail may hold escape sequences (``ESC [ 2 J`` clears the
screen, ``ESC ] 0 ;`` retitles it, and ``U+009B`` is the same CSI in one character), carriage returns and
newlines that forge table rows, backspaces that overwrite what was printed, or bidirectional overrides and
invisible characters that reorder or hide text. :func:`visible` writes each such character as an escape a
person can read: ``\\n``, ``\\r``, ``\\t`` by name, others as ``\\xHH`` (``\\x1b``, ``\\x08``, ``\\x9b``) or
``\\uHHHH`` / ``\\UHHHHHHHH`` (``\\u202e``, ``\\U000e0041``), as Python writes them, and leaves every other
character, accents, scripts and emoji included, as it is. The characters so written are Unicode's controls
(C0, DEL, C1), format characters (bidi marks, embeddings, overrides and isolates, zero-width characters,
the BOM, tag characters), the line and paragraph separators, and lone surrogates.

Every console output of the admin commands goes through it: tables, plain lines, one-line error messages
and the log lines a command writes on stderr. ``--json`` goes through :func:`visible_json`, whose output
parses to exactly the same values: JSON escapes C0 itself, and the rest are written as ``\\uHHHH`` escapes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# The categories of characters that move the cursor, reorder, hide or break lines: control, format,
# surrogate, line separator, paragraph separator.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ASCII_UNSAFE = re.compile("[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def unsafe(char: str) -> bool:
    """Whether one character must not reach a terminal as it is."""
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: object) -> str:
    """``text`` as a string with every control, format or line-breaking character written out as an escape."""
    text = text if isinstance(text, str) else str(text)
    if text.isascii():  # the common case, one regular expression
        return _ASCII_UNSAFE.sub(lambda match: _escape(match.group()), text)
    return "".join(_escape(char) if unsafe(char) else char for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes a character beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def visible_json(value: Any) -> str:
    """``value`` as indented JSON that parses back to exactly ``value``, readable (accents and scripts as they
    are) and with every character :func:`unsafe` finds written as a ``\\u`` escape."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    # json.dumps has escaped C0 within strings: a newline left is the indentation's, between values.
    if text.isascii():  # DEL is the one ASCII character left to escape
        return text.replace("\x7f", "\\u007f")
    return "".join(_json_escape(char) if char != "\n" and unsafe(char) else char for char in text)

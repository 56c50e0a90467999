"""Text from users and from Stripe, made safe to print on support's terminal.

A spend description, an email or an event's detail may hold escape sequences (``ESC [ 2 J`` clears the
screen, ``ESC ] 0 ;`` retitles it), carriage returns and newlines that forge table rows, or bidirectional
overrides that reorder what is shown. :func:`visible` writes each such character as an escape a person can
read (``\\x1b``, ``\\n``, ``\\u202e``), and leaves every other character, accents and scripts included, as
it is. Every console output of the admin commands goes through it; ``--json`` needs nothing (JSON escapes).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text (bidi embeddings,
# overrides and isolates, zero-width joiners and marks, the BOM, line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """``text`` as a string with every control or reordering character written out as an escape."""
    return _UNSAFE.sub(_escape, text if isinstance(text, str) else str(text))

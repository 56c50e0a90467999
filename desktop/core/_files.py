"""Small file helpers shared by the stores: atomic writes and moving a corrupt file aside."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def move_aside(path: Path) -> Path | None:
    """Rename a corrupt ``path`` to ``<path>.corrupt`` (replacing an older one); ``None`` if that failed."""
    target = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def tail_lines(path: Path, lines: int = 50, *, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``lines`` lines of a text file (reading at most its last ``max_bytes``); [] if unreadable."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    found = data.splitlines()
    if size > max_bytes and found:
        found = found[1:]  # the first line is probably cut
    return found[-lines:] if lines > 0 else []

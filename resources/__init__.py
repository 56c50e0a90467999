"""Data files shipped with Creditdesk: the pack catalogue, page templates and icons.

A package (not a loose folder) so that the files travel inside the wheel and are installed beside this module,
wherever the project is installed. Their users need real files (Jinja's loader reads a folder, Qt a path), so
they are found next to this module, without importlib.resources (which the app would otherwise load at start
for its icon).
"""

from pathlib import Path

_HERE = Path(__file__).parent


def path(name: str) -> Path:
    """The installed path of a bundled resource, e.g. ``path("packs.toml")``."""
    return _HERE / name

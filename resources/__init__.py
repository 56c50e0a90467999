"""Data files shipped with Creditdesk: the pack catalogue, page templates and icons.

A package (not a loose folder) so that the files travel inside the wheel and are
found with importlib.resources wherever the project is installed.
"""

from importlib.resources import files
from pathlib import Path


def path(name: str) -> Path:
    """The installed path of a bundled resource, e.g. ``path("packs.toml")``."""
    return Path(str(files(__name__).joinpath(name)))

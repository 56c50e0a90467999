"""Versions of installed packages, read from their metadata (never by importing them: importing PySide6 here
would be slow, and the core must not)."""

from __future__ import annotations

import importlib.metadata


def package_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None

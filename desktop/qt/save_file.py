"""The question "save where?" as the app's windows ask it: window-modal (the rest of the app keeps working), a
suggested name in the home folder stamped with the time, the answer arriving through a callback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget


def ask_where_to_save(parent: QWidget, title: str, stem: str, suffix: str, filters: str,
                      chosen: Callable[[str], None]) -> QFileDialog:
    """Open the question over ``parent``, suggesting ``~/{stem}-{YYYYmmdd-HHMMSS}.{suffix}``; ``chosen`` gets the
    path when the user picks one. The dialog is returned, for its owner to keep (and tests to answer)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dialog = QFileDialog(parent, title, str(Path.home() / f"{stem}-{stamp}.{suffix}"), filters)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix(suffix)
    dialog.fileSelected.connect(chosen)
    dialog.open()
    return dialog

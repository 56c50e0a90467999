"""The Qt binding itself: a known fault of one release would crash long sessions."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_calls_that_return_nothing_keep_none_alive(qtbot: object) -> None:
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per call like setText; after some
    thousands of them Python aborts with "none_dealloc". The pinned version must not."""
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
    assert sys.getrefcount(None) - before > -100

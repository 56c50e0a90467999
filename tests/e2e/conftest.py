"""The desktop app's window fixtures for the end-to-end tests, the same as in tests/desktop/qt."""

from tests.desktop.qt.conftest import en_us_locale, make_window, no_network_on_the_gui_thread

__all__ = ["en_us_locale", "make_window", "no_network_on_the_gui_thread"]

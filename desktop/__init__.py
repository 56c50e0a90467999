"""The Creditdesk desktop app (PySide6)."""

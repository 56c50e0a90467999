"""The Qt-free core of the desktop app: HTTP client, loopback callback, purchase flow, storage.

Nothing here imports PySide6 or the backend: every call is plain synchronous Python, with timeouts,
safe to run on a worker thread. The Qt layer wraps these in workers and signals.
"""

"""The Qt layer of the desktop app: windows, models and workers on top of :mod:`desktop.core`."""

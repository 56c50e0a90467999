"""``python -m desktop`` is the same as ``creditdesk``."""

from desktop.app import main

raise SystemExit(main())

"""``python -m backend`` is the same as ``creditdesk-backend``."""

from backend.cli import main

raise SystemExit(main())

"""The installed app's entry point (PyInstaller's script, see creditdesk.spec): ``creditdesk`` with its usual
arguments, or, behind the hidden first argument ``--serve-backend``, ``creditdesk-backend`` (the demo build's
bundled backend, which the app starts from its own executable: the bundle has no ``python -m backend``)."""

from __future__ import annotations

import sys


def main() -> int:
    from desktop.core.build_config import SERVE_BACKEND_ARG, current

    if len(sys.argv) > 1 and sys.argv[1] == SERVE_BACKEND_ARG:
        if not current().bundles_backend:
            print("creditdesk: this build bundles no backend", file=sys.stderr)
            return 2
        from backend.cli import main as backend_main

        sys.argv[0] = "creditdesk-backend"
        return backend_main(sys.argv[2:])
    from desktop.app import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

"""The installed app's entry point (PyInstaller's script, see creditdesk.spec): ``creditdesk`` with its usual
arguments, or, behind the hidden first argument ``--serve-backend``, ``creditdesk-backend`` (the demo build's
bundled backend, which the app starts from its own executable: the bundle has no ``python -m backend``).

It is also the launcher of updates: when the user's data folder holds a newer version (installed by the updater,
see desktop/core/updates.py), this executable runs that one in its place, after the new version's self-test at
its first start (a failed one goes back to the previous version)."""

from __future__ import annotations

import os
import subprocess
import sys


def launch_update(argv: list[str]) -> int | None:
    """Run the current updated version in this process's place; None: this bundle is the one to run."""
    from desktop.core.build_config import current

    installed = current().version
    if not installed or not getattr(sys, "frozen", False):
        return None
    from desktop.core.settings import AppPaths
    from desktop.core.updates import child_environment, launch_target

    plan = launch_target(AppPaths.default().data_dir, installed, os.environ)
    if plan.executable is None:
        return None
    env = child_environment(os.environ, installed, sys.executable)
    if sys.platform == "win32":  # no exec on Windows: the launcher waits for the version it started
        return subprocess.run([str(plan.executable), *argv], env=env).returncode  # noqa: S603
    os.execve(plan.executable, [str(plan.executable), *argv], env)  # noqa: S606
    return None  # not reached


def main() -> int:
    from desktop.core.build_config import SERVE_BACKEND_ARG, current

    if len(sys.argv) > 1 and sys.argv[1] == SERVE_BACKEND_ARG:
        if not current().bundles_backend:
            print("creditdesk: this build bundles no backend", file=sys.stderr)
            return 2
        from backend.cli import main as backend_main

        sys.argv[0] = "creditdesk-backend"
        return backend_main(sys.argv[2:])
    code = launch_update(sys.argv[1:])
    if code is not None:
        return code
    from desktop.app import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

"""Instructions a request costs, counted by valgrind's callgrind: the webhook and the spend against their baselines.

This machine's shared cores move a timed run by 5-10 % from one minute to the next (``bench/webhooks.py`` and
``bench/spends.py`` alternate rounds, and still do); an instruction count does not move. Each side's ASGI app is
driven in process, 8 requests at a time as the timed benchmarks send them, with the backend's logging, its start-up
heap settled, and the same baselines (``bench/webhooks.py``'s, ``bench/spends.py``'s). What is counted is the
process's user-space work for one request: the HTTP parsing of uvicorn and the kernel's part (syscalls, thread
switches) are not in it, so use it to compare code, and the timed benchmarks for what a user sees.

Each case runs twice under callgrind, with ``--requests`` and with a fifth of them; the difference divided by the
difference in requests leaves start-up out.

    .venv/bin/python bench/instructions.py [--requests 350] [--case webhook|spend ...]

Measured on 2026-12-06: the webhook 4.21M instructions against the baseline's 3.04M (4.50M that morning), the spend
2.44M against 1.94M (3.22M that morning; 1.83M before spends committed in groups, whose savepoints cost instructions
for the disk syncs and writes the group shares, which this count does not see and bench/spends.py does). Needs
``valgrind``; each run takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = ("webhook", "spend")
CONCURRENCY = 8


# --- one side in process (the child that callgrind counts) ----------------------------------------------------------


def drive(case: str, side: str, requests: int, seeded: Path, work: Path) -> None:
    """Send ``requests`` requests of ``case`` to ``side``'s app, 8 at a time, each answered 2xx."""
    import spends
    import webhooks

    from backend import cli, logs

    db_path = work / "db.sqlite3"
    shutil.copy(seeded / "db.sqlite3", db_path)
    logs.configure(logging.INFO, in_background=True)
    if case == "webhook":
        items = [webhooks.Seeded(**row) for row in json.loads((seeded / "seeded.json").read_text())][:requests]
        template = webhooks._session_template()
        bodies = [webhooks.build_event(template, item) for item in items]
        headers = [[(b"stripe-signature", webhooks.sign(body).encode())] for body in bodies]
        path = webhooks.BACKEND_PATH if side == "backend" else webhooks.BASELINE_PATH
    else:
        tokens = json.loads((seeded / "tokens.json").read_text())
        bodies = [json.dumps({"amount": 1, "idempotencyKey": f"k-{n}", "description": "Export a report"}).encode()
                  for n in range(requests)]
        headers = [[(b"authorization", f"Bearer {tokens[n % len(tokens)]}".encode())] for n in range(requests)]
        path = spends.BACKEND_PATH if side == "backend" else spends.BASELINE_PATH
    if side == "backend":
        from backend.api.app import create_app
        from backend.config import Settings
        from backend.services import Services

        env = {"CREDITDESK_DB": str(db_path)}
        if case == "webhook":
            env.update(STRIPE_SECRET_KEY="sk_test_bench", STRIPE_WEBHOOK_SECRET=webhooks.WEBHOOK_SECRET,  # noqa: S106
                       STRIPE_API_BASE="http://127.0.0.1:9")
        app: Any = create_app(Services.build(Settings.from_env(webhooks.child_env(**env)), "http://127.0.0.1:1"))
    else:
        app = (webhooks.baseline_app if case == "webhook" else spends.baseline_app)(db_path)
    cli.settle_heap()
    access = logging.getLogger("uvicorn.access")

    async def one(body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()), *extra],
                 "client": ("127.0.0.1", 5), "server": ("127.0.0.1", 8000), "state": {}}
        sent, status = False, 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            return {}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", path, "1.1", status)  # as uvicorn does
        if not 200 <= status < 300:
            raise SystemExit(f"{side} answered {status}")

    async def all_of_them() -> None:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def bounded(body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
            async with slots:
                await one(body, extra)

        await asyncio.gather(*(bounded(body, extra) for body, extra in zip(bodies, headers, strict=True)))

    asyncio.run(all_of_them())


# --- the parent: seed, run callgrind, subtract ------------------------------------------------------------------------


def seed(case: str, requests: int, folder: Path) -> None:
    import spends
    import webhooks

    folder.mkdir(parents=True, exist_ok=True)
    if case == "webhook":
        items = webhooks.seed(folder / "db.sqlite3", requests)
        (folder / "seeded.json").write_text(json.dumps([item.__dict__ for item in items]))
    else:
        (folder / "tokens.json").write_text(json.dumps(spends.seed(folder / "db.sqlite3", spends.USERS, 10**9)))


def instructions(case: str, side: str, requests: int, seeded: Path, tmp: Path) -> int:
    out = tmp / f"callgrind-{case}-{side}-{requests}.out"
    work = tmp / f"work-{case}-{side}-{requests}"
    work.mkdir()
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                    "--child", case, side, str(requests), str(seeded), str(work)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"^summary:\s+(\d+)", out.read_text(errors="replace"), re.MULTILINE)
    if found is None:
        raise SystemExit(f"callgrind wrote no summary to {out}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=350, help="requests in the longer run (default 350)")
    parser.add_argument("--case", choices=CASES, action="append", help="webhook, spend (default both)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, side, requests, seeded, work = args.child
        drive(case, side, int(requests), Path(seeded), Path(work))
        return 0
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    few = max(args.requests // 5, 1)
    with tempfile.TemporaryDirectory(prefix="creditdesk-instructions-") as name:
        tmp = Path(name)
        for case in args.case or CASES:
            seeded = tmp / f"seeded-{case}"
            seed(case, args.requests, seeded)
            per_request: dict[str, float] = {}
            for side in ("baseline", "backend"):
                counts = [instructions(case, side, n, seeded, tmp) for n in (few, args.requests)]
                per_request[side] = (counts[1] - counts[0]) / (args.requests - few)
            ratio = per_request["baseline"] / per_request["backend"]
            print(f"{case:8s} backend {per_request['backend'] / 1e6:5.2f}M instructions a request, baseline "
                  f"{per_request['baseline'] / 1e6:5.2f}M: the baseline's share {ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

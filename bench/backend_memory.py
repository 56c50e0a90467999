"""The bundled backend's resident memory when idle, against the bare stack it stands on.

Starts, ``--rounds`` times each and interleaved, (a) the backend as the desktop app starts it (``python -m
backend serve`` in stub mode on a SQLite database already at the newest schema) and (b) the baseline: the same
interpreter serving a one-route FastAPI app through uvicorn that reads one row through SQLAlchemy from SQLite,
the least a backend on this stack can be. Each is asked for its health once, then its resident size (VmRSS)
is read after a second of idling. Prints the medians, the spread and the ratio. Aim: the backend at most 70 MB.

Measured (three runs of 5 rounds, 2 shared cores): 69.0-69.1 MB (spread within a run 68.9-69.2) against 60.1 MB,
1.15x; it was 75.7 MB before the circuit breaker's library (which imports redis-py) and SQLAlchemy's PostgreSQL
dialect were left out of an idle SQLite backend. Grants, holds and auto top-up took it to 72.0-72.9 MB (2026-12-06);
Prometheus' client, now loaded only where metrics are served, and the rate limits' library, loaded at the first
request a limit applies to (a sign-in, a checkout; 1.5 MB then), brought it back to 69.1 MB (spread 69.1-69.2)
against 60.1. What is left above the floor: the backend's own modules and routes with their answers' models, the
currency table (``iso4217``) and argon2.

    .venv/bin/python bench/backend_memory.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AIM_MB = 70.0
BASELINE = """
import sys
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

engine = sa.create_engine("sqlite:///" + sys.argv[1])
app = FastAPI()

@app.get("/api/health")
def health() -> dict[str, object]:
    with engine.connect() as conn:
        return {"status": "ok", "one": conn.execute(sa.text("SELECT 1")).scalar()}

config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", ws="none")
uvicorn.Server(config).run()
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle_rss(command: list[str], url: str, env: dict[str, str]) -> float:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/api/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{command[:4]} never answered")
            time.sleep(0.05)
        time.sleep(1.0)
        return rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from backend import migrations
    from backend.db import Database

    backend, baseline = [], []
    with tempfile.TemporaryDirectory(prefix="creditdesk-bench-memory-") as tmp:
        db_path = Path(tmp) / "backend.sqlite3"
        db = Database(db_path)
        migrations.upgrade(db)
        db.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITDESK_"))}
        env["CREDITDESK_DB"] = str(db_path)
        for _ in range(args.rounds):
            port = free_port()
            backend.append(idle_rss([sys.executable, "-m", "backend", "serve", "--port", str(port),
                                     "--exit-with-stdin"], f"http://127.0.0.1:{port}", env))
            port = free_port()
            baseline.append(idle_rss([sys.executable, "-c", BASELINE, str(db_path), str(port)],
                                     f"http://127.0.0.1:{port}", env))
    ours, floor = statistics.median(backend), statistics.median(baseline)
    print(f"bundled backend, idle:        {ours:6.1f} MB  (spread {min(backend):.1f}-{max(backend):.1f})")
    print(f"FastAPI + SQLAlchemy, idle:   {floor:6.1f} MB  (spread {min(baseline):.1f}-{max(baseline):.1f})")
    print(f"ratio: {ours / floor:.2f}x; aim at most {AIM_MB:.0f} MB:", "met" if ours <= AIM_MB else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

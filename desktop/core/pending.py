"""Purchases in flight, remembered on disk so that a payment made after the app closed is still picked up.

One JSON file (``pending-purchases.json`` in the data dir), rewritten atomically on every change. Unfinished
purchases are kept until they finish or are removed; the last ``keep_finished`` finished ones are kept too, for
the diagnostics report. A corrupt file is renamed ``<name>.corrupt`` and treated as empty.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core._files import atomic_write_text, move_aside

log = logging.getLogger("creditdesk.pending")

FILE_VERSION = 1
FINISHED_STATUSES = frozenset({"paid", "failed", "expired", "cancelled", "refunded"})


def utcnow_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _norm_url(url: str) -> str:
    return url.rstrip("/")


def _norm_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class PendingPurchase:
    backend_url: str
    account_email: str
    session_id: str
    pack_id: str
    pack_name: str
    credits: int
    started_at: str = ""  # ISO 8601 UTC; filled in by ``add`` when empty
    status: str = "pending"
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingPurchase:
        names = {f.name for f in fields(cls)}
        item = cls(**{k: v for k, v in data.items() if k in names})
        if not all(isinstance(getattr(item, name), str) for name in
                   ("backend_url", "account_email", "session_id", "pack_id", "pack_name", "started_at", "status")):
            raise TypeError("a field is not a string")
        if not isinstance(item.credits, int) or not (item.finished_at is None or isinstance(item.finished_at, str)):
            raise TypeError("a field has the wrong type")
        return item


class PendingPurchases:
    """Thread-safe store of purchases in flight. Every method reads the file afresh, so two windows (or two
    app instances, barring a race between their writes) see each other's changes."""

    def __init__(self, path: Path, *, keep_finished: int = 20) -> None:
        self.path = Path(path)
        self.keep_finished = keep_finished
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"PendingPurchases({str(self.path)!r})"

    # -- file -------------------------------------------------------------------------------------------------

    def _load(self) -> list[PendingPurchase]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            return self._corrupt(f"unreadable ({type(exc).__name__})")
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("purchases"), list):
                raise ValueError("not a purchases file")
            return [PendingPurchase.from_json(item) for item in data["purchases"]]
        except (ValueError, TypeError, AttributeError) as exc:
            return self._corrupt(type(exc).__name__)

    def _corrupt(self, why: str) -> list[PendingPurchase]:
        moved = move_aside(self.path)
        log.warning("the pending purchases file %s was corrupt (%s); moved to %s and starting afresh",
                    self.path, why, moved)
        return []

    def _save(self, items: list[PendingPurchase]) -> None:
        unfinished = [p for p in items if not p.finished]
        finished = sorted((p for p in items if p.finished), key=lambda p: p.finished_at or "")
        finished = finished[-self.keep_finished:] if self.keep_finished > 0 else []
        kept = sorted(unfinished + finished, key=lambda p: p.started_at)
        payload = {"version": FILE_VERSION, "purchases": [asdict(p) for p in kept]}
        atomic_write_text(self.path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    # -- API --------------------------------------------------------------------------------------------------

    def add(self, purchase: PendingPurchase) -> PendingPurchase:
        """Remember a purchase (replacing one with the same session id)."""
        if not purchase.started_at:
            purchase = replace(purchase, started_at=utcnow_iso())
        purchase = replace(purchase, backend_url=_norm_url(purchase.backend_url))
        if purchase.status in FINISHED_STATUSES and purchase.finished_at is None:
            purchase = replace(purchase, finished_at=utcnow_iso())
        with self._lock:
            items = [p for p in self._load() if p.session_id != purchase.session_id]
            items.append(purchase)
            self._save(items)
        return purchase

    def update_status(self, session_id: str, status: str, *, finished: bool | None = None) -> PendingPurchase | None:
        """Record the latest payment status. ``finished`` defaults to whether ``status`` is final
        (paid, failed, expired, cancelled, refunded); a finished purchase gets ``finished_at``."""
        done = status in FINISHED_STATUSES if finished is None else finished
        with self._lock:
            items = self._load()
            for index, item in enumerate(items):
                if item.session_id == session_id:
                    finished_at = (item.finished_at or utcnow_iso()) if done else None
                    items[index] = replace(item, status=status, finished_at=finished_at)
                    self._save(items)
                    return items[index]
        return None

    def remove(self, session_id: str) -> bool:
        with self._lock:
            items = self._load()
            kept = [p for p in items if p.session_id != session_id]
            if len(kept) == len(items):
                return False
            self._save(kept)
            return True

    def get(self, session_id: str) -> PendingPurchase | None:
        with self._lock:
            return next((p for p in self._load() if p.session_id == session_id), None)

    def unfinished(self, backend_url: str, account_email: str) -> list[PendingPurchase]:
        """This account's purchases on this backend that have not finished, oldest first."""
        url, email = _norm_url(backend_url), _norm_email(account_email)
        with self._lock:
            return [p for p in self._load()
                    if not p.finished and p.backend_url == url and _norm_email(p.account_email) == email]

    def recent(self, n: int = 20) -> list[PendingPurchase]:
        """The ``n`` most recently started purchases, finished or not, newest first."""
        with self._lock:
            items = self._load()
        return sorted(items, key=lambda p: p.started_at, reverse=True)[:max(n, 0)]

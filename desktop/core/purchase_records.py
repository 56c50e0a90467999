"""Purchases, remembered on disk: those in flight, so that a payment made after the app closed is still picked
up, and the last finished ones, with their timeline, for the diagnostics report.

One JSON file (``pending-purchases.json`` in the data dir), rewritten atomically on every change. Purchases are
filed under the backend's stable identity (``backend_id``, see :mod:`desktop.core.identity`) and the account's
email. Unfinished purchases are kept until they finish or are removed; the last ``keep_finished`` finished ones
are kept too. A corrupt file is renamed ``<name>.corrupt`` and treated as empty. Files of version 1 (before
identities: purchases filed by URL) are read as filed under their URL's identity.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core._files import atomic_write_text, move_aside
from desktop.core.identity import normalize_url
from desktop.core.statuses import FINISHED_STATUSES

log = logging.getLogger("creditdesk.purchase_records")

FILE_VERSION = 2
MAX_EVENTS = 40

# Timeline events, in the order a purchase lives them.
CREATED, BROWSER_OPENED, BROWSER_FAILED, RETURNED, CONFIRMED, CREDITED = (
    "created", "browser_opened", "browser_failed", "returned", "confirmed", "credited",
)


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _norm_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class Event:
    event: str  # created, browser_opened, returned, confirmed, a status seen at the backend (paid, refunded, ...)
    at: str  # ISO 8601 UTC
    detail: str = ""


@dataclass(frozen=True)
class PurchaseRecord:
    backend_url: str  # where the backend was when the purchase started (the bundled one's port may change)
    account_email: str
    session_id: str
    pack_id: str
    pack_name: str
    credits: int
    started_at: str = ""  # ISO 8601 UTC; filled in by ``add`` when empty
    status: str = "pending"  # the last status the backend reported
    finished_at: str | None = None
    backend_id: str = ""  # the backend's identity; filled in from backend_url when empty
    order_id: str | None = None
    amount: int | None = None  # what the pack costs, in minor units
    currency: str | None = None
    checkout_url: str | None = None
    return_url: str | None = None  # where the app's loopback listener took the browser's hand-off
    state: str | None = field(default=None, repr=False)  # the listener's state, to listen there again
    last_checked_at: str | None = None  # when the app last had an answer from the backend about it
    tax: str | None = None  # the pack's tax at checkout ("exclusive": added on top; "inclusive"), for its words
    events: tuple[Event, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.backend_id:  # filed under its URL's identity (all that version 1 knew)
            object.__setattr__(self, "backend_id", normalize_url(self.backend_url))

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def with_event(self, event: str, at: str | None = None, detail: str = "") -> PurchaseRecord:
        return replace(self, events=(*self.events, Event(event, at or utcnow_iso(), detail))[-MAX_EVENTS:])

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = [asdict(e) for e in self.events]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PurchaseRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        raw_events = values.pop("events", None) or []
        if not isinstance(raw_events, list):
            raise TypeError("events is not a list")
        events = tuple(Event(str(e["event"]), str(e["at"]), str(e.get("detail", ""))) for e in raw_events)
        item = cls(**values, events=events)
        if not all(isinstance(getattr(item, name), str) for name in
                   ("backend_url", "account_email", "session_id", "pack_id", "pack_name", "started_at", "status",
                    "backend_id")):
            raise TypeError("a field is not a string")
        if not isinstance(item.credits, int) or not all(
            getattr(item, name) is None or isinstance(getattr(item, name), str)
            for name in ("finished_at", "order_id", "currency", "checkout_url", "return_url", "state",
                         "last_checked_at", "tax")
        ) or not (item.amount is None or isinstance(item.amount, int)):
            raise TypeError("a field has the wrong type")
        return item


class PurchaseRecords:
    """Thread-safe store of purchases. Every method reads the file afresh, so two windows (or two app instances,
    barring a race between their writes) see each other's changes. Writes go to disk: call from a worker."""

    def __init__(self, path: Path, *, keep_finished: int = 20) -> None:
        self.path = Path(path)
        self.keep_finished = keep_finished
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"PurchaseRecords({str(self.path)!r})"

    # -- file -------------------------------------------------------------------------------------------------

    def _load(self) -> list[PurchaseRecord]:
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
            return [PurchaseRecord.from_json(item) for item in data["purchases"]]
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            return self._corrupt(type(exc).__name__)

    def _corrupt(self, why: str) -> list[PurchaseRecord]:
        moved = move_aside(self.path)
        log.warning("the purchase records file %s was corrupt (%s); moved to %s and starting afresh",
                    self.path, why, moved)
        return []

    def _save(self, items: list[PurchaseRecord]) -> None:
        unfinished = [p for p in items if not p.finished]
        finished = sorted((p for p in items if p.finished), key=lambda p: p.finished_at or "")
        finished = finished[-self.keep_finished:] if self.keep_finished > 0 else []
        kept = sorted(unfinished + finished, key=lambda p: p.started_at)
        payload = {"version": FILE_VERSION, "purchases": [p.to_json() for p in kept]}
        atomic_write_text(self.path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    def _change(self, session_id: str, change: Any) -> PurchaseRecord | None:
        with self._lock:
            items = self._load()
            for index, item in enumerate(items):
                if item.session_id == session_id:
                    items[index] = change(item)
                    self._save(items)
                    return items[index]
        return None

    # -- API --------------------------------------------------------------------------------------------------

    def add(self, purchase: PurchaseRecord) -> PurchaseRecord:
        """Remember a purchase (replacing one with the same session id)."""
        if not purchase.started_at:
            purchase = replace(purchase, started_at=utcnow_iso())
        purchase = replace(purchase, backend_url=purchase.backend_url.rstrip("/"))
        if purchase.status in FINISHED_STATUSES and purchase.finished_at is None:
            purchase = replace(purchase, finished_at=utcnow_iso())
        with self._lock:
            items = [p for p in self._load() if p.session_id != purchase.session_id]
            items.append(purchase)
            self._save(items)
        return purchase

    def update_status(self, session_id: str, status: str, *, finished: bool | None = None,
                      checked_at: str | None = None) -> PurchaseRecord | None:
        """Record the order's latest status (and a timeline event when it changed). ``finished`` defaults to
        whether ``status`` is final; a finished purchase gets ``finished_at``. ``checked_at``: when the backend
        said so."""
        done = status in FINISHED_STATUSES if finished is None else finished

        def change(item: PurchaseRecord) -> PurchaseRecord:
            finished_at = (item.finished_at or utcnow_iso()) if done else None
            if status != item.status:
                item = item.with_event(status, checked_at)
            return replace(item, status=status, finished_at=finished_at,
                           last_checked_at=checked_at or item.last_checked_at)

        return self._change(session_id, change)

    def record(self, session_id: str, event: str, detail: str = "", at: str | None = None) -> PurchaseRecord | None:
        """Add a timeline event (``browser_opened``, ``returned``, ...)."""
        return self._change(session_id, lambda item: item.with_event(event, at, detail))

    def checked(self, session_id: str, at: str | None = None) -> PurchaseRecord | None:
        """The backend answered about it (with no news)."""
        return self._change(session_id, lambda item: replace(item, last_checked_at=at or utcnow_iso()))

    def remove(self, session_id: str) -> bool:
        with self._lock:
            items = self._load()
            kept = [p for p in items if p.session_id != session_id]
            if len(kept) == len(items):
                return False
            self._save(kept)
            return True

    def get(self, session_id: str) -> PurchaseRecord | None:
        with self._lock:
            return next((p for p in self._load() if p.session_id == session_id), None)

    def unfinished(self, backend_id: str, account_email: str) -> list[PurchaseRecord]:
        """This account's purchases on this backend that have not finished, oldest first."""
        email = _norm_email(account_email)
        with self._lock:
            return [p for p in self._load()
                    if not p.finished and p.backend_id == backend_id and _norm_email(p.account_email) == email]

    def refile(self, old_backend_id: str, new_backend_id: str) -> int:
        """File the purchases of ``old_backend_id`` under ``new_backend_id`` (the bundled backend's purchases of
        versions that filed them under its URL of the day); returns how many moved."""
        with self._lock:
            items = self._load()
            moved = [replace(p, backend_id=new_backend_id) if p.backend_id == old_backend_id else p for p in items]
            count = sum(1 for a, b in zip(items, moved, strict=True) if a is not b)
            if count:
                self._save(moved)
            return count

    def recent(self, n: int = 20, backend_id: str | None = None) -> list[PurchaseRecord]:
        """The ``n`` most recently started purchases (of ``backend_id``, if given), finished or not, newest first."""
        with self._lock:
            items = self._load()
        if backend_id is not None:
            items = [p for p in items if p.backend_id == backend_id]
        return sorted(items, key=lambda p: p.started_at, reverse=True)[:max(n, 0)]

    def all(self) -> list[PurchaseRecord]:
        with self._lock:
            return self._load()

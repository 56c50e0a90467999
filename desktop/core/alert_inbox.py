"""Which alerts this device has already shown as desktop notifications, and the per-kind switches (no Qt).

Alerts live on the backend; each is shown as a desktop notification exactly once per device and account,
whether it arrived while the app was open or while it was closed (the next start shows it). The ids already
shown are kept in one small JSON file (``alerts.json`` in the data folder), written atomically *before* the
notification is shown: a crash in between loses one notification rather than showing it twice. Alerts of a
kind switched off are noted as shown without a notification, so switching the kind on later does not bring
back old ones. The inbox in the window shows every alert regardless.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core._files import atomic_write_text, move_aside
from desktop.core.spend_models import PERIOD_WORDS, Alert

log = logging.getLogger("creditdesk.alerts")

FILE_VERSION = 1
KEEP_IDS = 2000  # per account: far more than the unread alerts anyone has
SUMMARY_ABOVE = 3  # more new alerts than this at once make one summary notification

KIND_LABELS = {
    "low_balance": "Low balance",
    "cap_80": "Spend cap at 80 %",
    "cap_100": "Spend cap",  # reached, or a spend refused for it: see title()
    "purchase_confirmed": "Purchase confirmed",
    "purchase_failed": "Purchase failed",
    "purchase_expired": "Checkout expired",
    "clawback": "Credits taken back",
    "clawback_reversed": "Credits given back",
    "topup_succeeded": "Auto top-up",
    "topup_threshold": "Balance below your top-up threshold",
    "topup_failed": "Auto top-up failed and is off",
    "topup_limit": "Auto top-up limit reached",
    "topup_undone": "Auto top-up undone",
    "credits_expiring": "Credits expiring",
    "test": "Test notification",
}
# Kinds the user can switch off ("test" always shows: it is how they check that notifications work).
SWITCHABLE = tuple(kind for kind in KIND_LABELS if kind != "test")


def label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def title(alert: Alert) -> str:
    """What a notification about ``alert`` is headed: what happened. The backend makes a ``cap_100`` alert when a
    spend reaches a cap and when one is refused for going over it (backend/alerts.py); its figures say which."""
    if alert.kind == "cap_100":
        cap, used, period = alert.data.get("cap"), alert.data.get("used"), str(alert.data.get("period", ""))
        if isinstance(cap, int) and isinstance(used, int) and used < cap:
            word = PERIOD_WORDS.get(period)
            return f"Spend refused: {word} cap" if word else "Spend refused: cap"
        return "Spend cap reached"
    return label(alert.kind)


@dataclass(frozen=True)
class Notice:
    """One desktop notification: a single alert, or a summary of several."""

    title: str
    message: str
    alerts: tuple[Alert, ...]


PURCHASE_KINDS = frozenset({"purchase_confirmed", "purchase_failed", "purchase_expired"})


def told_by_a_panel(new: list[Alert], sessions: Iterable[str]) -> tuple[list[Alert], list[Alert]]:
    """Split ``new`` into the alerts still to announce and those about a purchase whose panel in this window
    (one of ``sessions``) already told the user: a purchase is announced once, by its panel, not again by a
    notification and an unread alert."""
    shown = set(sessions)
    told = [a for a in new if a.kind in PURCHASE_KINDS and a.data.get("sessionId") in shown]
    return [a for a in new if a not in told], told


def told_by_a_refusal(new: list[Alert], refused_caps: Iterable[str]) -> tuple[list[Alert], list[Alert]]:
    """Split ``new`` into the alerts still to announce and the cap alerts of a refusal the Use credits dialog is
    showing (for a cap of one of the periods ``refused_caps``): a refused spend is told once, by that dialog."""
    refused = set(refused_caps)
    told = [a for a in new if a.kind == "cap_100" and a.data.get("period") in refused]
    return [a for a in new if a not in told], told


def notices(new: list[Alert], message: Callable[[Alert], str] = lambda alert: alert.message) -> list[Notice]:
    """The notifications for alerts that just arrived (newest first): one each, or one summary for many.
    ``message`` words an alert as the user reads it (the Qt layer's, with an expiry in local terms)."""
    if len(new) > SUMMARY_ABOVE:
        return [Notice(f"{len(new)} new Creditdesk alerts", f"Latest: {message(new[0])}", tuple(new))]
    return [Notice(title(a), message(a), (a,)) for a in reversed(new)]


class AlertInbox:
    """Thread-safe; every method reads the file afresh (and may write it): call it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def in_folder(cls, data_dir: Path) -> AlertInbox:
        return cls(Path(data_dir) / "alerts.json")

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("accounts", {}), dict):
                raise ValueError("not an alerts file")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            moved = move_aside(self.path)
            log.warning("the alerts file %s was unreadable (%s); moved to %s and starting afresh", self.path,
                        type(exc).__name__, moved)
            return {}

    def _save(self, data: dict[str, Any]) -> None:
        data["version"] = FILE_VERSION
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def muted(self) -> frozenset[str]:
        with self._lock:
            found = self._load().get("muted", [])
        return frozenset(k for k in found if isinstance(k, str)) if isinstance(found, list) else frozenset()

    def set_muted(self, kinds: Iterable[str]) -> frozenset[str]:
        chosen = frozenset(k for k in kinds if k in SWITCHABLE)
        with self._lock:
            data = self._load()
            data["muted"] = sorted(chosen)
            self._save(data)
        return chosen

    def take_new(self, account: str, alerts: Iterable[Alert]) -> list[Alert]:
        """Note ``alerts`` (the unread ones the backend has for ``account``) as shown on this device and return
        those to show now, newest first: not shown before, and of a kind switched on."""
        with self._lock:
            data = self._load()
            accounts = data.setdefault("accounts", {})
            entry = accounts.get(account)
            shown = {i for i in entry.get("shown", []) if isinstance(i, int)} if isinstance(entry, dict) else set()
            muted = set(data.get("muted", [])) if isinstance(data.get("muted"), list) else set()
            fresh = [a for a in alerts if a.id not in shown]
            if not fresh:
                return []
            shown.update(a.id for a in fresh)
            accounts[account] = {"shown": sorted(shown)[-KEEP_IDS:]}
            self._save(data)
        return sorted((a for a in fresh if a.kind == "test" or a.kind not in muted), key=lambda a: a.id,
                      reverse=True)

"""The purchase flow as a small, pure state machine: no threads, no I/O, no clock.

The Qt layer drives it. After every event it looks at ``state``:

* ``starting``: a checkout call is running; feed ``started(...)`` or ``start_failed(...)``.
* ``waiting``: the browser is open. Start a timer of ``next_poll_delay()`` seconds and call ``poll()`` when it
  fires; a browser callback (``callback(...)``) may come first.
* ``verifying``: run ``verify_payment`` now; feed ``verified(...)`` or ``verify_failed(...)``.
* a terminal state (``paid``, ``cancelled``, ``failed``, ``expired``, ``gave_up``): show the outcome; every later
  event is ignored (each event method returns whether it changed anything).

Payment statuses from the backend map to flow states like this: ``paid`` → paid; ``failed`` → failed;
``expired`` → expired; ``refunded`` → failed (the payment happened and was then refunded: no credits remain;
``payment_status`` says "refunded"); ``pending`` → keep waiting; ``cancelled`` from verify → keep waiting
(the user may still pay in the open tab), while a ``status=cancelled`` callback from the browser → cancelled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from desktop.core.callback import CallbackResult


class FlowState(StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    WAITING = "waiting"
    VERIFYING = "verifying"
    PAID = "paid"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"
    GAVE_UP = "gave_up"


TERMINAL_STATES = frozenset({FlowState.PAID, FlowState.CANCELLED, FlowState.FAILED, FlowState.EXPIRED,
                             FlowState.GAVE_UP})

PAYMENT_STATUSES = frozenset({"pending", "paid", "failed", "expired", "cancelled", "refunded"})

# Verify answers that end the flow; the others ("pending", "cancelled", anything unknown) keep it waiting.
_VERIFIED_TERMINAL = {
    "paid": FlowState.PAID,
    "failed": FlowState.FAILED,
    "expired": FlowState.EXPIRED,
    "refunded": FlowState.FAILED,
}


@dataclass(frozen=True)
class Transition:
    event: str
    before: FlowState
    after: FlowState


class PurchaseFlow:
    """One purchase, from "Buy" to its outcome.

    ``first_delay`` doubles after each poll up to ``max_delay``; ``jitter`` is the fraction (±) of random spread.
    ``rng`` can be seeded in tests.
    """

    def __init__(
        self, pack_id: str | None = None, *, first_delay: float = 2.0, max_delay: float = 30.0,
        jitter: float = 0.1, rng: random.Random | None = None,
    ) -> None:
        self.pack_id = pack_id
        self.state = FlowState.IDLE
        self.session_id: str | None = None
        self.checkout_url: str | None = None
        self.payment_status: str | None = None  # the last status the backend (or the browser) reported
        self.callback_status: str | None = None
        self.credits_granted = 0
        self.balance: int | None = None
        self.error: str | None = None  # the last error, as a sentence for the user
        self.verify_failures = 0  # consecutive
        self.polls = 0
        self.history: list[Transition] = []
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._jitter = jitter
        self._rng = rng or random.Random()  # jitter, not security
        self._delay = first_delay
        self._verify_soon = False
        self._retry_after: float | None = None

    def __repr__(self) -> str:
        return f"PurchaseFlow(state={self.state.value}, session_id={self.session_id!r}, pack_id={self.pack_id!r})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self.state is not FlowState.IDLE and not self.is_terminal

    def _move(self, event: str, after: FlowState) -> bool:
        before = self.state
        self.state = after
        self.history.append(Transition(event, before, after))
        return True

    # -- events -----------------------------------------------------------------------------------------------

    def begin(self, pack_id: str | None = None) -> bool:
        """The user chose a pack: a checkout call is about to run."""
        if self.state is not FlowState.IDLE:
            return False
        if pack_id is not None:
            self.pack_id = pack_id
        return self._move("begin", FlowState.STARTING)

    def started(self, session_id: str, url: str) -> bool:
        """The backend created the Checkout Session; the app opens ``url`` in the browser."""
        if self.state is not FlowState.STARTING:
            return False
        self.session_id = session_id
        self.checkout_url = url
        self.payment_status = "pending"
        self._delay = self._first_delay
        return self._move("started", FlowState.WAITING)

    def start_failed(self, error: str) -> bool:
        if self.state is not FlowState.STARTING:
            return False
        self.error = error
        return self._move("start_failed", FlowState.FAILED)

    def callback(self, result: CallbackResult) -> bool:
        """The browser came back to the loopback listener."""
        if self.state not in (FlowState.WAITING, FlowState.VERIFYING):
            return False
        if not result.state_ok or result.session_id != self.session_id:
            return False
        self.callback_status = result.status
        if result.status == "cancelled":
            self.payment_status = "cancelled"
            return self._move("callback", FlowState.CANCELLED)
        if self.state is FlowState.VERIFYING:
            # A verify is already running and may have been sent before the payment: verify again after it.
            self._verify_soon = True
            return True
        return self._move("callback", FlowState.VERIFYING)

    def poll(self) -> bool:
        """The poll timer fired: verify now. Ignored unless waiting."""
        if self.state is not FlowState.WAITING:
            return False
        self.polls += 1
        return self._move("poll", FlowState.VERIFYING)

    def verified(self, status: str, credits_granted: int = 0, balance: int | None = None) -> bool:
        """``verify_payment`` answered."""
        if self.state not in (FlowState.VERIFYING, FlowState.WAITING):
            return False
        self.payment_status = status
        self.credits_granted = credits_granted
        if balance is not None:
            self.balance = balance
        self.verify_failures = 0
        self._retry_after = None
        after = _VERIFIED_TERMINAL.get(status)
        if after is not None:
            if status == "refunded":
                self.error = "This payment was refunded."
            elif status == "failed":
                self.error = "The payment did not go through and nothing was charged."
            elif status == "expired":
                self.error = "The checkout expired before it was paid; nothing was charged."
            return self._move("verified", after)
        return self._move("verified", FlowState.WAITING)

    def verify_failed(self, error: str, *, fatal: bool = False, retry_after: float | None = None) -> bool:
        """``verify_payment`` failed. Not fatal (server unreachable, 429, 5xx): wait and poll again, no sooner
        than ``retry_after`` seconds. Fatal (e.g. 404 unknown session, signed out): the flow fails."""
        if self.state not in (FlowState.VERIFYING, FlowState.WAITING):
            return False
        self.error = error
        if fatal:
            return self._move("verify_failed", FlowState.FAILED)
        self.verify_failures += 1
        self._retry_after = retry_after
        return self._move("verify_failed", FlowState.WAITING)

    def give_up(self) -> bool:
        """The user stopped waiting. The payment may still complete: remember the session and verify later."""
        if self.is_terminal:
            return False
        return self._move("give_up", FlowState.GAVE_UP)

    # -- timing -----------------------------------------------------------------------------------------------

    def next_poll_delay(self) -> float:
        """Seconds until the next ``poll()``: 2, 4, 8, 16, 30, 30, ... (±jitter); 0 after a callback that came
        while a verify was running; at least a server's ``Retry-After``. Each call advances the backoff."""
        if self._verify_soon:
            self._verify_soon = False
            return 0.0
        base = self._delay
        self._delay = min(self._delay * 2, self._max_delay)
        delay = base * (1 + self._rng.uniform(-self._jitter, self._jitter))
        if self._retry_after is not None:
            delay = max(delay, self._retry_after)
            self._retry_after = None
        return max(0.0, delay)

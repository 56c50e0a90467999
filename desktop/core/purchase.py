"""The purchase flow as a small, pure state machine: no threads, no I/O, no clock.

The Qt layer drives it. After every event it looks at ``state``:

* ``starting``: a checkout call is running; feed ``started(...)`` or ``start_failed(...)``.
* ``waiting``: the browser is open. Start a timer of ``next_poll_delay()`` seconds and call ``poll()`` when it
  fires; a browser callback (``callback(...)``) or the user's "Check now" (``poll()``) may come first.
* ``verifying``: run ``verify_payment`` now; feed ``verified(...)`` or ``verify_failed(...)``.
* ``cancelling``: run ``cancel`` (``POST /api/billing/cancel``) now; feed ``cancel_answered(...)`` or
  ``cancel_failed(...)``.
* ``paused``: the backend no longer knows the sign-in (401). Nothing runs until ``signed_in_again()``.
* a terminal state (``paid``, ``cancelled``, ``failed``, ``expired``): show the outcome; every later event is
  ignored (each event method returns whether it changed anything).

Only the backend ends a purchase. A browser callback is a hint whatever its ``status`` says (anyone holding the
session id can make one up): it makes the flow verify at once, and the answer decides. Order statuses from
the backend map to flow states like this (``OUTCOMES``): ``paid`` → paid; ``cancelled`` → cancelled (the session
was expired at the provider: it can no longer be paid); ``expired`` → expired; ``failed``, ``refunded``,
``disputed`` and ``charged_back`` → failed, with a sentence saying which; ``pending`` and anything unknown →
keep waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from desktop.core.models import CallbackResult
from desktop.core.statuses import OrderStatus


class FlowState(StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    WAITING = "waiting"
    VERIFYING = "verifying"
    CANCELLING = "cancelling"
    PAUSED = "paused"
    PAID = "paid"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"


TERMINAL_STATES = frozenset({FlowState.PAID, FlowState.CANCELLED, FlowState.FAILED, FlowState.EXPIRED})
# States in which the purchase is in flight and the backend may still be asked about it.
_CHECKABLE = frozenset({FlowState.WAITING, FlowState.VERIFYING})

# Backend answers that end the flow (every finished status), with the sentence that says why where it did not
# end as paid.
S = OrderStatus
OUTCOMES: dict[str, tuple[FlowState, str | None]] = {
    S.PAID: (FlowState.PAID, None),
    S.CANCELLED: (FlowState.CANCELLED, "The checkout was cancelled. Nothing was charged."),
    S.EXPIRED: (FlowState.EXPIRED, "The checkout expired before it was paid; nothing was charged."),
    S.FAILED: (FlowState.FAILED, "The payment did not go through and nothing was charged."),
    S.REFUNDED: (FlowState.FAILED, "This payment was refunded."),
    S.DISPUTED: (FlowState.FAILED, "This payment is disputed with the bank."),
    S.CHARGED_BACK: (FlowState.FAILED, "The bank reversed this payment."),
}


@dataclass(frozen=True)
class Transition:
    event: str
    before: FlowState
    after: FlowState


class PurchaseFlow:
    """One purchase, from "Buy" to its outcome.

    The poll delay starts at ``first_delay`` and doubles after each poll up to ``max_delay``; after
    ``slow_after`` polls (the user has moved on) up to ``slow_max_delay``. ``jitter`` is the fraction (±) of
    random spread; ``rng`` can be seeded in tests.
    """

    def __init__(
        self, pack_id: str | None = None, *, first_delay: float = 2.0, max_delay: float = 30.0,
        slow_after: int = 20, slow_max_delay: float = 300.0, jitter: float = 0.1, rng: random.Random | None = None,
    ) -> None:
        self.pack_id = pack_id
        self.state = FlowState.IDLE
        self.session_id: str | None = None
        self.checkout_url: str | None = None
        self.payment_status: str | None = None  # the last status the backend reported
        self.callback_status: str | None = None  # what the browser's hand-off said (a hint)
        self.credits_granted = 0
        self.balance: int | None = None
        self.error: str | None = None  # the last error or outcome, as a sentence for the user
        self.verify_failures = 0  # consecutive
        self.polls = 0
        self.history: list[Transition] = []
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._slow_after = slow_after
        self._slow_max_delay = slow_max_delay
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

    @property
    def can_cancel(self) -> bool:
        return self.state in _CHECKABLE

    def _move(self, event: str, after: FlowState) -> bool:
        before = self.state
        self.state = after
        self.history.append(Transition(event, before, after))
        return True

    def _end(self, event: str, status: str) -> bool:
        """Move to the state the backend's ``status`` means; back to waiting when it does not end the flow."""
        outcome = OUTCOMES.get(status)
        if outcome is None:
            return self._move(event, FlowState.WAITING)
        after, sentence = outcome
        self.error = sentence
        return self._move(event, after)

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

    def resume(self, session_id: str, url: str | None, status: str = "pending") -> bool:
        """A purchase left in flight by an earlier run (or an earlier sign-in): verify it at once."""
        if self.state is not FlowState.IDLE:
            return False
        self.session_id = session_id
        self.checkout_url = url or None
        self.payment_status = status
        return self._move("resume", FlowState.VERIFYING)

    def callback(self, result: CallbackResult) -> bool:
        """The browser's hand-off reached the loopback listener: a hint to verify now, whatever it says."""
        if not result.state_ok or result.session_id != self.session_id:
            return False
        if self.state is FlowState.WAITING:
            self.callback_status = result.status
            return self._move("callback", FlowState.VERIFYING)
        if self.state in (FlowState.VERIFYING, FlowState.PAUSED):
            # A verify may be running that was sent before the payment (or none can run until the user signs
            # in again): verify again as soon as possible.
            self.callback_status = result.status
            self._verify_soon = True
            return True
        return False

    def poll(self) -> bool:
        """The poll timer fired, or the user asked to check now: verify now. Ignored unless waiting."""
        if self.state is not FlowState.WAITING:
            return False
        self.polls += 1
        return self._move("poll", FlowState.VERIFYING)

    def verified(self, status: str, credits_granted: int = 0, balance: int | None = None) -> bool:
        """``verify_payment`` answered."""
        if self.state not in _CHECKABLE:
            return False
        self.payment_status = status
        self.credits_granted = credits_granted
        if balance is not None:
            self.balance = balance
        self.verify_failures = 0
        self._retry_after = None
        if status not in OUTCOMES:
            self.error = None
        return self._end("verified", status)

    def verify_failed(self, error: str, *, fatal: bool = False, signed_out: bool = False,
                      retry_after: float | None = None) -> bool:
        """``verify_payment`` failed. ``signed_out`` (401): pause until the user signs in again; the purchase is
        not over. ``fatal`` (the backend does not know this session for this account): the flow fails.
        Otherwise (server unreachable, 429, 5xx): wait and poll again, no sooner than ``retry_after`` s."""
        if self.state not in _CHECKABLE:
            return False
        self.error = error
        if signed_out:
            return self._move("verify_failed", FlowState.PAUSED)
        if fatal:
            return self._move("verify_failed", FlowState.FAILED)
        self.verify_failures += 1
        self._retry_after = retry_after
        return self._move("verify_failed", FlowState.WAITING)

    def signed_in_again(self) -> bool:
        """The user signed in again after a 401: carry on checking."""
        if self.state is not FlowState.PAUSED:
            return False
        self.error = None
        self._verify_soon = False
        return self._move("signed_in_again", FlowState.VERIFYING)

    def cancel(self) -> bool:
        """The user cancels the purchase: the backend expires the session so that it can no longer be paid."""
        if not self.can_cancel:
            return False
        self._verify_soon = False
        return self._move("cancel", FlowState.CANCELLING)

    def cancel_answered(self, status: str, balance: int | None = None) -> bool:
        """The backend answered the cancel with the session's status (``paid`` if it was paid meanwhile)."""
        if self.state is not FlowState.CANCELLING:
            return False
        self.payment_status = status
        if balance is not None:
            self.balance = balance
        # The backend expired the session for the user; Stripe's own word for that may arrive first: "expired".
        return self._end("cancel_answered", "cancelled" if status == "expired" else status)

    def cancel_failed(self, error: str, *, signed_out: bool = False, retry_after: float | None = None) -> bool:
        """The cancel did not go through: the purchase is still in flight (and may still be paid)."""
        if self.state is not FlowState.CANCELLING:
            return False
        self.error = error
        if signed_out:
            return self._move("cancel_failed", FlowState.PAUSED)
        self._retry_after = retry_after
        return self._move("cancel_failed", FlowState.WAITING)

    # -- timing -----------------------------------------------------------------------------------------------

    def next_poll_delay(self) -> float:
        """Seconds until the next ``poll()``: 2, 4, 8, 16, 30, 30, ... and, after ``slow_after`` polls, up to
        ``slow_max_delay`` (±jitter); 0 after a callback that came while a verify was running; at least a
        server's ``Retry-After``. Each call advances the backoff."""
        if self._verify_soon:
            self._verify_soon = False
            return 0.0
        base = self._delay
        cap = self._slow_max_delay if self.polls >= self._slow_after else self._max_delay
        self._delay = min(self._delay * 2, cap)
        delay = base * (1 + self._rng.uniform(-self._jitter, self._jitter))
        if self._retry_after is not None:
            delay = max(delay, self._retry_after)
            self._retry_after = None
        return max(0.0, delay)

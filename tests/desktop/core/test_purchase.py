"""The purchase flow state machine (pure: no threads, no I/O), table-driven where it branches."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from desktop.core.callback import CallbackResult
from desktop.core.purchase import OUTCOMES, TERMINAL_STATES, FlowState, PurchaseFlow

F = FlowState


def waiting_flow(**kwargs: object) -> PurchaseFlow:
    flow = PurchaseFlow("starter", rng=random.Random(1), **kwargs)  # type: ignore[arg-type]
    assert flow.state is F.IDLE
    assert flow.begin()
    assert flow.state is F.STARTING
    assert flow.started("cs_1", "http://backend/stub/checkout/cs_1")
    assert flow.state is F.WAITING
    return flow


def in_state(state: FlowState) -> PurchaseFlow:
    """A flow brought to ``state`` through its events."""
    if state is F.IDLE:
        return PurchaseFlow("starter")
    if state is F.STARTING:
        flow = PurchaseFlow("starter")
        flow.begin()
        return flow
    flow = waiting_flow()
    steps: dict[FlowState, Callable[[PurchaseFlow], object]] = {
        F.WAITING: lambda f: None,
        F.VERIFYING: lambda f: f.poll(),
        F.CANCELLING: lambda f: f.cancel(),
        F.PAUSED: lambda f: (f.poll(), f.verify_failed("Sign in again.", signed_out=True)),
        F.PAID: lambda f: (f.poll(), f.verified("paid", 100, 100)),
        F.CANCELLED: lambda f: (f.cancel(), f.cancel_answered("cancelled")),
        F.FAILED: lambda f: (f.poll(), f.verified("failed")),
        F.EXPIRED: lambda f: (f.poll(), f.verified("expired")),
    }
    steps[state](flow)
    assert flow.state is state
    return flow


HINT = CallbackResult("cs_1", "paid")
EVENTS: dict[str, Callable[[PurchaseFlow], bool]] = {
    "begin": lambda f: f.begin(),
    "started": lambda f: f.started("cs_1", "u"),
    "start_failed": lambda f: f.start_failed("no"),
    "resume": lambda f: f.resume("cs_1", "u"),
    "callback": lambda f: f.callback(HINT),
    "callback_cancelled": lambda f: f.callback(CallbackResult("cs_1", "cancelled")),
    "poll": lambda f: f.poll(),
    "verified_pending": lambda f: f.verified("pending"),
    "verified_paid": lambda f: f.verified("paid", 100, 100),
    "verify_failed": lambda f: f.verify_failed("unreachable"),
    "verify_401": lambda f: f.verify_failed("Sign in again.", signed_out=True),
    "verify_404": lambda f: f.verify_failed("Unknown session.", fatal=True),
    "signed_in_again": lambda f: f.signed_in_again(),
    "cancel": lambda f: f.cancel(),
    "cancel_cancelled": lambda f: f.cancel_answered("cancelled"),
    "cancel_paid": lambda f: f.cancel_answered("paid", 100),
    "cancel_failed": lambda f: f.cancel_failed("unreachable"),
}

# (state, event) -> the state after it; every pair not listed is ignored (returns False, changes nothing).
TRANSITIONS: dict[tuple[FlowState, str], FlowState] = {
    (F.IDLE, "begin"): F.STARTING,
    (F.IDLE, "resume"): F.VERIFYING,
    (F.STARTING, "started"): F.WAITING,
    (F.STARTING, "start_failed"): F.FAILED,
    (F.WAITING, "callback"): F.VERIFYING,
    (F.WAITING, "callback_cancelled"): F.VERIFYING,  # a hint: the backend decides
    (F.WAITING, "poll"): F.VERIFYING,
    (F.WAITING, "verified_pending"): F.WAITING,
    (F.WAITING, "verified_paid"): F.PAID,
    (F.WAITING, "verify_failed"): F.WAITING,
    (F.WAITING, "verify_401"): F.PAUSED,
    (F.WAITING, "verify_404"): F.FAILED,
    (F.WAITING, "cancel"): F.CANCELLING,
    (F.VERIFYING, "callback"): F.VERIFYING,  # verify again right after this one
    (F.VERIFYING, "callback_cancelled"): F.VERIFYING,
    (F.VERIFYING, "verified_pending"): F.WAITING,
    (F.VERIFYING, "verified_paid"): F.PAID,
    (F.VERIFYING, "verify_failed"): F.WAITING,
    (F.VERIFYING, "verify_401"): F.PAUSED,
    (F.VERIFYING, "verify_404"): F.FAILED,
    (F.VERIFYING, "cancel"): F.CANCELLING,
    (F.CANCELLING, "cancel_cancelled"): F.CANCELLED,
    (F.CANCELLING, "cancel_paid"): F.PAID,
    (F.CANCELLING, "cancel_failed"): F.WAITING,
    (F.PAUSED, "callback"): F.PAUSED,  # remembered: verified once signed in again
    (F.PAUSED, "callback_cancelled"): F.PAUSED,
    (F.PAUSED, "signed_in_again"): F.VERIFYING,
}


@pytest.mark.parametrize("state", list(F), ids=str)
@pytest.mark.parametrize("event", list(EVENTS))
def test_transition_table(state: FlowState, event: str) -> None:
    flow = in_state(state)
    history = list(flow.history)
    changed = EVENTS[event](flow)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        assert not changed and flow.state is state and flow.history == history
    else:
        assert changed and flow.state is expected


def test_happy_path_through_the_callback() -> None:
    flow = waiting_flow()
    assert flow.callback(CallbackResult("cs_1", "paid"))
    assert flow.state is F.VERIFYING and flow.callback_status == "paid"
    assert flow.verified("paid", 100, 150)
    assert flow.state is F.PAID
    assert (flow.credits_granted, flow.balance, flow.payment_status) == (100, 150, "paid")
    assert flow.is_terminal and not flow.is_active
    assert [t.after for t in flow.history] == [F.STARTING, F.WAITING, F.VERIFYING, F.PAID]


def test_a_cancelled_callback_does_not_end_the_purchase_on_its_word() -> None:
    """Anyone holding the session id can forge the hand-off: only the backend's answer ends a purchase."""
    flow = waiting_flow()
    assert flow.callback(CallbackResult("cs_1", "cancelled"))
    assert flow.state is F.VERIFYING
    flow.verified("pending")  # the backend says it is still open: keep waiting
    assert flow.state is F.WAITING and flow.is_active
    flow.poll()
    flow.verified("paid", 100, 100)
    assert flow.state is F.PAID


def test_a_forged_paid_callback_grants_nothing_by_itself() -> None:
    flow = waiting_flow()
    flow.callback(CallbackResult("cs_1", "paid"))
    flow.verified("pending")
    assert flow.state is F.WAITING and flow.credits_granted == 0


def test_callback_for_another_session_or_bad_state_is_ignored() -> None:
    flow = waiting_flow()
    assert not flow.callback(CallbackResult("cs_other", "paid"))
    assert not flow.callback(CallbackResult("cs_1", "paid", state_ok=False))
    assert flow.state is F.WAITING


@pytest.mark.parametrize(("status", "state"), [
    ("paid", F.PAID), ("cancelled", F.CANCELLED), ("failed", F.FAILED), ("expired", F.EXPIRED),
    ("refunded", F.FAILED), ("disputed", F.FAILED), ("charged_back", F.FAILED),
    ("pending", F.WAITING), ("something_new", F.WAITING),
])
def test_verify_status_mapping(status: str, state: FlowState) -> None:
    flow = waiting_flow()
    flow.poll()
    flow.verified(status, 0, 0)
    assert flow.state is state and flow.payment_status == status
    if state in TERMINAL_STATES and state is not F.PAID:
        assert flow.error == OUTCOMES[status][1]


def test_a_401_pauses_until_signed_in_again_and_never_finishes_the_purchase() -> None:
    flow = waiting_flow()
    flow.poll()
    assert flow.verify_failed("Your sign-in has expired.", signed_out=True)
    assert flow.state is F.PAUSED and flow.is_active and not flow.is_terminal
    assert not flow.poll() and not flow.cancel()
    assert flow.callback(CallbackResult("cs_1", "paid"))  # noted for later
    assert flow.signed_in_again() and flow.state is F.VERIFYING and flow.error is None
    flow.verified("paid", 100, 100)
    assert flow.state is F.PAID


def test_cancel_while_a_verify_runs_ignores_the_verify_answer() -> None:
    flow = waiting_flow()
    flow.poll()
    assert flow.cancel() and flow.state is F.CANCELLING
    assert not flow.verified("pending")  # the verify's late answer does not undo the cancel
    assert flow.cancel_answered("cancelled") and flow.state is F.CANCELLED
    assert flow.error == "The checkout was cancelled. Nothing was charged."


def test_a_cancel_answered_expired_is_the_users_cancel() -> None:
    flow = waiting_flow()
    flow.cancel()
    assert flow.cancel_answered("expired") and flow.state is F.CANCELLED
    assert flow.error == "The checkout was cancelled. Nothing was charged." and flow.payment_status == "expired"


def test_a_failed_cancel_keeps_the_purchase_in_flight() -> None:
    flow = waiting_flow()
    flow.cancel()
    assert flow.cancel_failed("The payment provider could not be reached.", retry_after=5)
    assert flow.state is F.WAITING and flow.error == "The payment provider could not be reached."
    assert flow.next_poll_delay() >= 5


def test_resume_verifies_at_once() -> None:
    flow = PurchaseFlow("starter")
    assert flow.resume("cs_9", "http://backend/stub/checkout/cs_9")
    assert flow.state is F.VERIFYING and flow.session_id == "cs_9" and flow.payment_status == "pending"
    flow.verified("paid", 100, 100)
    assert flow.state is F.PAID


def test_start_failure() -> None:
    flow = PurchaseFlow("starter")
    flow.begin()
    assert flow.start_failed("The server is not answering.")
    assert flow.state is F.FAILED
    assert flow.error == "The server is not answering."


def test_verify_failures_count_until_an_answer() -> None:
    flow = waiting_flow()
    for n in (1, 2):
        flow.poll()
        flow.verify_failed("The server is not answering.")
        assert flow.state is F.WAITING and flow.verify_failures == n
    flow.poll()
    flow.verified("pending")
    assert flow.verify_failures == 0 and flow.error is None


def test_poll_delay_backs_off_to_a_cap_with_jitter_then_slows_down() -> None:
    flow = waiting_flow(first_delay=2, max_delay=30, slow_after=6, slow_max_delay=300, jitter=0.1)
    delays = []
    for _ in range(12):
        delays.append(flow.next_poll_delay())
        flow.poll()
        flow.verified("pending")
    bases = [2, 4, 8, 16, 30, 30, 30, 60, 120, 240, 300, 300]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.9 <= delay <= base * 1.1, (delays, bases)
    assert len(set(delays)) == len(delays)  # jittered


def test_poll_delay_respects_retry_after() -> None:
    flow = waiting_flow()
    flow.poll()
    flow.verify_failed("Too many requests.", retry_after=45)
    assert flow.next_poll_delay() >= 45
    assert flow.next_poll_delay() < 45


def test_a_callback_during_a_verify_asks_for_another_verify_at_once() -> None:
    flow = waiting_flow()
    flow.next_poll_delay()
    flow.poll()
    assert flow.callback(CallbackResult("cs_1", "paid"))
    assert flow.state is F.VERIFYING
    flow.verified("pending", 0, 0)  # the verify was sent before the payment
    assert flow.state is F.WAITING
    assert flow.next_poll_delay() == 0.0
    assert flow.next_poll_delay() > 0


def test_the_desktop_knows_the_backends_payment_statuses() -> None:
    """One list of statuses in the desktop (desktop/core/statuses.py), the same as the backend's; every finished
    one ends the flow."""
    from backend import order_status
    from desktop.core.statuses import FINISHED_STATUSES, ORDER_STATUSES

    assert set(order_status.STATUSES) == ORDER_STATUSES
    assert set(OUTCOMES) == FINISHED_STATUSES == ORDER_STATUSES - {"pending"}

"""The purchase flow state machine (pure: no threads, no I/O)."""

from __future__ import annotations

import random

import pytest

from desktop.core.callback import CallbackResult
from desktop.core.purchase import TERMINAL_STATES, FlowState, PurchaseFlow


def waiting_flow(**kwargs: object) -> PurchaseFlow:
    flow = PurchaseFlow("starter", rng=random.Random(1), **kwargs)  # type: ignore[arg-type]
    assert flow.state is FlowState.IDLE
    assert flow.begin()
    assert flow.state is FlowState.STARTING
    assert flow.started("cs_1", "http://backend/stub/checkout/cs_1")
    assert flow.state is FlowState.WAITING
    return flow


def test_happy_path_through_the_callback() -> None:
    flow = waiting_flow()
    assert flow.callback(CallbackResult("cs_1", "paid"))
    assert flow.state is FlowState.VERIFYING
    assert flow.verified("paid", 100, 150)
    assert flow.state is FlowState.PAID
    assert (flow.credits_granted, flow.balance, flow.payment_status) == (100, 150, "paid")
    assert flow.is_terminal and not flow.is_active
    assert [t.after for t in flow.history] == [
        FlowState.STARTING, FlowState.WAITING, FlowState.VERIFYING, FlowState.PAID]


def test_happy_path_by_polling_without_a_callback() -> None:
    flow = waiting_flow()
    assert flow.poll() and flow.state is FlowState.VERIFYING
    assert flow.verified("pending", 0, 0) and flow.state is FlowState.WAITING
    assert flow.poll()
    assert flow.verified("paid", 100, 100) and flow.state is FlowState.PAID
    assert flow.polls == 2


def test_start_failure() -> None:
    flow = PurchaseFlow("starter")
    flow.begin()
    assert flow.start_failed("The server is not answering.")
    assert flow.state is FlowState.FAILED
    assert flow.error == "The server is not answering."


def test_events_out_of_order_are_ignored() -> None:
    flow = PurchaseFlow()
    assert not flow.started("cs_1", "u")
    assert not flow.poll()
    assert not flow.verified("paid")
    assert not flow.callback(CallbackResult("cs_1", "paid"))
    assert flow.state is FlowState.IDLE
    assert flow.begin("pro") and flow.pack_id == "pro"
    assert not flow.begin()
    assert not flow.poll()


def test_callback_for_another_session_or_bad_state_is_ignored() -> None:
    flow = waiting_flow()
    assert not flow.callback(CallbackResult("cs_other", "paid"))
    assert not flow.callback(CallbackResult("cs_1", "paid", state_ok=False))
    assert flow.state is FlowState.WAITING


def test_cancelled_callback_is_terminal() -> None:
    flow = waiting_flow()
    assert flow.callback(CallbackResult("cs_1", "cancelled"))
    assert flow.state is FlowState.CANCELLED


def test_cancelled_from_verify_keeps_waiting() -> None:
    flow = waiting_flow()
    flow.poll()
    assert flow.verified("cancelled", 0, 0)
    assert flow.state is FlowState.WAITING
    assert flow.payment_status == "cancelled"
    flow.poll()
    flow.verified("paid", 100, 100)
    assert flow.state is FlowState.PAID


@pytest.mark.parametrize(("status", "state"), [
    ("failed", FlowState.FAILED), ("expired", FlowState.EXPIRED), ("refunded", FlowState.FAILED),
    ("pending", FlowState.WAITING), ("cancelled", FlowState.WAITING), ("something_new", FlowState.WAITING),
])
def test_verify_status_mapping(status: str, state: FlowState) -> None:
    flow = waiting_flow()
    flow.poll()
    flow.verified(status, 0, 0)
    assert flow.state is state
    if state in TERMINAL_STATES:
        assert flow.error


def test_late_and_duplicate_events_after_a_terminal_state_are_ignored() -> None:
    flow = waiting_flow()
    flow.callback(CallbackResult("cs_1", "paid"))
    flow.verified("paid", 100, 100)
    history = list(flow.history)
    assert not flow.callback(CallbackResult("cs_1", "paid"))
    assert not flow.callback(CallbackResult("cs_1", "cancelled"))
    assert not flow.verified("failed", 0, 0)
    assert not flow.verify_failed("boom")
    assert not flow.give_up()
    assert not flow.poll()
    assert not flow.start_failed("x")
    assert flow.state is FlowState.PAID and flow.balance == 100
    assert flow.history == history


def test_verify_failures_keep_polling_unless_fatal() -> None:
    flow = waiting_flow()
    flow.poll()
    assert flow.verify_failed("The server is not answering.")
    assert flow.state is FlowState.WAITING and flow.verify_failures == 1
    flow.poll()
    flow.verify_failed("again")
    assert flow.verify_failures == 2
    flow.poll()
    flow.verified("pending")
    assert flow.verify_failures == 0
    flow.poll()
    assert flow.verify_failed("No checkout session with that id belongs to this account.", fatal=True)
    assert flow.state is FlowState.FAILED


def test_give_up_from_any_active_state() -> None:
    for prepare in (lambda f: None, lambda f: f.poll()):
        flow = waiting_flow()
        prepare(flow)
        assert flow.give_up()
        assert flow.state is FlowState.GAVE_UP
        assert not flow.verified("paid", 100, 100)
    starting = PurchaseFlow()
    starting.begin()
    assert starting.give_up() and starting.state is FlowState.GAVE_UP


def test_poll_delay_backs_off_to_a_cap_with_jitter() -> None:
    flow = PurchaseFlow(first_delay=2, max_delay=30, jitter=0.1, rng=random.Random(7))
    delays = [flow.next_poll_delay() for _ in range(8)]
    for delay, base in zip(delays, [2, 4, 8, 16, 30, 30, 30, 30], strict=True):
        assert base * 0.9 <= delay <= base * 1.1
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
    assert flow.state is FlowState.VERIFYING
    flow.verified("pending", 0, 0)  # the verify was sent before the payment
    assert flow.state is FlowState.WAITING
    assert flow.next_poll_delay() == 0.0
    assert flow.next_poll_delay() > 0

"""The order state machine, pair by pair: every (status x happening) and where it leads."""

from __future__ import annotations

import itertools

import pytest

from backend.order_status import (
    AFTER_PAYMENT,
    CANCELLED,
    CHARGED_BACK,
    DISPUTED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REFUNDED,
    SETTLED,
    STATUSES,
    Happening,
    after_payment,
    next_status,
)

H = Happening
_ = None  # no change

# Rows: the status an order is in; columns: what happens. Read across: where it goes.
COLUMNS = (H.SESSION_PAID, H.SESSION_EXPIRED, H.PAYMENT_FAILED, H.CUSTOMER_CANCELLED,
           H.MONEY_KEPT, H.FULLY_REFUNDED, H.DISPUTE_OPEN, H.DISPUTE_LOST)
TABLE = {
    #               paid  expired  failed  cancelled   kept  refunded  disp.open  disp.lost
    PENDING:       (PAID, EXPIRED, FAILED, CANCELLED,  _,    _,        _,         _),
    CANCELLED:     (PAID, EXPIRED, FAILED, _,          _,    _,        _,         _),
    EXPIRED:       (PAID, _,       _,      _,          _,    _,        _,         _),
    FAILED:        (PAID, _,       _,      _,          _,    _,        _,         _),
    PAID:          (_,    _,       _,      _,          _,    REFUNDED, DISPUTED,  CHARGED_BACK),
    REFUNDED:      (_,    _,       _,      _,          PAID, _,        DISPUTED,  CHARGED_BACK),
    DISPUTED:      (_,    _,       _,      _,          PAID, REFUNDED, _,         CHARGED_BACK),
    CHARGED_BACK:  (_,    _,       _,      _,          PAID, REFUNDED, DISPUTED,  _),
}


@pytest.mark.parametrize(("status", "happening"), list(itertools.product(STATUSES, COLUMNS)),
                         ids=lambda v: str(v))
def test_every_pair(status: str, happening: Happening) -> None:
    assert next_status(status, happening) == TABLE[status][COLUMNS.index(happening)]


def test_the_table_covers_every_status_and_happening() -> None:
    assert set(TABLE) == set(STATUSES) and set(COLUMNS) == set(Happening)


def test_nothing_goes_backwards_once_money_was_taken() -> None:
    for status, happening in itertools.product(AFTER_PAYMENT, Happening):
        assert next_status(status, happening) in AFTER_PAYMENT | {None}


def test_a_session_found_paid_is_granted_from_every_unpaid_status() -> None:
    for status in set(STATUSES) - AFTER_PAYMENT:
        assert next_status(status, H.SESSION_PAID) == PAID


def test_cancelled_is_settled_and_becomes_expired_when_the_provider_says_so() -> None:
    assert CANCELLED in SETTLED and PENDING not in SETTLED
    assert next_status(CANCELLED, H.SESSION_EXPIRED) == EXPIRED


def test_an_unknown_status_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(ValueError, match="unknown order status"):
        next_status("refund_pending", H.SESSION_PAID)


@pytest.mark.parametrize(("refunded", "open_", "lost", "expected"), [
    (0, False, False, H.MONEY_KEPT),
    (999, False, False, H.MONEY_KEPT),
    (1000, False, False, H.FULLY_REFUNDED),
    (1001, False, False, H.FULLY_REFUNDED),
    (1000, True, False, H.DISPUTE_OPEN),  # an open dispute is what support must see first
    (0, True, True, H.DISPUTE_OPEN),
    (1000, False, True, H.DISPUTE_LOST),
])
def test_after_payment_the_money_facts_decide(refunded: int, open_: bool, lost: bool, expected: Happening) -> None:
    assert after_payment(amount=1000, refunded=refunded, disputes_open=open_, disputes_lost=lost) == expected

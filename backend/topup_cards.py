"""The card auto top-up charges: kept when a Checkout that asked to save it (auto top-up's first top-up) is paid.

Called by fulfilment in the transaction that grants the purchase, so that the card is known exactly when its
payment is. Only a user who has auto top-up settings keeps one (the app asks to save a card only for them); the
payment method itself is read from the provider later, off the request path (:mod:`backend.autotopup`).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, update

from backend.db import utcnow
from backend.payments.base import SAVE_CARD_KEY, SessionState
from backend.schema import auto_topups

log = logging.getLogger("creditdesk.payments")


def saves_card(session: SessionState) -> bool:
    return session.metadata.get(SAVE_CARD_KEY) == "save"


def remember(conn: Connection, user_id: int, session: SessionState) -> None:
    """The session's card is the one auto top-up charges from now on (its payment method read at the next top-up).
    Does not turn auto top-up on: only the user does."""
    changed = conn.execute(update(auto_topups).where(auto_topups.c.user_id == user_id).values(
        card_session=session.id, card_payment_intent=session.payment_intent, payment_method=None,
        updated_at=utcnow())).rowcount
    log.info("payment session=%s user=%s outcome=%s", session.id, user_id,
             "card_saved" if changed else "card_not_saved_no_settings")

"""What can go wrong in the backend, said in its own terms.

Every error the backend's logic raises for a caller to act on is one of these. None knows of HTTP:
the HTTP layer maps each class to the contract's status, code and message in one table
(:mod:`backend.api.errors`), and the admin commands say the same thing in a line of their own.
Errors that can pass carry ``retry_after`` (seconds): the condition is expected to clear by itself.
"""

from __future__ import annotations


class CreditdeskError(Exception):
    """The base of the backend's own errors; ``str(error)`` is for logs, never shown to a client."""

    def details(self) -> dict[str, object] | None:
        """Facts a client needs to act on this error (the answer's ``details``); ``None`` for most errors."""
        return None


class Retryable(CreditdeskError):
    """A passing condition: the same request may succeed in ``retry_after`` seconds."""

    def __init__(self, message: str = "", retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))

    @property
    def wait(self) -> str:
        """``retry_after`` as a person reads it: "45 seconds", "2 minutes", "1 hour" (rounded up)."""
        seconds = self.retry_after
        if seconds < 100:
            return f"{seconds} second{'s' if seconds != 1 else ''}"
        minutes = -(-seconds // 60)
        if minutes < 100:
            return f"{minutes} minutes"
        hours = -(-minutes // 60)
        return f"{hours} hour{'s' if hours != 1 else ''}"


# --- accounts ---------------------------------------------------------------------------------------


class NotSignedIn(CreditdeskError):
    """No bearer token, or one that is unknown, revoked or expired."""


class EmailTaken(CreditdeskError):
    pass


class InvalidCredentials(CreditdeskError):
    pass


class RateLimited(Retryable):
    """Too many requests of one kind from one client; counted by :mod:`backend.ratelimit`."""


class InvalidResetCode(CreditdeskError):
    """A password reset code that is wrong, expired, used, or past its wrong attempts (or no code was asked for
    that email): the same answer for each, so that it tells a guesser nothing."""


class MailUnavailable(Retryable):
    """The mail could not be sent (the SMTP server, or the outbox folder): nothing was changed."""


# --- buying -----------------------------------------------------------------------------------------


class UnknownPack(CreditdeskError):
    def __init__(self, pack_id: str) -> None:
        super().__init__(f"no pack {pack_id!r}")
        self.pack_id = pack_id


class InvalidReturnUrl(CreditdeskError):
    """Not ``http://127.0.0.1:<port>/...`` or ``http://[::1]:<port>/...``."""


class UnknownSession(CreditdeskError):
    """No checkout session with that id belongs to the signed-in user."""


class InvalidTaxId(CreditdeskError):
    """The payment provider does not accept the tax id given with the billing details (its number for its type)."""


class PaymentProcessing(CreditdeskError):
    """The checkout is complete and its payment (a bank debit) is still clearing: it can no longer be cancelled."""


# --- the payment provider ---------------------------------------------------------------------------


class PaymentProviderError(CreditdeskError):
    """The payment provider did not do what was asked."""


class PaymentProviderUnavailable(PaymentProviderError, Retryable):
    """The provider could not be reached, timed out, failed, or answered something other than what was
    asked for (a misconfigured ``STRIPE_API_BASE`` too): worth trying again later; nothing was charged."""


class PaymentProviderRejected(PaymentProviderError):
    """The provider refused the request for good (a 4xx other than not-found and rate limits): asking
    again will not help; the operator has to look at the log."""


class SessionNotFound(PaymentProviderError):
    """The provider does not know this Checkout Session."""


class MalformedSession(CreditdeskError, ValueError):
    """A ``checkout.session`` object that lacks what fulfilment needs."""


# --- the ledger -------------------------------------------------------------------------------------


class InsufficientCredits(CreditdeskError):
    """``amount`` is more than the credits available: the balance less what open holds reserve."""

    def __init__(self, balance: int, amount: int, reserved: int = 0) -> None:
        super().__init__(f"a spend of {amount} credits needs more than the {balance - reserved} available "
                         f"(balance {balance}, {reserved} reserved)")
        self.balance = balance
        self.amount = amount
        self.reserved = reserved

    @property
    def available(self) -> str:
        """What the answer's message says is there to spend."""
        if self.reserved:
            return (f"{self.balance - self.reserved} are available (a balance of {self.balance}, of which "
                    f"{self.reserved} are reserved by open holds)")
        return f"the balance is {self.balance}"


class IdempotencyConflict(CreditdeskError):
    """The idempotency key was used before for a different request."""


class DescriptionRequired(CreditdeskError):
    """The host asks every spend and hold to say what it is for (CREDITDESK_REQUIRE_DESCRIPTION) and this one
    does not."""


# --- holds ------------------------------------------------------------------------------------------


class UnknownHold(CreditdeskError):
    """No hold with that id belongs to the signed-in user."""


class HoldClosed(CreditdeskError):
    """The hold is no longer open (settled, voided or expired): each of its transitions happens once."""

    def __init__(self, hold_id: str, status: str) -> None:
        super().__init__(f"hold {hold_id} is {status}")
        self.hold_id = hold_id
        self.status = status

    def details(self) -> dict[str, object]:
        return {"holdId": self.hold_id, "status": self.status}


class AmountAboveHold(CreditdeskError):
    """A settle for more than the hold reserved."""

    def __init__(self, amount: int, held: int) -> None:
        super().__init__(f"a settle of {amount} is above the hold's {held}")
        self.amount = amount
        self.held = held

    def details(self) -> dict[str, object]:
        return {"amount": self.amount, "held": self.held}


# --- spend controls ---------------------------------------------------------------------------------


class InvalidAutoTopup(CreditdeskError):
    """Auto top-up settings that cannot work (an unknown pack, a monthly limit below its price, a missing field)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownTopup(CreditdeskError):
    """No top-up with that id belongs to the signed-in user."""


class TopupNotUndoable(CreditdeskError):
    """The top-up is not a paid one (a notice, in flight, failed, or undone already)."""

    def __init__(self, topup_id: str, status: str) -> None:
        super().__init__(f"top-up {topup_id} is {status}")
        self.topup_id = topup_id
        self.status = status

    def details(self) -> dict[str, object]:
        return {"topupId": self.topup_id, "status": self.status}


class UndoExpired(CreditdeskError):
    """Undo is offered for 24 hours after the top-up was paid, not after."""

    def __init__(self, topup_id: str, until: str) -> None:
        super().__init__(f"top-up {topup_id} could be undone until {until}")
        self.topup_id = topup_id
        self.until = until

    def details(self) -> dict[str, object]:
        return {"topupId": self.topup_id, "undoUntil": self.until}


class NothingToUndo(CreditdeskError):
    """Every credit of the top-up is spent: nothing is left to refund."""


class SpendCapReached(CreditdeskError):
    """The spend would take what is spent in a period over the user's cap for it."""

    def __init__(self, *, period: str, cap: int, used: int, amount: int, resets_at: str) -> None:
        super().__init__(f"a spend of {amount} is over the {period} cap of {cap} ({used} used)")
        self.period = period
        self.cap = cap
        self.used = used
        self.amount = amount
        self.resets_at = resets_at

    @property
    def period_word(self) -> str:
        return {"day": "daily", "week": "weekly", "month": "monthly"}.get(self.period, self.period)

    @property
    def this_period(self) -> str:
        return {"day": "today"}.get(self.period, f"this {self.period}")

    def details(self) -> dict[str, object]:
        return {"period": self.period, "cap": self.cap, "used": self.used, "resetsAt": self.resets_at}


class ConfirmationRequired(CreditdeskError):
    """The spend is above the user's "confirm above" threshold: repeat it with ``token`` to go ahead."""

    def __init__(self, *, token: str, amount: int, balance_after: int, threshold: int, retried: bool) -> None:
        super().__init__(f"a spend of {amount} is above the confirmation threshold of {threshold}")
        self.token = token
        self.amount = amount
        self.balance_after = balance_after
        self.threshold = threshold
        # A token came with the request but was not good for it (used, expired, another amount or key).
        self.retried = retried

    @property
    def why(self) -> str:
        if self.retried:
            return "The confirmation token is used, expired or for another spend; here is a new one."
        return f"It is above your confirmation threshold of {self.threshold} credits."

    def details(self) -> dict[str, object]:
        return {"confirmationToken": self.token, "amount": self.amount, "balanceAfter": self.balance_after}


class InvalidDateRange(CreditdeskError):
    """``from`` after ``to``, or a range with too many periods to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- webhooks ---------------------------------------------------------------------------------------


class WebhooksNotConfigured(CreditdeskError):
    """No ``STRIPE_WEBHOOK_SECRET``: no event can be verified, so none is accepted."""


class InvalidSignature(CreditdeskError):
    """The ``Stripe-Signature`` header is missing, does not match the body, or its time is out of bounds."""


class MalformedEvent(CreditdeskError, ValueError):
    """A signed body that is not an event we can process, now or ever (Stripe must not retry it)."""


class NoDatabase(CreditdeskError):
    """An admin command pointed at a database that is not there (a mistyped path): only ``serve`` and
    ``migrate`` make one."""


class RefusedEvent(CreditdeskError):
    """A signed event Creditdesk will never act on (text holding NUL): kept for support, answered 2xx so that
    Stripe stops sending it."""


class UnknownEvent(CreditdeskError):
    """No stored Stripe event with that id (or its body is past the retention period)."""


# --- support ----------------------------------------------------------------------------------------


class UnknownUser(CreditdeskError):
    """No account with that email."""


class UnknownOrder(CreditdeskError):
    """No order with that id."""


class InvalidSince(CreditdeskError):
    """A reconcile's ``--since`` that is not like 90m, 72h or 30d."""


class InvalidAdjustment(CreditdeskError):
    """An adjustment needs a whole, non-zero number of credits within bounds, and a reason."""


class AdjustmentBelowZero(CreditdeskError):
    """An adjustment would take a balance below zero, and nobody said that is meant (``--allow-negative``)."""

    def __init__(self, balance: int, after: int) -> None:
        super().__init__(f"this takes the balance from {balance:,} to {after:,}, below zero")
        self.balance = balance
        self.after = after


# --- the server itself ------------------------------------------------------------------------------


class ServerBusy(Retryable):
    """Too much of one kind of work at once (password hashing, provider calls) to take more now."""


class StorageUnavailable(Retryable):
    """The database cannot be read or written just now (locked, disk full, read-only, gone); nothing was
    changed."""

"""Refunds and their lifecycle (pending, requires_action, succeeded, failed, canceled), with Stripe's events."""

from __future__ import annotations

import copy
from typing import Any

from .state import REFUND_EVENT_STYLES, FakeStripeState, StripeChange
from .wire import (
    PAYMENT_LIST_PARAMS,
    StripeError,
    as_dict,
    as_int,
    check_keys,
    fixture,
    format_amount,
    list_filter,
    list_object,
    new_id,
    no_such,
    valid_metadata,
    words,
)

REFUND_CREATE_PARAMS = words(
    "amount charge currency customer expand instructions_email metadata origin payment_intent "
    "reason refund_application_fee reverse_transfer"
)
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
#: a new refund's status; it moves on to a final one later (``settle_refund``)
REFUND_OPEN_STATUSES = ("pending", "requires_action")
REFUND_FINAL_STATUSES = ("succeeded", "failed", "canceled")
#: what Stripe says in ``failure_reason``
REFUND_FAILURE_REASONS = words(
    "charge_for_pending_refund_disputed declined expired_or_canceled_card insufficient_funds "
    "lost_or_stolen_card merchant_request unknown"
)
#: the moves a refund can make at Stripe: a succeeded refund can still fail (a closed card, say)
REFUND_MOVES = {
    "pending": ("succeeded", "failed", "canceled"),
    "requires_action": ("succeeded", "failed", "canceled"),
    "succeeded": ("failed",),
}


def _style(style: str | None, default: str) -> str:
    chosen = default if style is None else style
    if chosen not in REFUND_EVENT_STYLES:
        raise ValueError(f"refund events must be one of {REFUND_EVENT_STYLES}, not {chosen!r}")
    return chosen


def _sent(style: str, event_type: str) -> bool:
    """Whether a refund event of ``event_type`` is made in ``style``: refund.* and/or charge.*."""
    return style == "both" or event_type.startswith(f"{style}.")


class RefundsMixin(FakeStripeState):
    """Refunds of a paid session's charge, made by the test or by ``POST /v1/refunds``."""

    # ---- what the test does -----------------------------------------------------------------------

    def create_refund(
        self,
        session_id: str,
        amount: int | None = None,
        *,
        status: str = "succeeded",
        reason: str | None = None,
        events: str | None = None,
        currency: str | None = None,
        livemode: bool = False,
        deliver: bool = True,
    ) -> StripeChange:
        """Refund ``amount`` (default: all that is left) of a paid session's charge.

        ``status``: "succeeded" (cards, at once), "pending" or "requires_action" (settled later with
        ``settle_refund``). Events: ``refund.created`` and ``charge.refunded`` (whose charge has the new
        ``amount_refunded`` and no ``refunds`` list), as ``events`` (default ``fake.refund_events``)
        chooses: "both", "refund" (only refund.*) or "charge" (only charge.*). ``currency`` labels the
        refund (and the charge in its event) with another currency than the payment's; ``livemode=True``
        makes its events live-mode ones. Refunds that are pending, requires_action or succeeded count in
        the charge's ``amount_refunded``, as at Stripe.
        """
        if status not in ("succeeded", *REFUND_OPEN_STATUSES):
            raise ValueError(f"a new refund is succeeded, pending or requires_action, not {status!r}")
        with self._lock:
            charge = self._paid_charge(session_id)
            try:
                change = self._refund(
                    charge,
                    amount,
                    status=status,
                    reason=reason,
                    metadata={},
                    style=_style(events, self.refund_events),
                    currency=currency,
                    livemode=livemode,
                )
            except StripeError as exc:
                raise ValueError(exc.message) from None
        self._send(change.events, deliver)
        return change

    def refund(self, session_id: str, amount: int | None = None, *, deliver: bool = True, **options: Any) -> dict:
        """``create_refund(...)``, answering only its ``charge.refunded`` event (the first event when the
        refund makes none); kept for the tests written when that was a refund's only event."""
        change = self.create_refund(session_id, amount, deliver=deliver, **options)
        return next((e for e in change.events if e["type"] == "charge.refunded"), change.events[0])

    def settle_refund(
        self,
        refund_id: str,
        status: str,
        *,
        failure_reason: str = "expired_or_canceled_card",
        events: str | None = None,
        deliver: bool = True,
    ) -> StripeChange:
        """Move a refund on: pending or requires_action to succeeded, failed or canceled; succeeded to failed.

        Events: ``refund.updated`` and ``charge.refund.updated`` (with ``previous_attributes``), and
        ``refund.failed`` when it fails, as ``events`` chooses (see ``create_refund``). A refund that fails
        or is cancelled leaves the charge's ``amount_refunded``.
        """
        with self._lock:
            refund = self.refunds.get(refund_id)
            if refund is None:
                raise KeyError(f"No such refund: {refund_id!r}")
            if status not in REFUND_MOVES.get(refund["status"], ()):
                raise ValueError(f"refund {refund_id} cannot go from {refund['status']} to {status}")
            if status == "failed" and failure_reason not in REFUND_FAILURE_REASONS:
                raise ValueError(f"failure_reason must be one of {sorted(REFUND_FAILURE_REASONS)}")
            change = self._settle(refund, status, failure_reason, _style(events, self.refund_events), None)
        self._send(change.events, deliver)
        return change

    def refunds_of(self, session_id: str) -> list[dict[str, Any]]:
        """The refunds of a session's payment, newest first (copies)."""
        with self._lock:
            charge_id = self._session_charge.get(session_id)
            return copy.deepcopy(self._charge_refunds(charge_id)) if charge_id else []

    # ---- the model --------------------------------------------------------------------------------

    def _paid_charge(self, session_id: str) -> dict[str, Any]:
        session = self._session(session_id)
        charge_id = self._session_charge.get(session_id)
        if session["payment_status"] != "paid" or charge_id is None:
            raise ValueError(f"session {session_id} is not paid; nothing to refund or dispute")
        return self.charges[charge_id]

    def _charge_refunds(self, charge_id: str) -> list[dict[str, Any]]:
        return [r for r in reversed(self.refunds.values()) if r["charge"] == charge_id]

    def _refund(
        self,
        charge: dict[str, Any],
        amount: int | None,
        *,
        status: str,
        reason: str | None,
        metadata: dict[str, str],
        style: str,
        currency: str | None = None,
        livemode: bool = False,
        request: dict[str, Any] | None = None,
    ) -> StripeChange:
        remaining = charge["amount"] - charge["amount_refunded"]
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has not succeeded; it cannot be refunded.",
                code="charge_not_refundable",
            )
        if self._charged_back(charge["id"]):
            raise StripeError(
                400,
                f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        if remaining <= 0:
            raise StripeError(
                400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if amount <= 0:
            raise StripeError(
                400, "Refund amount must be positive.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than unrefunded "
                f"amount on charge ({format_amount(remaining, charge['currency'])})",
                code="amount_too_large",
                param="amount",
            )
        refund = fixture("refund")
        refund.update(
            id=new_id("re_"),
            amount=amount,
            balance_transaction=new_id("txn_"),
            charge=charge["id"],
            created=self.now(),
            currency=(currency or charge["currency"]).lower(),
            customer=charge["customer"],
            metadata=metadata,
            payment_intent=charge["payment_intent"],
            payment_method=charge["payment_method"],
            reason=reason,
            status=status,
        )
        method = charge["payment_method_details"]["type"]
        if method != "card":
            refund["destination_details"] = {"type": method, method: {}}
        if status == "pending":
            refund["pending_reason"] = "processing"
        if status == "requires_action":
            refund["next_action"] = {"display_details": None, "type": "display_details"}
        self.refunds[refund["id"]] = refund
        if livemode:
            self._live_objects.add(refund["id"])
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        shown_charge = {**charge, "currency": refund["currency"]}
        made = []
        if _sent(style, "refund.created"):
            made.append(self.make_event("refund.created", refund, request=request, livemode=livemode))
        if _sent(style, "charge.refunded"):
            made.append(
                self.make_event(
                    "charge.refunded", shown_charge, previous_attributes=previous, request=request, livemode=livemode
                )
            )
        return StripeChange(copy.deepcopy(refund), made)

    def _settle(
        self,
        refund: dict[str, Any],
        status: str,
        failure_reason: str,
        style: str,
        request: dict[str, Any] | None,
    ) -> StripeChange:
        previous = {"status": refund["status"]}
        refund["status"] = status
        refund.pop("pending_reason", None)
        refund.pop("next_action", None)
        if status == "failed":
            refund["failure_reason"] = failure_reason
            refund["failure_balance_transaction"] = new_id("txn_")
        if status in ("failed", "canceled"):
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        events = self._refund_update_events(refund, previous, style, request, failed=status == "failed")
        return StripeChange(copy.deepcopy(refund), events)

    def _refund_update_events(
        self,
        refund: dict[str, Any],
        previous: dict[str, Any],
        style: str,
        request: dict[str, Any] | None,
        *,
        failed: bool = False,
    ) -> list[dict[str, Any]]:
        live = refund["id"] in self._live_objects
        types = ["refund.updated", *(["refund.failed"] if failed else []), "charge.refund.updated"]
        return [
            self.make_event(
                type,
                refund,
                previous_attributes=None if type == "refund.failed" else previous,
                request=request,
                livemode=live,
            )
            for type in types
            if _sent(style, type)
        ]

    # ---- API ----------------------------------------------------------------------------------------

    def _api_create_refund(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, REFUND_CREATE_PARAMS, "")
        if params.get("charge"):
            charge = self.charges.get(params["charge"])
            if charge is None:
                raise no_such("charge", params["charge"], "charge", status=400)
        elif params.get("payment_intent"):
            pi = self.payment_intents.get(params["payment_intent"])
            if pi is None:
                raise no_such("payment_intent", params["payment_intent"], "payment_intent", status=400)
            charge = self.charges.get(pi["latest_charge"] or "")
            if charge is None:
                raise StripeError(
                    400,
                    f"PaymentIntent {pi['id']} does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
        else:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        amount = as_int(params["amount"], "amount") if params.get("amount") else None
        reason = params.get("reason") or None
        if reason not in (None, *REFUND_REASONS):
            raise StripeError(400, f"Invalid reason: {reason}", param="reason")
        change = self._refund(
            charge,
            amount,
            status=self.api_refund_status,
            reason=reason,
            metadata=valid_metadata(params.get("metadata", {})),
            style=_style(None, self.refund_events),
            request=request,
        )
        return self._expand(change.object, params), change.events

    def _api_update_refund(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        refund = self._known(self.refunds, "refund", id)
        check_keys(params, ("expand", "metadata"), "")
        events = []
        if "metadata" in params:
            previous = {"metadata": dict(refund["metadata"])}
            updated = {**refund["metadata"], **as_dict(params["metadata"], "metadata")}
            refund["metadata"] = valid_metadata(updated)
            if refund["metadata"] != previous["metadata"]:
                events = self._refund_update_events(refund, previous, _style(None, self.refund_events), request)
        return self._expand(refund, params), events

    def _api_cancel_refund(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        refund = self._known(self.refunds, "refund", id)
        check_keys(params, ("expand",), "")
        if refund["status"] != "requires_action":
            raise StripeError(
                400,
                f"You can't cancel refund {id} because it has a status of {refund['status']}. Only refunds "
                "with a status of requires_action can be canceled.",
            )
        change = self._settle(refund, "canceled", "", _style(None, self.refund_events), request)
        return self._expand(refund, params), change.events

    def _api_list_refunds(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, PAYMENT_LIST_PARAMS, "")
        keep = list_filter(params, ("charge", "payment_intent"))
        page = list_object(list(reversed(self.refunds.values())), params, "/v1/refunds", keep=keep, kind="refund")
        return self._expand(page, params), []

    def _api_charge_refunds(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        self._known(self.charges, "charge", id, "charge")
        page = list_object(self._charge_refunds(id), params, f"/v1/charges/{id}/refunds", kind="refund")
        return self._expand(page, params), []

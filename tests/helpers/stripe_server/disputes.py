"""Disputes (inquiries and chargebacks) from opening to won, lost or warning_closed, appeals after a loss, and
disputes prevented before a chargeback, with Stripe's events (the statuses of stripe-python's Dispute.status)."""

from __future__ import annotations

import copy
from typing import Any

from .state import FakeStripeState, StripeChange
from .wire import (
    PAYMENT_LIST_PARAMS,
    StripeError,
    as_bool,
    as_dict,
    as_str,
    check_keys,
    fixture,
    list_filter,
    list_object,
    new_id,
    valid_metadata,
    words,
)

#: a dispute's statuses while it is open; inquiries ("warning_*") withdraw no funds unless they escalate; an
#: appeal ("appeal_*") reopens a lost dispute, the funds staying withdrawn until it is won
DISPUTE_OPEN_STATUSES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review",
                         "appeal_needs_response", "appeal_under_review")
#: "prevented": resolved before it became a chargeback (Visa RDR), the cardholder refunded from the balance
DISPUTE_CLOSED_STATUSES = ("won", "lost", "warning_closed", "prevented")
#: the statuses in which the funds are withdrawn (Stripe then refuses refunds of the charge)
FUNDS_WITHDRAWN_STATUSES = ("needs_response", "under_review", "lost", "appeal_needs_response",
                            "appeal_under_review", "prevented")
#: the moves ``update_dispute`` makes: evidence goes under review; an inquiry can escalate to a chargeback; a
#: lost dispute can be appealed
DISPUTE_MOVES = {
    "warning_needs_response": ("warning_under_review", "needs_response"),
    "warning_under_review": ("needs_response",),
    "needs_response": ("under_review",),
    "lost": ("appeal_needs_response",),
    "appeal_needs_response": ("appeal_under_review",),
}
#: how ``close_dispute`` can end each open status
DISPUTE_ENDS = {
    "warning_needs_response": ("warning_closed",),
    "warning_under_review": ("warning_closed",),
    "needs_response": ("won", "lost"),
    "under_review": ("won", "lost"),
    "appeal_needs_response": ("won", "lost"),
    "appeal_under_review": ("won", "lost"),
}
DISPUTE_FEE = 1500  # Stripe's dispute fee, in cents
EVIDENCE_DAYS = 7
DISPUTE_REASONS = words(
    "bank_cannot_process check_returned credit_not_processed customer_initiated debit_not_authorized "
    "duplicate fraudulent general incorrect_account_details insufficient_funds noncompliant "
    "product_not_received product_unacceptable subscription_canceled unrecognized"
)
NETWORK_REASON_CODES = {"fraudulent": "10.4", "product_not_received": "13.1", "duplicate": "12.6.1"}


class DisputesMixin(FakeStripeState):
    """Disputes of a paid session's charge; ``charge.dispute.*`` events as Stripe sends them."""

    # ---- what the cardholder, the bank and Stripe do ----------------------------------------------

    def open_dispute(
        self,
        session_id: str,
        amount: int | None = None,
        *,
        reason: str = "fraudulent",
        inquiry: bool = False,
        prevented: bool = False,
        currency: str | None = None,
        livemode: bool = False,
        deliver: bool = True,
    ) -> StripeChange:
        """The cardholder disputes ``amount`` (default: the whole charge) of a paid session.

        A chargeback (``needs_response``) withdraws the amount and the fee at once: events
        ``charge.dispute.created`` and ``charge.dispute.funds_withdrawn``. An inquiry (``inquiry=True``,
        ``warning_needs_response``) withdraws nothing: ``charge.dispute.created`` only. ``currency``
        labels the dispute with another currency than the payment's; ``livemode=True`` makes it live.
        ``prevented=True``: resolved by dispute prevention before it became a chargeback (status
        ``prevented``, case type ``resolution``): the amount is withdrawn without a fee, events
        ``charge.dispute.created``, ``charge.dispute.funds_withdrawn`` and ``charge.dispute.closed``.
        """
        if reason not in DISPUTE_REASONS:
            raise ValueError(f"reason must be one of {sorted(DISPUTE_REASONS)}")
        with self._lock:
            charge = self._paid_charge(session_id)
            amount = charge["amount"] if amount is None else amount
            if not 0 < amount <= charge["amount"]:
                raise ValueError(f"a dispute's amount is between 1 and the charge's {charge['amount']}")
            dispute = self._new_dispute(charge, amount, reason, inquiry, currency, livemode)
            if prevented:
                dispute["status"] = "prevented"
                dispute["payment_method_details"]["card"]["case_type"] = "resolution"
            charge["disputed"] = True
            events = []
            if not inquiry:
                self._move_funds(dispute, withdraw=True, fee=not prevented)
            events.append(self._dispute_event("charge.dispute.created", dispute))
            if not inquiry:
                events.append(self._dispute_event("charge.dispute.funds_withdrawn", dispute))
            if prevented:
                events.append(self._dispute_event("charge.dispute.closed", dispute))
            change = StripeChange(copy.deepcopy(dispute), events)
        self._send(change.events, deliver)
        return change

    def update_dispute(
        self,
        dispute_id: str,
        *,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
        deliver: bool = True,
    ) -> StripeChange:
        """Change a dispute: ``status`` (evidence under review, an inquiry escalating to a chargeback, which
        withdraws the funds, or a lost dispute appealed: ``appeal_needs_response``, then
        ``appeal_under_review``) and/or ``metadata``. Events: ``charge.dispute.updated`` with
        ``previous_attributes``, and ``charge.dispute.funds_withdrawn`` on escalation."""
        with self._lock:
            dispute = self._known_dispute(dispute_id)
            if status is not None and status not in DISPUTE_MOVES.get(dispute["status"], ()):
                raise ValueError(f"dispute {dispute_id} cannot go from {dispute['status']} to {status}")
            change = self._update_dispute(dispute, status, metadata, None)
        self._send(change.events, deliver)
        return change

    def close_dispute(self, dispute_id: str, status: str, *, deliver: bool = True) -> StripeChange:
        """The bank decides: a chargeback, or its appeal, is ``won`` (funds and fee reinstated:
        ``charge.dispute.closed`` and ``charge.dispute.funds_reinstated``) or ``lost``
        (``charge.dispute.closed``); an inquiry ends ``warning_closed`` (``charge.dispute.closed``)."""
        with self._lock:
            dispute = self._known_dispute(dispute_id)
            if status not in DISPUTE_ENDS.get(dispute["status"], ()):
                raise ValueError(f"dispute {dispute_id} cannot go from {dispute['status']} to {status}")
            change = self._close_dispute(dispute, status, None)
        self._send(change.events, deliver)
        return change

    def disputes_of(self, session_id: str) -> list[dict[str, Any]]:
        """The disputes of a session's payment, newest first (copies)."""
        with self._lock:
            charge_id = self._session_charge.get(session_id)
            found = [d for d in reversed(self.disputes.values()) if d["charge"] == charge_id]
            return copy.deepcopy(found)

    # ---- the model --------------------------------------------------------------------------------

    def _new_dispute(
        self,
        charge: dict[str, Any],
        amount: int,
        reason: str,
        inquiry: bool,
        currency: str | None,
        livemode: bool,
    ) -> dict[str, Any]:
        now = self.now()
        dispute = fixture("dispute")
        dispute["evidence_details"].update(
            due_by=now + EVIDENCE_DAYS * 24 * 3600, has_evidence=False, past_due=False, submission_count=0
        )
        dispute["payment_method_details"]["card"].update(
            case_type="inquiry" if inquiry else "chargeback",
            network_reason_code=NETWORK_REASON_CODES.get(reason, "13.7"),
        )
        dispute.update(
            id=new_id("dp_"),
            amount=amount,
            balance_transactions=[],
            charge=charge["id"],
            created=now,
            currency=(currency or charge["currency"]).lower(),
            enhanced_eligibility_types=[],
            is_charge_refundable=inquiry,
            livemode=livemode,
            metadata={},
            payment_intent=charge["payment_intent"],
            reason=reason,
            status="warning_needs_response" if inquiry else "needs_response",
        )
        self.disputes[dispute["id"]] = dispute
        return dispute

    def _known_dispute(self, dispute_id: str) -> dict[str, Any]:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise KeyError(f"No such dispute: {dispute_id!r}")
        return dispute

    def _charged_back(self, charge_id: str) -> bool:
        """Whether a chargeback holds the charge's funds (Stripe then refuses refunds)."""
        return any(d["charge"] == charge_id and d["status"] in FUNDS_WITHDRAWN_STATUSES for d in self.disputes.values())

    def _dispute_event(
        self,
        type: str,
        dispute: dict[str, Any],
        previous: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.make_event(
            type, dispute, previous_attributes=previous, request=request, livemode=dispute["livemode"]
        )

    def _move_funds(self, dispute: dict[str, Any], *, withdraw: bool, fee: bool = True) -> None:
        """Add the balance transaction that withdraws (or reinstates) the disputed amount and the fee (none for
        a prevented dispute)."""
        sign = -1 if withdraw else 1
        dispute_fee = DISPUTE_FEE if fee else 0
        txn = fixture("balance_transaction")
        txn.update(
            id=new_id("txn_"),
            amount=sign * dispute["amount"],
            available_on=self.now(),
            created=self.now(),
            currency=dispute["currency"],
            description=f"Chargeback {'withdrawal' if withdraw else 'reversal'} for {dispute['charge']}",
            fee=-sign * dispute_fee,
            fee_details=[
                {
                    "amount": -sign * dispute_fee,
                    "application": None,
                    "currency": dispute["currency"],
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ] if fee else [],
            net=sign * (dispute["amount"] + dispute_fee),
            reporting_category="dispute" if withdraw else "dispute_reversal",
            source=dispute["id"],
            status="available",
            type="adjustment",
        )
        dispute["balance_transactions"].append(txn)

    def _update_dispute(
        self,
        dispute: dict[str, Any],
        status: str | None,
        metadata: dict[str, str] | None,
        request: dict[str, Any] | None,
        evidence: dict[str, str] | None = None,
    ) -> StripeChange:
        previous: dict[str, Any] = {}
        escalated = False
        if metadata is not None:
            updated = valid_metadata({**dispute["metadata"], **metadata})
            if updated != dispute["metadata"]:
                previous["metadata"] = dispute["metadata"]
                dispute["metadata"] = updated
        if evidence:
            previous["evidence"] = copy.deepcopy(dispute["evidence"])
            previous["evidence_details"] = copy.deepcopy(dispute["evidence_details"])
            dispute["evidence"].update(evidence)
            dispute["evidence_details"].update(has_evidence=True)
            dispute["evidence_details"]["submission_count"] += 1
        if status is not None and status != dispute["status"]:
            previous["status"] = dispute["status"]
            escalated = dispute["status"].startswith("warning_") and not status.startswith("warning_")
            dispute["status"] = status
            if escalated:
                previous["is_charge_refundable"] = dispute["is_charge_refundable"]
                dispute["is_charge_refundable"] = False
                dispute["payment_method_details"]["card"]["case_type"] = "chargeback"
                self._move_funds(dispute, withdraw=True)
        events = []
        if previous:
            events.append(self._dispute_event("charge.dispute.updated", dispute, previous, request))
        if escalated:
            events.append(self._dispute_event("charge.dispute.funds_withdrawn", dispute, None, request))
        return StripeChange(copy.deepcopy(dispute), events)

    def _close_dispute(
        self, dispute: dict[str, Any], status: str, request: dict[str, Any] | None
    ) -> StripeChange:
        dispute["status"] = status
        if status == "won":
            self._move_funds(dispute, withdraw=False)
        events = [self._dispute_event("charge.dispute.closed", dispute, None, request)]
        if status == "won":
            events.append(self._dispute_event("charge.dispute.funds_reinstated", dispute, None, request))
        return StripeChange(copy.deepcopy(dispute), events)

    # ---- API ----------------------------------------------------------------------------------------

    def _api_list_disputes(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, PAYMENT_LIST_PARAMS, "")
        keep = list_filter(params, ("charge", "payment_intent"))
        ordered = list(reversed(self.disputes.values()))
        return self._expand(list_object(ordered, params, "/v1/disputes", keep=keep, kind="dispute"), params), []

    def _api_update_dispute(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        dispute = self._known(self.disputes, "dispute", id)
        check_keys(params, ("evidence", "expand", "intended_submission_method", "metadata", "submit"), "")
        evidence = as_dict(params.get("evidence", {}), "evidence")
        check_keys(evidence, set(fixture("dispute")["evidence"]) - {"enhanced_evidence"}, "evidence")
        evidence = {key: as_str(value, f"evidence[{key}]") for key, value in evidence.items()}
        if evidence and dispute["status"] in DISPUTE_CLOSED_STATUSES:
            raise StripeError(400, f"This dispute is already closed ({dispute['status']}).", param="evidence")
        submit = as_bool(params["submit"], "submit") if "submit" in params else True
        status = None
        if evidence and submit:
            status = {"warning_needs_response": "warning_under_review", "warning_under_review": "warning_under_review",
                      "appeal_needs_response": "appeal_under_review", "appeal_under_review": "appeal_under_review",
                      }.get(dispute["status"], "under_review")
        metadata = as_dict(params["metadata"], "metadata") if "metadata" in params else None
        change = self._update_dispute(dispute, status, metadata, request, evidence)
        return self._expand(dispute, params), change.events

    def _api_close_dispute(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        dispute = self._known(self.disputes, "dispute", id)
        check_keys(params, ("expand",), "")
        if dispute["status"] in DISPUTE_CLOSED_STATUSES:
            raise StripeError(400, f"This dispute is already closed ({dispute['status']}).")
        ending = "warning_closed" if dispute["status"].startswith("warning_") else "lost"
        change = self._close_dispute(dispute, ending, request)
        return self._expand(dispute, params), change.events

"""Events: making them (every one is kept) and Stripe's Events API, ``GET /v1/events[/{id}]``."""

from __future__ import annotations

import copy
import re
from fractions import Fraction
from typing import Any

from .state import FakeStripeState
from .wire import (
    StripeError,
    as_bool,
    as_list,
    as_str,
    check_keys,
    fixture,
    list_filter,
    list_object,
    new_id,
    no_such,
    words,
)

#: Before this API version, a Checkout Session under Adaptive Pricing showed the customer's currency and amounts
PRESENTMENT_IN_AMOUNTS_UNTIL = "2025-03-31"


def _render_presentment(obj: dict[str, Any]) -> None:
    """An Adaptive Pricing session (``presentment_details``) as an older API version renders it: its amounts,
    total_details and currency are the customer's, and ``currency_conversion`` holds the session's own."""
    details = obj.get("presentment_details") if obj.get("object") == "checkout.session" else None
    if not details:
        return
    source_total, source_subtotal = obj.get("amount_total") or 0, obj.get("amount_subtotal") or 0
    rate = Fraction(details["presentment_amount"], source_total) if source_total else Fraction(1)
    totals = obj.get("total_details")
    if isinstance(totals, dict):
        obj["total_details"] = {**totals, **{k: round(v * rate) for k, v in totals.items() if isinstance(v, int)}}
    obj.update(
        currency=details["presentment_currency"], amount_total=details["presentment_amount"],
        amount_subtotal=round(source_subtotal * rate),
        currency_conversion={"amount_subtotal": source_subtotal, "amount_total": source_total,
                             "fx_rate": f"{float(rate):.12g}", "source_currency": obj.get("currency")},
    )
    obj.pop("presentment_details")


#: Stripe lists and retrieves events of the last 30 days only
EVENT_RETENTION = 30 * 24 * 3600
MAX_EVENT_TYPES = 20
EVENT_LIST_PARAMS = words("created delivery_success ending_before expand limit starting_after type types")


class EventsMixin(FakeStripeState):
    """Every event the fake makes is stored, delivered or not, and listed as Stripe lists them."""

    def make_event(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        previous_attributes: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        livemode: bool = False,
        store: bool = True,
    ) -> dict[str, Any]:
        """Build an event of ``type`` whose ``data.object`` is a snapshot of ``obj``.

        It is kept (``store``; the Events API lists it) unless the test fabricates an event Stripe never
        made (``store=False``). ``livemode=True`` (or ``fake.livemode``) makes a live-mode event, which a
        test key never sees: the event's ``livemode`` and its object's, where it has one, are true.
        """
        live = livemode or self.livemode
        event = fixture("event")
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if live and "livemode" in data["object"]:
            data["object"]["livemode"] = True
        if previous_attributes is not None:
            data["previous_attributes"] = copy.deepcopy(previous_attributes)
        version = self.rendering_version()
        if version < PRESENTMENT_IN_AMOUNTS_UNTIL:
            _render_presentment(data["object"])
        event.update(
            id=new_id("evt_"),
            object="event",
            api_version=version,
            created=self.now(),
            data=data,
            livemode=live,
            pending_webhooks=1,
            request=request or {"id": None, "idempotency_key": None},
            type=type,
        )
        if store:
            with self._lock:
                self._event_seq[event["id"]] = len(self._event_seq)
                self.events[event["id"]] = event
        return event

    def rendering_version(self) -> str:
        """The API version events are rendered at: that of the webhook endpoint registered for ``webhook_url``
        when it has one (Stripe renders an endpoint's deliveries at its version), else ``event_api_version``
        (the account's default), else the fake's own."""
        with self._lock:
            endpoint = next((e for e in self.webhook_endpoints.values()
                             if self.webhook_url and e["url"] == self.webhook_url and e.get("api_version")), None)
        return endpoint["api_version"] if endpoint else self.event_api_version or self.api_version

    def listed_events(self) -> list[dict[str, Any]]:
        """The stored events the Events API still lists (the last 30 days), newest first."""
        with self._lock:
            oldest = self.now() - EVENT_RETENTION
            kept = [event for event in self.events.values() if event["created"] >= oldest]
            kept.sort(key=lambda event: (event["created"], self._event_seq[event["id"]]), reverse=True)
            return kept

    def _event_as_listed(self, event: dict[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(event)
        shown["pending_webhooks"] = 0 if event["id"] in self._delivered_ok or self.webhook_url is None else 1
        return shown

    def _api_get_event(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        event = self.events.get(id)
        if event is None or event["created"] < self.now() - EVENT_RETENTION:
            raise no_such("event", id, "id")
        return self._event_as_listed(event), []

    def _api_list_events(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, EVENT_LIST_PARAMS, "")
        if params.get("type") and params.get("types"):
            raise StripeError(400, "You may only specify one of these parameters: type, types.")
        tests = [list_filter(params)]
        if params.get("type"):
            pattern = re.escape(as_str(params["type"], "type")).replace(r"\*", ".*")
            tests.append(lambda event: re.fullmatch(pattern, event["type"]) is not None)
        if params.get("types"):
            wanted = {as_str(value, "types") for value in as_list(params["types"], "types")}
            if len(wanted) > MAX_EVENT_TYPES:
                raise StripeError(
                    400, f"You may pass at most {MAX_EVENT_TYPES} values for `types`.", param="types"
                )
            tests.append(lambda event: event["type"] in wanted)
        if params.get("delivery_success"):
            delivered = as_bool(params["delivery_success"], "delivery_success")
            tests.append(lambda event: (event["id"] in self._delivered_ok) == delivered)
        page = list_object(
            self.listed_events(),
            params,
            "/v1/events",
            keep=lambda event: all(test(event) for test in tests),
            kind="event",
        )
        page["data"] = [self._event_as_listed(event) for event in page["data"]]
        return page, []

"""Webhook endpoints, as ``creditdesk-backend stripe-setup`` creates and checks them:
POST/GET ``/v1/webhook_endpoints``, GET/POST/DELETE ``/v1/webhook_endpoints/{id}``.

The signing secret is in the create answer only, as at Stripe; ``api_version`` is fixed at creation."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from .state import FakeStripeState
from .wire import StripeError, as_dict, as_list, as_str, check_keys, list_object, new_id, no_such, words

ENDPOINT_CREATE_PARAMS = words("api_version connect description enabled_events expand metadata url")
ENDPOINT_UPDATE_PARAMS = words("description disabled enabled_events expand metadata url")


class EndpointsMixin(FakeStripeState):
    def _api_create_endpoint(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, ENDPOINT_CREATE_PARAMS, "")
        url = as_str(params.get("url", ""), "url")
        if not url.startswith(("https://", "http://")):
            raise StripeError(400, "Invalid URL: must be a valid URL", param="url")
        events = [as_str(e, "enabled_events") for e in as_list(params.get("enabled_events", []), "enabled_events")]
        if not events:
            raise StripeError(400, "Missing required param: enabled_events.", param="enabled_events")
        endpoint = {
            "id": new_id("we_"), "object": "webhook_endpoint",
            "api_version": as_str(params["api_version"], "api_version") if params.get("api_version") else None,
            "application": None, "created": self.now(),
            "description": as_str(params["description"], "description") if params.get("description") else None,
            "enabled_events": events, "livemode": False,
            "metadata": as_dict(params.get("metadata", {}), "metadata"), "status": "enabled", "url": url,
        }
        self.webhook_endpoints[endpoint["id"]] = endpoint
        return {**copy.deepcopy(endpoint), "secret": "whsec_" + secrets.token_urlsafe(24)}, []

    def _api_list_endpoints(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, words("ending_before expand limit starting_after"), "")
        ordered = [{**e, "secret": None} for e in reversed(self.webhook_endpoints.values())]
        return list_object(ordered, params, "/v1/webhook_endpoints", kind="webhook_endpoint"), []

    def _api_get_endpoint(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        return {**self._endpoint(id), "secret": None}, []

    def _api_update_endpoint(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        check_keys(params, ENDPOINT_UPDATE_PARAMS, "")
        endpoint = self._endpoint(id)
        if "enabled_events" in params:
            endpoint["enabled_events"] = [as_str(e, "enabled_events")
                                          for e in as_list(params["enabled_events"], "enabled_events")]
        if "url" in params:
            endpoint["url"] = as_str(params["url"], "url")
        return {**endpoint, "secret": None}, []

    def _api_delete_endpoint(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        self._endpoint(id)
        del self.webhook_endpoints[id]
        return {"id": id, "object": "webhook_endpoint", "deleted": True}, []

    def _endpoint(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if endpoint is None:
            raise no_such("webhook endpoint", endpoint_id, "id")
        return copy.deepcopy(endpoint)

"""Checkout: prices and products, Checkout Sessions with their line items, and paying or expiring them."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from .state import FakeStripeState
from .wire import (
    ID_ALPHABET,
    StripeError,
    as_bool,
    as_dict,
    as_int,
    as_str,
    check_keys,
    fixture,
    list_filter,
    list_object,
    missing,
    new_id,
    no_such,
    unknown,
    valid_metadata,
    words,
)

SESSION_LIFETIME = 24 * 3600
TAX_ON = {"enabled": True, "liability": {"type": "self"}, "provider": "stripe", "status": "complete"}
TAX_OFF = {"enabled": False, "liability": None, "provider": None, "status": None}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}

SESSION_CREATE_PARAMS = words(
    "adaptive_pricing after_expiration allow_promotion_codes allowed_payment_method_types "
    "automatic_tax billing_address_collection branding_settings cancel_url client_reference_id "
    "consent_collection currency custom_fields custom_text customer customer_account "
    "customer_creation customer_email customer_update discounts excluded_payment_method_types "
    "expand expires_at integration_identifier invoice_creation line_items locale managed_payments "
    "metadata mode name_collection optional_items origin_context payment_intent_data "
    "payment_method_collection payment_method_configuration payment_method_data "
    "payment_method_options payment_method_types permissions phone_number_collection "
    "redirect_on_completion return_url saved_payment_method_options setup_intent_data "
    "shipping_address_collection shipping_options submit_type subscription_data success_url "
    "tax_id_collection ui_mode wallet_options"
)
LINE_ITEM_PARAMS = words(
    "adjustable_quantity dynamic_tax_rates metadata price price_data quantity tax_rates"
)
PRICE_DATA_PARAMS = words(
    "currency product product_data recurring tax_behavior unit_amount unit_amount_decimal"
)
INVOICE_DATA_PARAMS = words("account_tax_ids custom_fields description footer issuer metadata rendering_options")
PRODUCT_DATA_PARAMS = words("description images metadata name tax_code tax_details unit_label")


class CheckoutMixin(FakeStripeState):
    """Checkout Sessions in payment mode, the PaymentIntent and Charge a payment makes, and the API for them."""

    # ---- catalogue --------------------------------------------------------------------------------

    def add_price(
        self, unit_amount: int, currency: str = "usd", *, name: str = "Credits", id: str | None = None
    ) -> dict[str, Any]:
        """Create an active one-time price (and its product) usable as ``line_items[i][price]``."""
        with self._lock:
            product = self._new_product(name)
            price = self._new_price(product["id"], unit_amount, currency, active=True, price_id=id)
            return copy.deepcopy(price)

    def _new_product(self, name: str, description: str | None = None) -> dict[str, Any]:
        now = self.now()
        product = fixture("product")
        product.update(
            id=new_id("prod_", 14),
            name=name,
            description=description,
            created=now,
            updated=now,
            default_price=None,
            images=[],
            marketing_features=[],
            metadata={},
            package_dimensions=None,
            shippable=None,
            type="service",
            url=None,
        )
        self.products[product["id"]] = product
        return product

    def _new_price(
        self, product_id: str, unit_amount: int, currency: str, *, active: bool, price_id: str | None = None
    ) -> dict[str, Any]:
        price = fixture("price")
        price.update(
            id=price_id or new_id("price_"),
            active=active,
            created=self.now(),
            currency=currency.lower(),
            custom_unit_amount=None,
            product=product_id,
            recurring=None,
            transform_quantity=None,
            type="one_time",
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
            metadata={},
        )
        self.prices[price["id"]] = price
        return price

    # ---- checkout sessions ------------------------------------------------------------------------

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create a Checkout Session from decoded API params (what ``POST /v1/checkout/sessions`` does)."""
        with self._lock:
            return self._create_session(params)

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        for key in params:
            if key not in SESSION_CREATE_PARAMS:
                raise unknown(key)
        for required in ("mode", "success_url"):
            if not params.get(required):
                raise missing(required)
        mode = as_str(params["mode"], "mode")
        if mode not in ("payment", "setup", "subscription"):
            raise StripeError(
                400,
                f"Invalid mode: must be one of payment, setup, or subscription ({mode!r} given)",
                code="parameter_invalid_string",
                param="mode",
            )
        if mode != "payment":
            raise StripeError(400, f"This test server only supports mode=payment, not {mode}.", param="mode")
        success_url = as_str(params["success_url"], "success_url")
        cancel_url = as_str(params["cancel_url"], "cancel_url") if params.get("cancel_url") else None
        for param, url in (("success_url", success_url), ("cancel_url", cancel_url)):
            if url is not None and not re.match(r"^https?://[^/\s]+", url):
                raise StripeError(400, "Not a valid URL", code="url_invalid", param=param)

        raw_items = params.get("line_items")
        if not raw_items:
            raise missing("line_items")
        if not isinstance(raw_items, list):
            raise StripeError(400, "Invalid array", code="parameter_invalid_array", param="line_items")
        items = [self._line_item(raw, f"line_items[{i}]") for i, raw in enumerate(raw_items)]
        currencies = {item["currency"] for item in items}
        if params.get("currency"):
            currencies.add(as_str(params["currency"], "currency").lower())
        if len(currencies) > 1:
            raise StripeError(
                400,
                "Checkout does not support multiple currencies on one session "
                f"({', '.join(sorted(currencies))}).",
                param="line_items",
            )
        currency = currencies.pop()
        total = sum(item["amount_total"] for item in items)
        if currency == "usd" and total < 50:
            raise StripeError(
                400,
                "The Checkout Session's total amount due must add up to at least $0.50 usd",
                param="line_items",
            )

        metadata = valid_metadata(params.get("metadata", {}))
        pi_data = as_dict(params.get("payment_intent_data", {}), "payment_intent_data")
        pi_meta = valid_metadata(pi_data.get("metadata", {}), "payment_intent_data[metadata]")
        now = self.now()
        expires_at = now + SESSION_LIFETIME
        if params.get("expires_at"):
            expires_at = as_int(params["expires_at"], "expires_at")
            if not now + 1800 - 5 <= expires_at <= now + SESSION_LIFETIME + 5:
                raise StripeError(
                    400,
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                    "Checkout Session creation.",
                    param="expires_at",
                )
        client_reference_id = params.get("client_reference_id") or None
        if client_reference_id is not None:
            client_reference_id = as_str(client_reference_id, "client_reference_id")
            if len(client_reference_id) > 200:
                raise StripeError(
                    400, "client_reference_id can be at most 200 characters.", param="client_reference_id"
                )
        payment_method_types = params.get("payment_method_types") or ["card"]

        session_id = "cs_test_a1" + "".join(secrets.choice(ID_ALPHABET) for _ in range(56))
        if params.get("customer"):
            if params.get("customer_email"):
                raise StripeError(400, "You may only specify one of these parameters: customer, customer_email.",
                                  param="customer_email")
            if as_str(params["customer"], "customer") not in self.customers:
                raise no_such("customer", params["customer"], "customer", status=400)
        tax_on = as_bool(as_dict(params.get("automatic_tax") or {}, "automatic_tax").get("enabled", "false"),
                         "automatic_tax[enabled]")
        invoice_creation = as_dict(params.get("invoice_creation") or {}, "invoice_creation")
        check_keys(invoice_creation, ("enabled", "invoice_data"), "invoice_creation")
        invoice_on = as_bool(invoice_creation.get("enabled", "false"), "invoice_creation[enabled]")
        invoice_data = as_dict(invoice_creation.get("invoice_data") or {}, "invoice_creation[invoice_data]")
        check_keys(invoice_data, INVOICE_DATA_PARAMS, "invoice_creation[invoice_data]")
        tax_ids_on = as_bool(as_dict(params.get("tax_id_collection") or {}, "tax_id_collection")
                             .get("enabled", "false"), "tax_id_collection[enabled]")
        customer_update = as_dict(params.get("customer_update") or {}, "customer_update")
        check_keys(customer_update, ("address", "name", "shipping"), "customer_update")
        if customer_update and not params.get("customer"):
            raise StripeError(400, "`customer_update` can only be used with `customer`.", param="customer_update")
        if tax_ids_on and params.get("customer") and customer_update.get("name") != "auto":
            raise StripeError(400, "`customer_update[name]` must be `auto` when `tax_id_collection` is enabled "
                                   "and a `customer` is provided.", param="customer_update[name]")
        session = fixture("checkout.session")
        session.update(
            id=session_id,
            object="checkout.session",
            adaptive_pricing={"enabled": False},
            after_expiration=None,
            allow_promotion_codes=(as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
                                   if "allow_promotion_codes" in params else None),
            amount_subtotal=total,
            amount_total=total,
            automatic_tax=copy.deepcopy(TAX_ON if tax_on else TAX_OFF),
            billing_address_collection=params.get("billing_address_collection"),
            cancel_url=cancel_url,
            client_reference_id=client_reference_id,
            client_secret=None,
            collected_information=None,
            consent=None,
            consent_collection=None,
            created=now,
            currency=currency,
            currency_conversion=None,
            custom_fields=[],
            custom_text={
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            customer=params.get("customer") or None,
            customer_account=None,
            customer_creation=params.get("customer_creation")
            or ("if_required" if not params.get("customer") else None),
            customer_details=None,
            customer_email=params.get("customer_email") or None,
            discounts=[],
            expires_at=expires_at,
            integration_identifier=None,
            invoice=None,
            invoice_creation={
                "enabled": invoice_on,
                "invoice_data": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": invoice_data.get("description"),
                    "footer": invoice_data.get("footer"),
                    "issuer": None,
                    "metadata": valid_metadata(invoice_data.get("metadata", {}),
                                               "invoice_creation[invoice_data][metadata]"),
                    "rendering_options": None,
                },
            },
            livemode=False,
            locale=params.get("locale") or None,
            managed_payments={"enabled": False},
            metadata=metadata,
            mode=mode,
            origin_context=None,
            payment_intent=None,
            payment_link=None,
            payment_method_collection="if_required",
            payment_method_configuration_details=None,
            payment_method_options={},
            payment_method_types=payment_method_types,
            payment_status="unpaid",
            permissions=None,
            phone_number_collection={"enabled": False},
            recovered_from=None,
            saved_payment_method_options=None,
            setup_intent=None,
            shipping_address_collection=None,
            shipping_cost=None,
            shipping_options=[],
            status="open",
            submit_type=params.get("submit_type") or None,
            tax_id_collection={"enabled": tax_ids_on, "required": "never"},
            subscription=None,
            success_url=success_url,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            ui_mode=params.get("ui_mode") or "hosted_page",
            url=f"{self.url}/pay/{session_id}",
            wallet_options=None,
        )
        self.sessions[session_id] = session
        self._line_items[session_id] = items
        future = pi_data.get("setup_future_usage") or None
        if future not in (None, "off_session", "on_session"):
            raise StripeError(400, "Invalid setup_future_usage: must be one of on_session or off_session",
                              param="payment_intent_data[setup_future_usage]")
        self._pi_data[session_id] = {"metadata": pi_meta, "description": pi_data.get("description"),
                                     "setup_future_usage": future}
        return session

    def _line_item(self, raw: Any, param: str) -> dict[str, Any]:
        item = as_dict(raw, param)
        check_keys(item, LINE_ITEM_PARAMS, param)
        if "quantity" not in item:
            raise missing(f"{param}[quantity]")
        quantity = as_int(item["quantity"], f"{param}[quantity]", minimum=1)
        if item.get("price"):
            price_id = as_str(item["price"], f"{param}[price]")
            price = self.prices.get(price_id)
            if price is None:
                raise StripeError(
                    400, f"No such price: '{price_id}'", code="resource_missing", param=f"{param}[price]"
                )
            if not price["active"]:
                raise StripeError(
                    400, f"The price specified is inactive: '{price_id}'.", param=f"{param}[price]"
                )
        elif "price_data" in item:
            pd_param = f"{param}[price_data]"
            price_data = as_dict(item["price_data"], pd_param)
            check_keys(price_data, PRICE_DATA_PARAMS, pd_param)
            if not price_data.get("currency"):
                raise missing(f"{pd_param}[currency]")
            if price_data.get("recurring"):
                raise StripeError(
                    400,
                    "You must be in `subscription` mode to use recurring prices.",
                    param=f"{pd_param}[recurring]",
                )
            if "unit_amount" not in price_data:
                raise missing(f"{pd_param}[unit_amount]")
            unit_amount = as_int(price_data["unit_amount"], f"{pd_param}[unit_amount]", minimum=0)
            if price_data.get("product"):
                product_id = as_str(price_data["product"], f"{pd_param}[product]")
                if product_id not in self.products:
                    raise StripeError(
                        400,
                        f"No such product: '{product_id}'",
                        code="resource_missing",
                        param=f"{pd_param}[product]",
                    )
            elif "product_data" in price_data:
                prod_param = f"{pd_param}[product_data]"
                product_data = as_dict(price_data["product_data"], prod_param)
                check_keys(product_data, PRODUCT_DATA_PARAMS, prod_param)
                if not product_data.get("name"):
                    raise missing(f"{prod_param}[name]")
                product = self._new_product(
                    as_str(product_data["name"], f"{prod_param}[name]"), product_data.get("description")
                )
                product["metadata"] = valid_metadata(product_data.get("metadata", {}), f"{prod_param}[metadata]")
                product_id = product["id"]
            else:
                raise missing(f"{pd_param}[product]")
            currency = as_str(price_data["currency"], f"{pd_param}[currency]").lower()
            if not re.fullmatch(r"[a-z]{3}", currency):
                raise StripeError(400, f"Invalid currency: {currency}", param=f"{pd_param}[currency]")
            price = self._new_price(product_id, unit_amount, currency, active=False)
            behavior = price_data.get("tax_behavior", "unspecified")
            if behavior not in ("exclusive", "inclusive", "unspecified"):
                raise StripeError(400, f"Invalid tax_behavior: {behavior}", param=f"{pd_param}[tax_behavior]")
            price["tax_behavior"] = behavior
        else:
            raise StripeError(
                400, f"You must specify either `price` or `price_data` in {param}.", param=param
            )
        amount = price["unit_amount"] * quantity
        return {
            "id": new_id("li_"),
            "object": "item",
            "adjustable_quantity": None,
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": price["currency"],
            "description": self.products[price["product"]]["name"],
            "metadata": valid_metadata(item.get("metadata", {}), f"{param}[metadata]"),
            "price": copy.deepcopy(price),
            "quantity": quantity,
        }

    def _buyer_email(self, session: dict[str, Any]) -> str:
        """Whom Checkout collected the payment from: the session's customer's email, its customer_email, or a
        stand-in."""
        customer = self.customers.get(session.get("customer") or "")
        return (customer or {}).get("email") or session["customer_email"] or "jenny.rosen@example.com"

    def line_items(self, session_id: str) -> list[dict[str, Any]]:
        """The session's line items (Stripe ``item`` objects)."""
        return copy.deepcopy(self._line_items[session_id])

    def _session(self, session_id: str) -> dict[str, Any]:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise KeyError(f"No such checkout.session: {session_id!r}") from None

    # ---- state changes (what the customer or Stripe does) -----------------------------------------

    def pay(self, session_id: str, *, discount: int = 0, tax: int = 0, deliver: bool = True,
            promotion_code: str | None = None, tax_rate: str | None = None) -> dict[str, Any]:
        """Complete the session with a card: paid, PaymentIntent + Charge; ``checkout.session.completed``.

        ``discount`` (a promotion code the customer entered: ``promotion_code``'s id, from
        ``create_promotion_code``, or a new one) comes off the subtotal and ``tax`` (Stripe Tax, exclusive; at
        ``tax_rate``'s id, from ``create_tax_rate``, or a new rate) is added, as ``total_details`` and its
        breakdown say; a discount of the whole subtotal completes the session with ``payment_status``
        ``no_payment_required`` and no PaymentIntent, as Stripe does."""
        return self._pay(session_id, ("succeeded", "succeeded", "paid"), deliver, discount=discount, tax=tax,
                         promotion_code=promotion_code, tax_rate=tax_rate)

    def create_promotion_code(self, code: str) -> dict[str, Any]:
        """A promotion code (as made in the Dashboard) that customers enter at Checkout, with its coupon."""
        with self._lock:
            promotion = {
                "id": new_id("promo_"), "object": "promotion_code", "active": True, "code": code,
                "created": int(self.now()), "customer": None, "customer_account": None, "expires_at": None,
                "livemode": False, "max_redemptions": None, "metadata": {},
                "promotion": {"coupon": new_id("", 8), "type": "coupon"},
                "restrictions": {"first_time_transaction": False, "minimum_amount": None,
                                 "minimum_amount_currency": None},
                "times_redeemed": 0,
            }
            self.promotion_codes[promotion["id"]] = promotion
            return copy.deepcopy(promotion)

    def create_tax_rate(self, display_name: str, percentage: float, *, inclusive: bool = False,
                        country: str | None = None, jurisdiction: str | None = None,
                        tax_type: str = "sales_tax") -> dict[str, Any]:
        """A tax rate as Stripe Tax makes one for a Checkout Session's tax (``total_details.breakdown.taxes``)."""
        with self._lock:
            rate = {
                "id": new_id("txr_"), "object": "tax_rate", "active": True, "country": country,
                "created": int(self.now()), "description": None, "display_name": display_name,
                "effective_percentage": percentage, "flat_amount": None, "inclusive": inclusive,
                "jurisdiction": jurisdiction, "jurisdiction_level": "country" if country else None,
                "livemode": False, "metadata": {}, "percentage": percentage, "rate_type": "percentage",
                "state": None, "tax_type": tax_type,
            }
            self.tax_rates[rate["id"]] = rate
            return copy.deepcopy(rate)

    def adapt_price(self, session_id: str, currency: str, amount: int) -> dict[str, Any]:
        """The customer sees the session in their own currency (Adaptive Pricing): ``amount`` of ``currency``
        is what they will pay. At today's versions the session shows it in ``presentment_details`` beside its
        own amounts; events rendered before 2025-03-31 show it in its amounts (events.py)."""
        with self._lock:
            session = self._open_session(session_id, "adapt")
            session.update(adaptive_pricing={"enabled": True},
                           presentment_details={"presentment_amount": amount, "presentment_currency": currency})
            return copy.deepcopy(session)

    def pay_async(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """Complete with a delayed method (bank debit): unpaid, PaymentIntent processing."""
        return self._pay(session_id, ("processing", "pending", "unpaid"), deliver)

    def _pay(
        self, session_id: str, statuses: tuple[str, str, str], deliver: bool, *, discount: int = 0, tax: int = 0,
        promotion_code: str | None = None, tax_rate: str | None = None,
    ) -> dict[str, Any]:
        """Complete an open session; ``statuses`` are the PaymentIntent's, the Charge's and the session's."""
        intent_status, charge_status, payment_status = statuses
        with self._lock:
            session = self._open_session(session_id, "pay")
            if not 0 <= discount <= session["amount_subtotal"] or tax < 0:
                raise ValueError("a discount is at most the subtotal, and tax is not negative")
            if discount or tax:
                self._apply_totals(session, discount, tax, promotion_code, tax_rate)
            if session["amount_total"] == 0:
                session.update(payment_status="no_payment_required")
                self._complete(session, None, "no_payment_required")
                event = self.make_event("checkout.session.completed", session)
                self._send([event], deliver)
                return event
            pi = self._new_payment_intent(session, intent_status)
            charge = self._new_charge(session, pi, charge_status)
            pi["latest_charge"] = charge["id"]
            self._complete(session, pi, payment_status)
            event = self.make_event("checkout.session.completed", session)
        self._send([event], deliver)
        return event

    def async_succeed(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The delayed payment clears: paid; ``checkout.session.async_payment_succeeded``."""
        with self._lock:
            session, pi, charge = self._processing(session_id)
            pi.update(status="succeeded", amount_received=pi["amount"], processing=None)
            charge.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=charge["amount"],
                outcome=_outcome(approved=True),
            )
            session["payment_status"] = "paid"
            self._invoice_for(session)
            event = self.make_event("checkout.session.async_payment_succeeded", session)
        self._send([event], deliver)
        return event

    def async_fail(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The delayed payment fails: stays unpaid; ``checkout.session.async_payment_failed``."""
        with self._lock:
            session, pi, charge = self._processing(session_id)
            message = "The customer's account has insufficient funds to cover this payment."
            pi.update(
                status="requires_payment_method",
                processing=None,
                last_payment_error={
                    "type": "invalid_request_error",
                    "code": "insufficient_funds",
                    "message": message,
                    "charge": charge["id"],
                    "decline_code": None,
                    "doc_url": "https://stripe.com/docs/error-codes/insufficient-funds",
                    "param": None,
                    "payment_method": None,
                },
            )
            charge.update(
                status="failed",
                paid=False,
                amount_captured=0,
                failure_code="insufficient_funds",
                failure_message=message,
                outcome=_outcome(approved=False),
            )
            event = self.make_event("checkout.session.async_payment_failed", session)
        self._send([event], deliver)
        return event

    def expire(self, session_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """The session lapses: status expired; ``checkout.session.expired``."""
        with self._lock:
            session = self._open_session(session_id, "expire")
            self._expire(session)
            event = self.make_event("checkout.session.expired", session)
        self._send([event], deliver)
        return event

    def _open_session(self, session_id: str, action: str) -> dict[str, Any]:
        session = self._session(session_id)
        if session["status"] != "open":
            raise ValueError(f"cannot {action} session {session_id}: its status is {session['status']}")
        return session

    def _processing(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        session = self._session(session_id)
        pi = self.payment_intents.get(session["payment_intent"] or "")
        if (
            session["status"] != "complete"
            or session["payment_status"] != "unpaid"
            or pi is None
            or (pi["status"] != "processing")
        ):
            raise ValueError(f"session {session_id} has no delayed payment in progress (use pay_async first)")
        return session, pi, self.charges[pi["latest_charge"]]

    def _apply_totals(self, session: dict[str, Any], discount: int, tax: int, promotion_code: str | None = None,
                      tax_rate: str | None = None) -> None:
        """A promotion code's discount and exclusive tax, on the session and its line item, as Stripe shows them;
        ``total_details.breakdown`` (answered when expanded) with the discount and the tax rate behind them."""
        total = session["amount_subtotal"] - discount + tax
        session.update(amount_total=total,
                       total_details={"amount_discount": discount, "amount_shipping": 0, "amount_tax": tax})
        breakdown: dict[str, Any] = {"discounts": [], "taxes": []}
        if discount:
            promotion = self.promotion_codes.get(promotion_code or "") or self.create_promotion_code(
                new_id("", 8).upper())
            coupon = promotion["promotion"]["coupon"]
            session["discounts"] = [{"coupon": coupon, "promotion_code": promotion["id"]}]
            breakdown["discounts"].append({"amount": discount, "discount": {
                "id": new_id("di_"), "object": "discount", "checkout_session": session["id"],
                "customer": session.get("customer"), "customer_account": None, "end": None, "invoice": None,
                "invoice_item": None, "promotion_code": promotion["id"],
                "source": {"coupon": coupon, "type": "coupon"}, "start": int(self.now()), "subscription": None,
                "subscription_item": None}})
        if tax:
            session["automatic_tax"] = {"enabled": True, "liability": {"type": "self"}, "provider": "stripe",
                                        "status": "complete"}
            taxable = session["amount_subtotal"] - discount
            rate = self.tax_rates.get(tax_rate or "") or self.create_tax_rate(
                "Sales Tax", round(100 * tax / taxable, 4) if taxable else 0.0)
            breakdown["taxes"].append({"amount": tax, "rate": rate, "taxability_reason": "standard_rated",
                                       "taxable_amount": taxable})
        self._breakdowns[session["id"]] = breakdown
        for item in self._line_items.get(session["id"], []):
            item.update(amount_discount=discount, amount_tax=tax, amount_total=total)

    def _complete(self, session: dict[str, Any], pi: dict[str, Any] | None, payment_status: str) -> None:
        email = self._buyer_email(session)
        # Checkout shows the customer's own name, address and tax ids, which the buyer confirms.
        customer = self.customers.get(session.get("customer") or "") or {}
        address = copy.deepcopy(customer.get("address")) or {
            "city": None, "country": "US", "line1": None, "line2": None, "postal_code": "94103", "state": None}
        tax_ids = [{"type": t["type"], "value": t["value"]} for t in self.tax_ids.get(customer.get("id") or "", [])]
        session.update(
            status="complete",
            payment_status=payment_status,
            payment_intent=pi["id"] if pi else None,
            url=None,
            collected_information={"business_name": None, "individual_name": None, "shipping_details": None},
            customer_details={
                "address": address,
                "business_name": None,
                "email": email,
                "individual_name": None,
                "name": customer.get("name") or "Jenny Rosen",
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": tax_ids,
            },
        )
        if payment_status != "unpaid":
            self._invoice_for(session)

    def _expire(self, session: dict[str, Any]) -> None:
        session.update(status="expired", url=None)

    def _new_payment_intent(self, session: dict[str, Any], status: str) -> dict[str, Any]:
        pi = fixture("payment_intent")
        pi_id = new_id("pi_")
        extra = self._pi_data.get(session["id"], {})
        pi.update(
            id=pi_id,
            amount=session["amount_total"],
            amount_capturable=0,
            amount_received=session["amount_total"] if status == "succeeded" else 0,
            automatic_payment_methods=None,
            canceled_at=None,
            cancellation_reason=None,
            client_secret=f"{pi_id}_secret_{new_id('', 25)}",
            created=self.now(),
            currency=session["currency"],
            customer=session["customer"],
            description=extra.get("description"),
            last_payment_error=None,
            latest_charge=None,
            managed_payments={"enabled": False},
            metadata=dict(extra.get("metadata", {})),
            next_action=None,
            payment_method=new_id("pm_"),
            payment_method_configuration_details=None,
            payment_method_options={},
            payment_method_types=["us_bank_account"] if status == "processing" else ["card"],
            processing={"type": "us_bank_account"} if status == "processing" else None,
            shipping=None,
            status=status,
            transfer_data=None,
        )
        pi["setup_future_usage"] = extra.get("setup_future_usage")
        if pi["setup_future_usage"] and status == "succeeded":
            self._save_card(pi)  # the card, attached to the customer for later payments (payment_intents.py)
        self.payment_intents[pi_id] = pi
        return pi

    def _new_charge(self, session: dict[str, Any], pi: dict[str, Any], status: str) -> dict[str, Any]:
        charge = fixture("charge")
        charge_id = new_id("ch_")
        succeeded = status == "succeeded"
        details = charge["payment_method_details"]
        if status == "pending":
            details = {
                "type": "us_bank_account",
                "us_bank_account": {
                    "account_holder_type": "individual",
                    "account_type": "checking",
                    "bank_name": "STRIPE TEST BANK",
                    "fingerprint": new_id("", 16),
                    "last4": "6789",
                    "mandate": None,
                    "payment_reference": None,
                    "routing_number": "110000000",
                },
            }
        else:
            card = details["card"]
            card.update(
                amount_authorized=pi["amount"],
                authorization_code="123456",
                exp_year=2030,
                fingerprint=new_id("", 16),
                installments=None,
                network_transaction_id=new_id("", 15),
                three_d_secure=None,
                wallet=None,
            )
            card["overcapture"] = {"maximum_amount_capturable": pi["amount"], "status": "unavailable"}
        charge.update(
            id=charge_id,
            amount=pi["amount"],
            amount_captured=pi["amount"] if succeeded else 0,
            amount_refunded=0,
            balance_transaction=new_id("txn_") if succeeded else None,
            billing_details={
                "address": {
                    "city": None,
                    "country": "US",
                    "line1": None,
                    "line2": None,
                    "postal_code": "94103",
                    "state": None,
                },
                "email": self._buyer_email(session),
                "name": "Jenny Rosen",
                "phone": None,
                "tax_id": None,
            },
            calculated_statement_descriptor="CREDITDESK",
            captured=True,
            created=self.now(),
            currency=pi["currency"],
            customer=pi["customer"],
            description=pi["description"],
            disputed=False,
            metadata=dict(pi["metadata"]),
            outcome=_outcome(approved=True) if succeeded else None,
            paid=succeeded,
            payment_intent=pi["id"],
            payment_method=pi["payment_method"],
            payment_method_details=details,
            receipt_email=None,
            receipt_url=f"{self.url}/receipts/{charge_id}",
            refunded=False,
            shipping=None,
            source=None,
            status=status,
            transfer_data=None,
        )
        del charge["refunds"]  # since API version 2022-11-15 only there when expanded (expand[]=refunds)
        self.charges[charge_id] = charge
        self._session_charge[session["id"]] = charge_id
        return charge

    # ---- API ----------------------------------------------------------------------------------------

    def _line_items_list(self, session_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return list_object(self._line_items.get(session_id, []), params or {}, url, kind="item")

    def _api_create_session(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        session = self._create_session(params)
        return self._expand(session, params), []

    def _api_get_session(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        return self._expand(self._api_session(id), params), []

    def _api_session(self, session_id: str) -> dict[str, Any]:
        return self._known(self.sessions, "checkout.session", session_id, "session")

    def _api_session_line_items(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        self._api_session(id)
        return self._expand(self._line_items_list(id, params), params), []

    def _api_expire_session(
        self, params: dict[str, Any], request: dict[str, Any], id: str
    ) -> tuple[Any, list[Any]]:
        session = self._api_session(id)
        if session["status"] != "open":  # paid (complete) or expired already: Stripe's words
            raise StripeError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f"This Checkout Session has a status of `{session['status']}`.",
            )
        self._expire(session)
        event = self.make_event("checkout.session.expired", session, request=request)
        return self._expand(session, params), [event]

    def _api_list_sessions(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        keep = list_filter(params, ("payment_intent", "status", "customer", "client_reference_id"))
        ordered = list(reversed(self.sessions.values()))  # newest first
        page = list_object(ordered, params, "/v1/checkout/sessions", keep=keep, kind="checkout.session")
        return self._expand(page, params), []



def _outcome(*, approved: bool) -> dict[str, Any]:
    outcome = fixture("charge")["outcome"]
    outcome.update(
        network_status="approved_by_network" if approved else "declined_by_network",
        reason=None if approved else "insufficient_funds",
        risk_level="normal",
        risk_score=20,
        seller_message="Payment complete."
        if approved
        else "The bank returned the decline code `insufficient_funds`.",
        type="authorized" if approved else "issuer_declined",
    )
    return outcome

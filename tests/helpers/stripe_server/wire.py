"""Stripe's wire format: form decoding, errors in Stripe's shape, parameter checks, ids, fixtures, list paging."""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
import string
import typing
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FIXTURES_PATH = Path(__file__).parent.with_name("stripe_fixtures.json")
API_VERSION = "2026-10-28.endive"  # stripe-python 16.1's pinned API version
ID_ALPHABET = string.ascii_letters + string.digits
MAX_LIST_LIMIT = 100


def words(text: str) -> frozenset[str]:
    """The set of whitespace-separated words in ``text`` (for parameter name lists)."""
    return frozenset(text.split())


#: what the lists of a payment's refunds and disputes take
PAYMENT_LIST_PARAMS = words("charge created ending_before expand limit payment_intent starting_after")
ZERO_DECIMAL_CURRENCIES = words("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


@functools.cache
def _fixtures() -> dict[str, dict[str, Any]]:
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))


def fixture(name: str) -> dict[str, Any]:
    """A fresh deep copy of Stripe's example object ``name`` (e.g. ``"checkout.session"``)."""
    return copy.deepcopy(_fixtures()[name])


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as ``pi_3Qx...``."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def decode_form(body: str) -> dict[str, Any]:
    """Decode Stripe's form encoding (``a[b][0][c]=1``, ``expand[]=x``) into nested dicts and lists.

    All leaf values stay strings, as on the wire. Raises ``ValueError`` on conflicting keys.
    """
    root: dict[str, Any] = {}
    for raw_key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", raw_key)
        if not match:
            raise ValueError(f"Invalid parameter name: {raw_key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `a[]=x` appends
                part = str(len(node))
                while part in node:
                    part = str(int(part) + 1)
            if last:
                if part in node:
                    if isinstance(node[part], dict):
                        raise ValueError(f"Invalid parameter name: {raw_key}")
                    continue  # Stripe keeps the first value of a repeated key
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"Invalid parameter name: {raw_key}")
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all decimal indexes into lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def format_amount(amount: int, currency: str) -> str:
    """Format a minor-unit amount for display, e.g. ``format_amount(2500, "usd") == "$25.00"``."""
    currency = currency.lower()
    number = f"{amount:,}" if currency in ZERO_DECIMAL_CURRENCIES else f"{amount / 100:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


def mask_key(key: str) -> str:
    """Stripe's way of naming a key in an error: prefix and last four characters only."""
    prefix_match = re.match(r"^(?:sk|rk|pk)_(?:test|live)_", key)
    prefix = prefix_match.group(0) if prefix_match else ""
    rest = key[len(prefix) :]
    if len(rest) <= 8:
        return prefix + "*" * len(rest)
    return prefix + "*" * (len(rest) - 4) + rest[-4:]


class Headers(dict[str, str]):
    """A plain dict of request headers whose lookups ignore case (``h["idempotency-key"]``)."""

    def _key(self, key: object) -> object:
        if isinstance(key, str):
            lowered = key.lower()
            for existing in dict.keys(self):
                if existing.lower() == lowered:
                    return existing
        return key

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, self._key(key))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        """Case-insensitive ``dict.get``."""
        return dict.get(self, self._key(key), default)  # type: ignore[call-overload]


class StripeError(Exception):
    """An API error answered in Stripe's shape: ``{"error": {"type", "message", "code"?, "param"?}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def missing(param: str) -> StripeError:
    """Stripe's error for a required parameter left out."""
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def unknown(param: str) -> StripeError:
    """Stripe's error for a parameter it does not know."""
    return StripeError(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)


def no_such(kind: str, object_id: str, param: str, status: int = 404) -> StripeError:
    """Stripe's ``resource_missing`` error: ``No such refund: 're_123'``."""
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def as_int(value: Any, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A form value as an integer, with Stripe's errors for what is not one or is out of range."""
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value.strip()):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    number = int(value)
    if minimum is not None and number < minimum:
        raise StripeError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    if maximum is not None and number > maximum:
        raise StripeError(
            400,
            f"This value must be less than or equal to {maximum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


def as_bool(value: Any, param: str) -> bool:
    """A form value as a boolean (``true``/``false``, as the SDK sends them)."""
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def as_dict(value: Any, param: str) -> dict[str, Any]:
    """A form value as a hash (an empty string clears it, as Stripe allows)."""
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid object", code="parameter_invalid_object", param=param)
    return value


def as_str(value: Any, param: str) -> str:
    """A form value as a string."""
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {param}", code="parameter_invalid_string", param=param)
    return value


def as_list(value: Any, param: str) -> list[Any]:
    """A form value as an array (``a[]=x`` or ``a[0]=x``)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise StripeError(400, "Invalid array", code="parameter_invalid_array", param=param)
    return value


def check_keys(given: dict[str, Any], allowed: Iterable[str], prefix: str) -> None:
    """Refuse parameters not in ``allowed`` as Stripe does (``parameter_unknown``)."""
    for key in given:
        if key not in allowed:
            raise unknown(f"{prefix}[{key}]" if prefix else key)


def valid_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """Validate a ``metadata`` hash with Stripe's limits; empty values delete keys."""
    data = as_dict(value, param)
    if len(data) > 50:
        raise StripeError(400, "Metadata can have up to 50 keys.", param=param)
    result: dict[str, str] = {}
    for key, item in data.items():
        if len(key) > 40:
            raise StripeError(
                400, f"Metadata keys can have up to 40 characters ({key}).", param=f"{param}[{key}]"
            )
        if not isinstance(item, str):
            raise StripeError(400, "Invalid string", code="parameter_invalid_string", param=f"{param}[{key}]")
        if len(item) > 500:
            raise StripeError(400, "Metadata values can have up to 500 characters.", param=f"{param}[{key}]")
        if item != "":
            result[key] = item
    return result


def created_filter(value: Any, param: str = "created") -> Callable[[int], bool]:
    """``created=T`` or ``created[gt|gte|lt|lte]=T`` as a predicate on a timestamp."""
    if isinstance(value, str):
        exact = as_int(value, param)
        return lambda created: created == exact
    bounds = as_dict(value, param)
    check_keys(bounds, ("gt", "gte", "lt", "lte"), param)
    limits = {op: as_int(bound, f"{param}[{op}]") for op, bound in bounds.items()}
    tests: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return lambda created: all(tests[op](created, limit) for op, limit in limits.items())


def list_filter(params: dict[str, Any], fields: Iterable[str] = ()) -> Callable[[dict[str, Any]], bool]:
    """A list endpoint's filters as one predicate: ``created`` and exact matches on ``fields`` (``charge``)."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for field in fields:
        if params.get(field):
            wanted = as_str(params[field], field)
            tests.append(lambda obj, field=field, wanted=wanted: obj.get(field) == wanted)
    if params.get("created"):
        in_range = created_filter(params["created"])
        tests.append(lambda obj: in_range(obj["created"]))
    return lambda obj: all(test(obj) for test in tests)


def list_object(
    ordered: list[dict[str, Any]],
    params: dict[str, Any],
    url: str,
    *,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    kind: str = "object",
) -> dict[str, Any]:
    """One page of a Stripe list, ``ordered`` as Stripe lists it (newest first for most resources).

    Pages as Stripe does: ``limit`` (1-100, default 10), ``starting_after`` (the page after that id),
    ``ending_before`` (the page just before it, still in list order), ``has_more``. The cursor is placed
    in the whole list, then ``keep`` filters, so a cursor the filters leave out still works.
    """
    limit = as_int(params["limit"], "limit", minimum=1, maximum=MAX_LIST_LIMIT) if params.get("limit") else 10
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise StripeError(400, "You may only specify one of these parameters: ending_before, starting_after.")
    ids = [item["id"] for item in ordered]
    for cursor, param in ((after, "starting_after"), (before, "ending_before")):
        if cursor and cursor not in ids:
            raise no_such(kind, as_str(cursor, param), param, status=400)
    if after:
        candidates = ordered[ids.index(after) + 1 :]
    elif before:
        candidates = ordered[: ids.index(before)]
    else:
        candidates = ordered
    if keep is not None:
        candidates = [item for item in candidates if keep(item)]
    if before:  # the page nearest the cursor; has_more says whether more lie further back from it
        page, has_more = candidates[-limit:], len(candidates) > limit
    else:
        page, has_more = candidates[:limit], len(candidates) > limit
    return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}


def stripe_statuses(resource: type) -> set[str]:
    """The statuses stripe-python's type of ``resource`` lists (``status: Union[Literal[...], str]``)."""
    annotation = resource.__annotations__["status"]
    literal = next(arg for arg in typing.get_args(annotation) if typing.get_origin(arg) is typing.Literal)
    return set(typing.get_args(literal))

"""The credit pack catalogue (TOML). Prices and credits come only from here."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import iso4217

from backend.config import ConfigError
from resources import currencies

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    credits: int
    amount: int  # in the currency's minor unit
    currency: str  # ISO 4217, lower case as Stripe writes it
    # Whether the price holds the tax ("inclusive") or the tax comes on top ("exclusive", the default), where
    # tax is collected (CREDITDESK_AUTOMATIC_TAX): Stripe's price tax_behavior.
    tax_behavior: str = "exclusive"

    def as_json(self, *, tax_added: bool = False) -> dict[str, object]:
        """As ``GET /api/billing/packs`` lists it; ``tax`` says how checkout's tax meets the price where checkout
        adds tax (``tax_added``): ``exclusive`` (on top of it), ``inclusive`` (in it), else None."""
        return {"id": self.id, "name": self.name, "credits": self.credits, "amount": self.amount,
                "currency": self.currency, "pricePerCredit": currencies.per_unit(self.amount, self.credits),
                "tax": self.tax_behavior if tax_added else None}


@dataclass(frozen=True)
class PromotionCode:
    """A code a buyer may enter at the stub checkout (in Stripe mode, Stripe's own promotion codes apply)."""

    code: str  # as written in the catalogue; entered in any case
    percent_off: int  # 1 to 100

    def discount(self, subtotal: int) -> int:
        """What it takes off ``subtotal`` (minor units), rounded half up to the minor unit, as Stripe rounds."""
        return (subtotal * self.percent_off + 50) // 100


@dataclass(frozen=True)
class SignupBonus:
    """``[signup_bonus]``: promotional credits every new account is given once, when it is made (issue 19)."""

    credits: int
    expires_in_days: int | None = None  # None: they do not expire
    description: str = "Welcome bonus"


class Catalogue:
    def __init__(self, packs: list[Pack], promotion_codes: list[PromotionCode] | None = None,
                 stub_tax_percent: int = 0, signup_bonus: SignupBonus | None = None) -> None:
        self.packs = packs
        self.signup_bonus = signup_bonus
        self.stub_tax_percent = stub_tax_percent  # the tax the stub checkout charges, where tax is collected
        self._by_id = {pack.id: pack for pack in packs}
        self.promotion_codes = promotion_codes or []
        self._codes = {promotion.code.upper(): promotion for promotion in self.promotion_codes}

    def get(self, pack_id: str) -> Pack | None:
        return self._by_id.get(pack_id)

    def promotion(self, code: str) -> PromotionCode | None:
        return self._codes.get(code.strip().upper())

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the pack catalogue {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the pack catalogue {path} is not valid TOML: {exc}") from exc
        raw_packs = data.get("packs", [])
        if not isinstance(raw_packs, list):
            raise ConfigError(f"the pack catalogue {path}: packs must be a list of [[packs]] tables")
        packs: list[Pack] = []
        for index, raw in enumerate(raw_packs):
            pack = _pack(raw, f"{path}: {_name(raw, index)}")
            if pack.id in {p.id for p in packs}:
                raise ConfigError(f"{path}: {_name(raw, index)}: the id {pack.id!r} is used twice")
            packs.append(pack)
        if not packs:
            raise ConfigError(f"the pack catalogue {path} has no [[packs]]")
        raw_codes = data.get("promotion_codes", [])
        if not isinstance(raw_codes, list):
            raise ConfigError(f"the pack catalogue {path}: promotion_codes must be a list of [[promotion_codes]] "
                              "tables")
        codes: list[PromotionCode] = []
        for index, raw in enumerate(raw_codes):
            code = _promotion_code(raw, f"{path}: promotion code number {index + 1}")
            if code.code.upper() in {c.code.upper() for c in codes}:
                raise ConfigError(f"{path}: the promotion code {code.code!r} is there twice")
            codes.append(code)
        stub_tax = data.get("stub_tax_percent", 0)
        if isinstance(stub_tax, bool) or not isinstance(stub_tax, int) or not 0 <= stub_tax <= 100:
            raise ConfigError(f"the pack catalogue {path}: stub_tax_percent is a whole number from 0 to 100")
        return cls(packs, codes, stub_tax, _signup_bonus(data.get("signup_bonus"), f"the pack catalogue {path}"))


def _signup_bonus(raw: object, where: str) -> SignupBonus | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "credits" not in raw or not set(raw) <= {"credits", "expires_in_days",
                                                                              "description"}:
        raise ConfigError(f"{where}: [signup_bonus] needs credits, and may have expires_in_days and description")
    credits, days, description = raw["credits"], raw.get("expires_in_days"), raw.get("description", "Welcome bonus")
    if isinstance(credits, bool) or not isinstance(credits, int) or not 1 <= credits <= MAX_CREDITS:
        raise ConfigError(f"{where}: [signup_bonus] credits must be a whole number from 1 to {MAX_CREDITS:,}")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650):
        raise ConfigError(f"{where}: [signup_bonus] expires_in_days must be a whole number from 1 to 3650")
    if not isinstance(description, str) or not description.strip() or len(description) > 100:
        raise ConfigError(f"{where}: [signup_bonus] description must be 1 to 100 characters")
    return SignupBonus(credits, days, description.strip())


# What a pack may hold: credits within what a balance can take, and a price Stripe accepts in one line
# item (at most eight digits in the minor unit, in a currency of ISO 4217).
MAX_CREDITS = 1_000_000_000
MAX_AMOUNT = 99_999_999


TAX_BEHAVIORS = ("exclusive", "inclusive")
_CODE = re.compile(r"^[A-Za-z0-9_-]{3,40}$")


def _promotion_code(raw: object, where: str) -> PromotionCode:
    if not isinstance(raw, dict) or set(raw) != {"code", "percent_off"}:
        raise ConfigError(f"{where}: needs code and percent_off (and nothing else)")
    code, percent = raw["code"], raw["percent_off"]
    if not isinstance(code, str) or not _CODE.match(code):
        raise ConfigError(f"{where}: code must be 3 to 40 letters, digits, '-' or '_'")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ConfigError(f"{where}: percent_off must be a whole number from 1 to 100")
    return PromotionCode(code, percent)


def _name(raw: object, index: int) -> str:
    """How an error names a pack: its id when it has a usable one, and its place in the file."""
    pack_id = raw.get("id") if isinstance(raw, dict) else None
    return f"pack {pack_id!r} (number {index + 1})" if isinstance(pack_id, str) else f"pack number {index + 1}"


def _pack(raw: object, where: str) -> Pack:
    if not isinstance(raw, dict) or not {"id", "name", "credits", "amount", "currency"} <= set(raw):
        raise ConfigError(f"{where}: needs id, name, credits, amount and currency")
    tax_behavior = raw.get("tax_behavior", "exclusive")
    if tax_behavior not in TAX_BEHAVIORS:
        raise ConfigError(f"{where}: tax_behavior is exclusive (tax on top of the price) or inclusive (in it)")
    pack_id, name, currency = raw["id"], raw["name"], raw["currency"]
    if not isinstance(pack_id, str) or not _ID.match(pack_id):
        raise ConfigError(f"{where}: id must be lower-case letters, digits, '-' or '_'")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ConfigError(f"{where}: name must be a non-empty string of at most 100 characters")
    for field, highest in (("credits", MAX_CREDITS), ("amount", MAX_AMOUNT)):
        value = raw[field]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{where}: {field} must be a positive whole number")
        if value > highest:
            raise ConfigError(f"{where}: {field} must be at most {highest:,}")
    if not isinstance(currency, str) or not _CURRENCY.match(currency.lower()):
        raise ConfigError(f"{where}: currency must be a three-letter ISO code")
    try:
        iso4217.Currency(currency.upper())
    except ValueError:
        raise ConfigError(f"{where}: currency {currency!r} is not an ISO 4217 currency") from None
    refusal = currencies.refusal(raw["amount"], currency)
    if refusal:
        raise ConfigError(f"{where}: amount {raw['amount']}: {refusal}")
    return Pack(id=pack_id, name=name, credits=raw["credits"], amount=raw["amount"], currency=currency.lower(),
                tax_behavior=tax_behavior)

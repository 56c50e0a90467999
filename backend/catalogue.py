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

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "credits": self.credits, "amount": self.amount,
                "currency": self.currency, "pricePerCredit": currencies.per_unit(self.amount, self.credits)}


class Catalogue:
    def __init__(self, packs: list[Pack]) -> None:
        self.packs = packs
        self._by_id = {pack.id: pack for pack in packs}

    def get(self, pack_id: str) -> Pack | None:
        return self._by_id.get(pack_id)

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
        return cls(packs)


# What a pack may hold: credits within what a balance can take, and a price Stripe accepts in one line
# item (at most eight digits in the minor unit, in a currency of ISO 4217).
MAX_CREDITS = 1_000_000_000
MAX_AMOUNT = 99_999_999


def _name(raw: object, index: int) -> str:
    """How an error names a pack: its id when it has a usable one, and its place in the file."""
    pack_id = raw.get("id") if isinstance(raw, dict) else None
    return f"pack {pack_id!r} (number {index + 1})" if isinstance(pack_id, str) else f"pack number {index + 1}"


def _pack(raw: object, where: str) -> Pack:
    if not isinstance(raw, dict) or not {"id", "name", "credits", "amount", "currency"} <= set(raw):
        raise ConfigError(f"{where}: needs id, name, credits, amount and currency")
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
    return Pack(id=pack_id, name=name, credits=raw["credits"], amount=raw["amount"], currency=currency.lower())

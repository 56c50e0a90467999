"""The credit pack catalogue (TOML). Prices and credits come only from here."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from backend.config import ConfigError

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
                "currency": self.currency}


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
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the pack catalogue {path} is not valid TOML: {exc}") from exc
        packs: list[Pack] = []
        for index, raw in enumerate(data.get("packs", [])):
            where = f"{path}, pack {index + 1}"
            try:
                pack = Pack(
                    id=raw["id"], name=raw["name"], credits=raw["credits"], amount=raw["amount"],
                    currency=raw["currency"].lower(),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{where}: needs id, name, credits, amount and currency") from exc
            if not isinstance(pack.id, str) or not _ID.match(pack.id):
                raise ConfigError(f"{where}: id must be lower-case letters, digits, '-' or '_'")
            if not isinstance(pack.name, str) or not pack.name.strip():
                raise ConfigError(f"{where}: name must be a non-empty string")
            for name in ("credits", "amount"):
                value = getattr(pack, name)
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"{where}: {name} must be a positive whole number")
            if not _CURRENCY.match(pack.currency):
                raise ConfigError(f"{where}: currency must be a three-letter ISO code")
            if pack.id in {p.id for p in packs}:
                raise ConfigError(f"{where}: the id {pack.id!r} is used twice")
            packs.append(pack)
        if not packs:
            raise ConfigError(f"the pack catalogue {path} has no [[packs]]")
        return cls(packs)

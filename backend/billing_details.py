"""A buyer's billing details: a name, a postal address and a tax id, set once and printed on every receipt after.

Stored per user (``billing_details``); when an order is paid its receipt takes a copy of them as they are then
(``orders.billing_details``, :func:`snapshot`): a receipt says what it said when it was issued, as an accountant
expects, whatever the buyer changes later. In Stripe mode they are also given to the user's Stripe customer, whose
invoices carry them (:mod:`backend.purchases`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from backend import prepared
from backend.db import utcnow
from backend.schema import billing_details as table
from resources.countries import COUNTRY_NAMES, country_name
from resources.tax_id_types import TAX_ID_TYPE_NAMES

# Bounds of each field, in characters (Stripe's own for a customer's name and address lines, and its tax ids).
LIMITS = {"name": 256, "line1": 200, "postal_code": 40, "tax_id_value": 100}  # line1's for every address line

# The tax id types Stripe takes (stripe-python 16.1's CustomerTaxIdCreateParams; tests/backend/test_billing_details.py
# holds the two equal), so that a type Stripe would refuse is refused here, in stub mode too.
TAX_ID_TYPES = frozenset((
    "ad_nrt", "ae_trn", "al_tin", "am_tin", "ao_tin", "ar_cuit", "au_abn", "au_acn", "au_arn", "au_wpn", "aw_tin",
    "az_tin", "ba_tin", "bb_tin", "bd_bin", "bf_ifu", "bg_uic", "bh_vat", "bj_ifu", "bo_tin", "br_cnpj", "br_cpf",
    "bs_tin", "bw_vat", "by_tin", "ca_bn", "ca_gst_hst", "ca_pst_bc", "ca_pst_mb", "ca_pst_sk", "ca_qst", "cd_nif",
    "ch_uid", "ch_vat", "ci_vat", "cl_tin", "cm_niu", "cn_tin", "co_nit", "cr_tin", "cv_nif", "cz_dic", "de_stn",
    "do_rcn", "ec_ruc", "eg_tin", "es_cif", "et_tin", "eu_oss_vat", "eu_vat", "fo_vat", "fr_siren", "fr_siret",
    "fr_spi", "gb_vat", "ge_vat", "gh_tin", "gi_tin", "gn_nif", "hk_br", "hr_oib", "hu_tin", "ic_nif", "id_npwp",
    "il_vat", "in_gst", "is_kt", "is_vat", "it_cf", "jp_cn", "jp_rn", "jp_trn", "ke_pin", "kg_tin", "kh_tin",
    "kr_brn", "kz_bin", "la_tin", "li_uid", "li_vat", "lk_vat", "ma_vat", "md_cf", "md_vat", "me_pib", "mk_vat",
    "mr_nif", "mu_vat", "mx_rfc", "my_frp", "my_itn", "my_sst", "mz_nuit", "ng_tin", "no_vat", "no_voec", "np_pan",
    "nz_bn", "nz_gst", "om_vat", "pe_ruc", "ph_tin", "pl_nip", "pt_nif", "py_ruc", "ro_tin", "rs_pib", "ru_inn",
    "ru_kpp", "sa_vat", "sg_gst", "sg_uen", "si_tin", "sm_coe", "sn_ninea", "sr_fin", "sv_nit", "th_vat", "tj_tin",
    "tr_tin", "tt_bir", "tt_vat", "tw_vat", "tz_vat", "ua_vat", "ug_tin", "us_ein", "uy_ruc", "uz_tin", "uz_vat",
    "ve_rif", "vn_tin", "za_vat", "zm_tin", "zw_tin",
))

def tax_id_name(tax_id_type: str) -> str:
    """A tax id type as a receipt names it: by the words the app offers it with (resources.tax_id_types: ``eu_vat``
    is "EU VAT number"), one without words by its code upper-cased (``ca_pst_bc``: "CA PST BC")."""
    return TAX_ID_TYPE_NAMES.get(tax_id_type, tax_id_type.upper().replace("_", " "))


# ISO 3166-1 alpha-2: the country codes Stripe takes for an address, from the one list both sides keep with
# their names (resources/countries.py: the app offers the names, a receipt prints them).
COUNTRIES = frozenset(COUNTRY_NAMES)


@dataclass(frozen=True)
class BillingDetails:
    """What a receipt or an invoice says of its buyer; an empty field is one left blank."""

    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, or empty
    tax_id_type: str | None = None  # one of TAX_ID_TYPES, with its value; or neither
    tax_id_value: str | None = None

    @property
    def address_lines(self) -> list[str]:
        """The address as a receipt prints it, blank parts left out, the country by its name ("Germany", not "DE")."""
        town = " ".join(part for part in (self.postal_code, self.city) if part)
        country = country_name(self.country) if self.country else ""
        return [line for line in (self.line1, self.line2, town, self.state, country) if line]

    @property
    def is_empty(self) -> bool:
        return self == BillingDetails()

    def as_json(self) -> dict[str, Any]:
        """As ``GET /api/billing/details`` answers them."""
        tax_id = None if self.tax_id_type is None else {"type": self.tax_id_type, "value": self.tax_id_value}
        return {"name": self.name, "address": {"line1": self.line1, "line2": self.line2, "city": self.city,
                                               "postalCode": self.postal_code, "state": self.state,
                                               "country": self.country},
                "taxId": tax_id}


# Read at every grant (snapshot), so built once and run on SQLite's cursor as the webhook's other statements are.
_BY_USER = prepared.hot("billing details by user", select(table).where(table.c.user_id == bindparam("user_id")))


def read(conn: Connection, user_id: int) -> BillingDetails | None:
    """The user's billing details, or None when they never set any."""
    row = prepared.run(conn, _BY_USER, {"user_id": user_id}).first()
    if row is None:
        return None
    return BillingDetails(**{name: row[name] for name in BillingDetails.__dataclass_fields__})


def save(conn: Connection, user_id: int, details: BillingDetails) -> None:
    """Set the user's billing details (all of them: a field left blank is cleared)."""
    conn.execute(delete(table).where(table.c.user_id == user_id))
    conn.execute(insert(table).values(user_id=user_id, updated_at=utcnow(), **asdict(details)))


def snapshot(conn: Connection, user_id: int) -> str | None:
    """The user's billing details now, as an order keeps them when paid (None when there are none)."""
    return _snapshot_text(read(conn, user_id))


# The same read as columns of another statement's row (the order a payment pays, LEFT JOIN its buyer's details:
# backend.orders.to_pay), so that a grant needs no statement of its own for them.
SNAPSHOT_COLUMNS = (table.c.user_id.label("billing_user_id"),
                    *(table.c[name].label(f"billing_{name}") for name in BillingDetails.__dataclass_fields__))


def snapshot_from(row: Mapping[str, Any]) -> str | None:
    """:func:`snapshot` from a row holding :data:`SNAPSHOT_COLUMNS` (all None where the buyer has none)."""
    if row["billing_user_id"] is None:
        return None
    fields = BillingDetails.__dataclass_fields__
    return _snapshot_text(BillingDetails(**{name: row[f"billing_{name}"] for name in fields}))


def _snapshot_text(details: BillingDetails | None) -> str | None:
    return None if details is None or details.is_empty else json.dumps(asdict(details))


def from_snapshot(text: str | None) -> BillingDetails | None:
    """An order's copy back; None for none, or for one this version cannot read (a receipt still opens)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return BillingDetails(**{name: data[name] for name in BillingDetails.__dataclass_fields__ if name in data})
    except (ValueError, TypeError):
        return None

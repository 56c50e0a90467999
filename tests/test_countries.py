"""The countries and tax id types the billing details offer by name (resources/countries.py,
resources/tax_id_types.py) are those the backend takes."""

from __future__ import annotations

from backend.billing_details import COUNTRIES, TAX_ID_TYPES
from resources.countries import COUNTRY_NAMES, country_name
from resources.tax_id_types import TAX_ID_TYPE_NAMES, tax_id_type_name


def test_every_country_the_backend_takes_has_a_name_and_no_other() -> None:
    assert set(COUNTRY_NAMES) == COUNTRIES and len(COUNTRIES) == 250  # Stripe's list: 250 codes, XK among them
    assert len(set(COUNTRY_NAMES.values())) == len(COUNTRY_NAMES)  # no two alike in the list
    assert country_name("de") == "Germany" and country_name("GE") == "Georgia" and country_name("ZZ") == "ZZ"


def test_every_named_tax_id_type_is_one_the_backend_takes() -> None:
    assert set(TAX_ID_TYPE_NAMES) <= TAX_ID_TYPES
    assert tax_id_type_name("eu_vat") == "EU VAT number" and tax_id_type_name("is_vat") == "is_vat"

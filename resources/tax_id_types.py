"""Tax id types by name: Stripe's codes for the tax ids most buyers have, with the words a buyer knows them by.

Shared by both sides (neither imports the other): the app offers the names and stores the code; a page or a
receipt can write the name of a stored code. The backend takes every type Stripe does
(``backend.billing_details.TAX_ID_TYPES``); a type without a name here is written as its code.
"""

from __future__ import annotations

# In the order the billing details offer them.
TAX_ID_TYPE_NAMES: dict[str, str] = {
    "eu_vat": "EU VAT number",
    "gb_vat": "GB VAT number",
    "ch_vat": "Swiss VAT number",
    "no_vat": "Norwegian VAT number",
    "us_ein": "US EIN",
    "ca_bn": "Canadian business number (BN)",
    "ca_gst_hst": "Canadian GST/HST number",
    "au_abn": "Australian Business Number (ABN)",
    "nz_gst": "New Zealand GST number",
    "in_gst": "Indian GST number",
    "jp_cn": "Japanese corporate number",
    "sg_gst": "Singapore GST number",
    "za_vat": "South African VAT number",
    "br_cnpj": "Brazilian CNPJ",
    "mx_rfc": "Mexican RFC",
}


def tax_id_type_name(code: str) -> str:
    """The words for ``code``; the code itself when it has none here."""
    return TAX_ID_TYPE_NAMES.get(code, code)

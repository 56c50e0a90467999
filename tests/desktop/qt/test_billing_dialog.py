"""Buy → Billing details…: the buyer's name, address and tax id for receipts, read and saved on a worker against a
real backend (stub mode), with what went wrong said in the dialog."""

from __future__ import annotations

from typing import Any

import requests

from desktop.qt.billing_dialog import NO_TAX_ID, BillingDetailsDialog
from desktop.qt.main_window import MainWindow
from tests.desktop.qt.conftest import sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def test_billing_details_are_saved_and_printed_on_the_next_receipt(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    assert not window.billing_action.isEnabled()  # signed out
    sign_up(qtbot, window)
    assert window.billing_action.isEnabled() and window.billing_action in window.buy_menu.actions()
    dialog = window.show_billing_details()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)  # loaded: blank
    assert dialog.name.text() == "" and dialog.tax_id_type.currentText() == NO_TAX_ID
    dialog.name.setText("Muster GmbH")
    dialog.line1.setText("Hauptstr. 1")
    dialog.postal_code.setText("10115")
    dialog.city.setText("Berlin")
    dialog.country.setCurrentText("germany")  # typed: its name, any case
    dialog.tax_id_type.setCurrentText("EU VAT number")
    dialog.tax_id_value.setText("DE123456789")
    dialog.save_button.click()
    assert dialog.status.text() == "Saving…" and not dialog.name.isEnabled()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved at"), timeout=10_000)
    assert dialog.country.currentText() == "Germany" and dialog.country_code() == "DE"  # as the backend kept it
    app_api = window.controller.backend.api
    assert app_api is not None
    api = Api(stub_backend.url, app_api.token)  # the test's own client: the app's runs on its workers only
    assert api.get("/api/billing/details").json() == {
        "name": "Muster GmbH", "address": {"line1": "Hauptstr. 1", "line2": "", "city": "Berlin",
                                           "postalCode": "10115", "state": "", "country": "DE"},
        "taxId": {"type": "eu_vat", "value": "DE123456789"}}

    dialog.tax_id_type.setCurrentText("vat")  # not a type Stripe takes: the backend says so, nothing changes
    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Not saved"), timeout=10_000)
    assert "tax id type" in dialog.status.text()
    assert dialog.save_button.isEnabled() and api.get("/api/billing/details").json()["taxId"]["type"] == "eu_vat"
    dialog.close()

    reopened = window.show_billing_details()
    assert reopened is dialog
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled() and dialog.tax_id_type.currentText() == "EU VAT number",
                    timeout=10_000)  # read again from the backend
    checkout = api.checkout("starter")
    requests.post(checkout["url"] + "/pay", timeout=10)
    receipt = api.get("/api/billing/receipts").json()["receipts"][0]
    assert "Muster GmbH" in requests.get(receipt["url"], timeout=10).text


def test_the_country_is_chosen_by_name_and_words_that_name_no_country_are_not_saved(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    """From the walkthrough of issue 18: "Germany" typed in a two-letter field was saved as GE (Georgia)."""
    window: MainWindow = make_window(stub_backend.url)
    sign_up(qtbot, window)
    dialog = window.show_billing_details()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    names = [dialog.country.itemText(i) for i in range(dialog.country.count())]
    assert {"Germany", "Georgia", "United States", "Côte d'Ivoire"} <= set(names)
    assert dialog.country.itemData(names.index("Germany")) == "DE"
    completer = dialog.country.completer()
    assert completer is not None
    completer.setCompletionPrefix("erman")  # searched anywhere in the name
    assert [completer.completionModel().index(i, 0).data() for i in range(completer.completionCount())] == ["Germany"]
    dialog.country.setCurrentText("Germ")
    dialog.save_button.click()
    assert dialog.status.text().startswith("Not saved: there is no country called “Germ”")
    assert dialog.save_button.isEnabled()
    dialog.country.setCurrentText("gb")  # the code is taken too
    dialog.tax_id_type.setCurrentText("GB VAT number")
    dialog.tax_id_value.setText("GB123456789")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved at"), timeout=10_000)
    assert dialog.country.currentText() == "United Kingdom"
    app_api = window.controller.backend.api
    assert app_api is not None
    kept = Api(stub_backend.url, app_api.token).get("/api/billing/details").json()
    assert kept["address"]["country"] == "GB" and kept["taxId"] == {"type": "gb_vat", "value": "GB123456789"}

    dialog.tax_id_type.setCurrentText("is_vat")  # a type Stripe takes that the list does not offer: typed
    dialog.tax_id_value.setText("12345")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved at"), timeout=10_000)
    assert dialog.tax_id_type.currentText() == "is_vat" and dialog.tax_id_type_code() == "is_vat"


def test_the_dialog_shows_its_hints_and_fields_whole_and_grows_for_its_note(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    """From the walkthrough: hints cut ("Your name or your c…"), the name shown from its end, and "Saved at…" made
    the fields scroll (hiding the tax id number) although the screen had room."""
    window: MainWindow = make_window(stub_backend.url)
    sign_up(qtbot, window)
    dialog: BillingDetailsDialog = window.show_billing_details()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    for field in (dialog.name, dialog.line1, dialog.tax_id_value):
        hint = field.fontMetrics().horizontalAdvance(field.placeholderText())
        assert field.width() > hint + 8, field.placeholderText()
    dialog.name.setText("Erika Mustermann GmbH und Söhne, Abteilung Einkauf")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved at"), timeout=10_000)
    qtbot.waitUntil(lambda: dialog.fields_area.viewport().height() >= dialog.fields.sizeHint().height())
    # (the scroll bar is hidden by the scroll area's next layout pass, after the viewport has grown)
    qtbot.waitUntil(lambda: not dialog.fields_area.verticalScrollBar().isVisible())
    assert dialog.name.cursorPosition() == 0  # shown from its start
    dialog.close()
    dialog = window.show_billing_details()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    assert dialog.name.text().startswith("Erika") and dialog.name.cursorPosition() == 0

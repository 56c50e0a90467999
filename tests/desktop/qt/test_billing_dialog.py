"""Buy → Billing details…: the buyer's name, address and tax id for receipts, read and saved on a worker against a
real backend (stub mode), with what went wrong said in the dialog."""

from __future__ import annotations

from typing import Any

import requests

from desktop.qt.billing_dialog import NO_TAX_ID
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
    dialog.country.setText("de")
    dialog.tax_id_type.setCurrentText("eu_vat")
    dialog.tax_id_value.setText("DE123456789")
    dialog.save_button.click()
    assert dialog.status.text() == "Saving…" and not dialog.name.isEnabled()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved at"), timeout=10_000)
    assert dialog.country.text() == "DE"  # as the backend kept it
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
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled() and dialog.tax_id_type.currentText() == "eu_vat",
                    timeout=10_000)  # read again from the backend
    checkout = api.checkout("starter")
    requests.post(checkout["url"] + "/pay", timeout=10)
    receipt = api.get("/api/billing/receipts").json()["receipts"][0]
    assert "Muster GmbH" in requests.get(receipt["url"], timeout=10).text

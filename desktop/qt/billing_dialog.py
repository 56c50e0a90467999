"""Buy → Billing details…: the name, address and tax id printed on the receipts of purchases paid from now on.

Read from and saved to the backend (``GET/PUT /api/billing/details``) on a worker: the dialog says "Loading…" or
"Saving…" meanwhile and never waits on the network. In Stripe mode the backend gives them to Stripe too, so that
Stripe's invoices carry them."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import BillingDetails
from desktop.qt import formatting, screen_fit
from desktop.qt.controller import AppController
from desktop.qt.workers import describe

# The tax id types most buyers have; the backend takes every type Stripe does, which may be typed in.
COMMON_TAX_ID_TYPES = ("eu_vat", "gb_vat", "ch_vat", "no_vat", "us_ein", "ca_bn", "au_abn", "in_gst", "jp_cn")
NO_TAX_ID = "No tax id"
# The backend names the fields it refused by their JSON paths ("taxId.type"): the dialog says them as its labels do.
FIELD_WORDS = {"taxId.type": "tax id type", "taxId.value": "tax id number", "address.line1": "address line 1",
               "address.line2": "address line 2", "address.city": "city", "address.postalCode": "postal code",
               "address.state": "state or region", "address.country": "country"}


class BillingDetailsDialog(QDialog):
    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setWindowTitle("Billing details")
        self.setObjectName("billingDetailsDialog")
        self.details: BillingDetails | None = None  # as the backend last said they are

        intro = QLabel("Printed on the receipt of every purchase you pay from now on; receipts already issued "
                       "keep what they say.")
        intro.setWordWrap(True)
        self.name = self._field(256, "Your name or your company's")
        self.line1 = self._field(200, "Street and number")
        self.line2 = self._field(200)
        self.city = self._field(200)
        self.postal_code = self._field(40)
        self.state = self._field(200)
        self.country = self._field(2, "Two letters, such as DE or US")
        self.tax_id_type = QComboBox()
        self.tax_id_type.setEditable(True)
        self.tax_id_type.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.tax_id_type.addItems([NO_TAX_ID, *COMMON_TAX_ID_TYPES])
        self.tax_id_value = self._field(100, "Such as DE123456789")

        fields = QWidget()
        form = QFormLayout(fields)
        form.setContentsMargins(0, 0, 0, 0)
        for text, field in (("&Name", self.name), ("Address line &1", self.line1), ("Address line &2", self.line2),
                            ("&City", self.city), ("&Postal code", self.postal_code),
                            ("State or re&gion", self.state), ("C&ountry", self.country),
                            ("Tax id &type", self.tax_id_type), ("Tax id n&umber", self.tax_id_value)):
            label = QLabel(text)
            label.setBuddy(field)
            field.setAccessibleName(text.replace("&", ""))
            form.addRow(label, field)

        self.status = QLabel()
        self.status.setObjectName("billingStatus")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.save_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Save)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.save_button.setText("&Save")  # the same on every theme, as in Spend controls (Esc closes)
        close.setText("Close")
        self.save_button.clicked.connect(self.save)
        close.clicked.connect(self.close)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Save), self).activated.connect(self.save)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(screen_fit.scrolling(fields, "billingScroll"), 1)  # on a small screen the fields scroll
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        screen_fit.keep_on_screen(self)
        self.load()

    @staticmethod
    def _field(limit: int, placeholder: str = "") -> QLineEdit:
        field = QLineEdit()
        field.setMaxLength(limit)
        field.setPlaceholderText(placeholder)
        return field

    def _fields(self) -> list[QWidget]:
        return [self.name, self.line1, self.line2, self.city, self.postal_code, self.state, self.country,
                self.tax_id_type, self.tax_id_value]

    def _busy(self, busy: bool, message: str) -> None:
        for field in self._fields():
            field.setEnabled(not busy)
        self.save_button.setEnabled(not busy)
        self.status.setText(message)

    def load(self) -> None:
        """Ask the backend for the details (again: each time the dialog is opened)."""
        api = self.app.backend.api
        if api is None or not self.app.session.signed_in:
            self._busy(True, "Sign in first.")
            return
        self._busy(True, "Loading…")
        self.app.workers.run(api.billing_details, self._loaded, self._load_failed)

    def _loaded(self, details: BillingDetails) -> None:
        self.show_details(details)
        self._busy(False, "")

    def _load_failed(self, error: BaseException) -> None:
        self._busy(True, f"Your billing details could not be loaded: {describe(error)}")
        self.save_button.setEnabled(False)

    def show_details(self, details: BillingDetails) -> None:
        self.details = details
        for field, value in ((self.name, details.name), (self.line1, details.line1), (self.line2, details.line2),
                             (self.city, details.city), (self.postal_code, details.postal_code),
                             (self.state, details.state), (self.country, details.country),
                             (self.tax_id_value, details.tax_id_value)):
            field.setText(value)
        self.tax_id_type.setCurrentText(details.tax_id_type or NO_TAX_ID)

    def entered(self) -> BillingDetails:
        """What the fields say now."""
        kind = self.tax_id_type.currentText().strip()
        value = self.tax_id_value.text().strip()
        no_tax_id = kind in ("", NO_TAX_ID) or not value
        return BillingDetails(
            name=self.name.text().strip(), line1=self.line1.text().strip(), line2=self.line2.text().strip(),
            city=self.city.text().strip(), postal_code=self.postal_code.text().strip(),
            state=self.state.text().strip(), country=self.country.text().strip().upper(),
            tax_id_type="" if no_tax_id else kind, tax_id_value="" if no_tax_id else value)

    def save(self) -> None:
        api = self.app.backend.api
        if api is None or not self.save_button.isEnabled():
            return
        details = self.entered()
        self._busy(True, "Saving…")
        self.app.workers.run(lambda: api.set_billing_details(details), self._saved, self._save_failed)

    def _saved(self, details: BillingDetails) -> None:
        self.show_details(details)
        self._busy(False, f"Saved at {formatting.clock(datetime.now(UTC))}. "
                          "Receipts of purchases paid from now on carry them.")

    def _save_failed(self, error: BaseException) -> None:
        message = describe(error)
        for path, words in FIELD_WORDS.items():
            message = message.replace(f" {path}", f" {words}")
        self._busy(False, f"Not saved: {message}")

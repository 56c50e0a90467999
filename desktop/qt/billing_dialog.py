"""Buy → Billing details…: the name, address and tax id printed on the receipts of purchases paid from now on.

Read from and saved to the backend (``GET/PUT /api/billing/details``) on a worker: the dialog says "Loading…" or
"Saving…" meanwhile and never waits on the network. In Stripe mode the backend gives them to Stripe too, so that
Stripe's invoices carry them.

The country is chosen by its name (type part of it to search) and kept as its ISO code; the tax id type by the
words buyers know it by (Stripe's code is kept, and one not offered may still be typed). The dialog is wide enough
for its fields' hints, and grows (up to its screen) rather than scroll its fields when a note appears below them."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
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
from resources.countries import COUNTRY_NAMES
from resources.tax_id_types import TAX_ID_TYPE_NAMES, tax_id_type_name

NO_TAX_ID = "No tax id"
NO_COUNTRY = ""
FIELD_MIN_CHARACTERS = 24  # an address line's worth, at the least, whatever the hint
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
        self.country = self._choice("Type to search, such as Germany",
                                    [(NO_COUNTRY, ""), *sorted(((name, code) for code, name in COUNTRY_NAMES.items()),
                                                               key=lambda item: item[0].casefold())])
        self.tax_id_type = self._choice("", [(NO_TAX_ID, ""), *((name, code)
                                                                for code, name in TAX_ID_TYPE_NAMES.items())])
        self.tax_id_value = self._field(100, "Such as DE123456789")

        fields = QWidget()
        self.fields = fields
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
        self.fields_area = screen_fit.scrolling(fields, "billingScroll")  # on a small screen the fields scroll
        # As wide as the fields want (their hints in full): never narrower, so that nothing scrolls sideways.
        scroll_bar = self.fields_area.verticalScrollBar().sizeHint().width()
        self.fields_area.setMinimumWidth(fields.minimumSizeHint().width() + scroll_bar)
        layout.addWidget(self.fields_area, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        screen_fit.keep_on_screen(self)
        self.load()

    @staticmethod
    def _field(limit: int, placeholder: str = "") -> QLineEdit:
        field = QLineEdit()
        field.setMaxLength(limit)
        field.setPlaceholderText(placeholder)
        metrics = field.fontMetrics()
        field.setMinimumWidth(max(metrics.horizontalAdvance(placeholder), metrics.averageCharWidth()
                                  * FIELD_MIN_CHARACTERS) + 2 * metrics.averageCharWidth() + 12)
        return field

    @staticmethod
    def _choice(placeholder: str, items: list[tuple[str, str]]) -> QComboBox:
        """An editable list of ``(words, code)``: pick one, or type part of its words to find it."""
        box = QComboBox()
        box.setEditable(True)
        box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        box.setMaxVisibleItems(15)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(FIELD_MIN_CHARACTERS)  # not as wide as the longest name
        for words, code in items:
            box.addItem(words, code)
        completer = QCompleter(box.model(), box)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        box.setCompleter(completer)
        line = box.lineEdit()
        assert line is not None
        line.setPlaceholderText(placeholder)
        return box

    @staticmethod
    def _chosen(box: QComboBox) -> str | None:
        """The code of what ``box`` says: its item's whose words (any case) or code were typed; None for neither."""
        typed = box.currentText().strip()
        for index in range(box.count()):
            if typed.casefold() in (box.itemText(index).casefold(), str(box.itemData(index)).casefold()):
                return str(box.itemData(index))
        return None

    @staticmethod
    def _choose(box: QComboBox, code: str, words: str) -> None:
        """Show ``code`` in ``box`` (added, as ``words``, when it is not one of the box's)."""
        index = box.findData(code)
        if index < 0:
            box.addItem(words, code)
            index = box.count() - 1
        box.setCurrentIndex(index)
        line = box.lineEdit()
        if line is not None:
            line.setCursorPosition(0)

    def country_code(self) -> str | None:
        """The ISO code of the country typed or chosen ("" for none); None when the words are no country's."""
        return self._chosen(self.country)

    def tax_id_type_code(self) -> str:
        """The tax id type chosen ("" for none): its Stripe code, or what was typed (a type not offered)."""
        code = self._chosen(self.tax_id_type)
        return code if code is not None else self.tax_id_type.currentText().strip()

    def _fields(self) -> list[QWidget]:
        return [self.name, self.line1, self.line2, self.city, self.postal_code, self.state, self.country,
                self.tax_id_type, self.tax_id_value]

    def _busy(self, busy: bool, message: str) -> None:
        for field in self._fields():
            field.setEnabled(not busy)
        self.save_button.setEnabled(not busy)
        self.status.setText(message)
        self.grow_to_content()

    def grow_to_content(self) -> None:
        """Taller by what the fields lack, where the screen has room (a note below them must not make them
        scroll); only what the screen cannot hold scrolls."""
        if not self.isVisible():
            return
        layout = self.layout()
        assert layout is not None
        layout.activate()
        lacking = self.fields.sizeHint().height() - self.fields_area.viewport().height()
        if lacking > 0:
            screen_fit.fit(self, QSize(self.width(), self.height() + lacking))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.grow_to_content()

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
                             (self.state, details.state), (self.tax_id_value, details.tax_id_value)):
            field.setText(value)
            field.setCursorPosition(0)  # its start in view, not its end
        self._choose(self.country, details.country, details.country)
        self._choose(self.tax_id_type, details.tax_id_type, tax_id_type_name(details.tax_id_type))

    def entered(self) -> BillingDetails:
        """What the fields say now (a country that is none of the list's is left to :meth:`save` to refuse)."""
        kind = self.tax_id_type_code()
        value = self.tax_id_value.text().strip()
        no_tax_id = not kind or not value
        return BillingDetails(
            name=self.name.text().strip(), line1=self.line1.text().strip(), line2=self.line2.text().strip(),
            city=self.city.text().strip(), postal_code=self.postal_code.text().strip(),
            state=self.state.text().strip(), country=self.country_code() or "",
            tax_id_type="" if no_tax_id else kind, tax_id_value="" if no_tax_id else value)

    def save(self) -> None:
        api = self.app.backend.api
        if api is None or not self.save_button.isEnabled():
            return
        if self.country_code() is None:  # never a guess: "Germany" typed is Germany, and no words are no country
            self.status.setText(f"Not saved: there is no country called “{self.country.currentText().strip()}”. "
                                "Type part of its name and choose it from the list.")
            self.grow_to_content()
            self.country.setFocus()
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

"""One vocabulary of outcomes: the enum, the order statuses beside it, and the API document."""

from __future__ import annotations

import re
from pathlib import Path

from backend import order_status
from backend.outcomes import DeliveryOutcome, Outcome

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_no_outcome_is_spelt_twice() -> None:
    names = [*Outcome, *DeliveryOutcome, *order_status.STATUSES]
    assert len(names) == len(set(names))


def test_the_api_document_lists_every_outcome_and_no_other() -> None:
    documented = re.findall(r"^\s*\| `([a-z_]+)` \| ", API_DOC.read_text(), re.M)
    start = documented.index("processing")
    assert documented[start:start + len(Outcome)] == [o.value for o in Outcome]
    failed = re.search(r"A failed delivery's outcome is `(\w+)`, `(\w+)` or `(\w+)`", API_DOC.read_text())
    assert failed is not None and list(failed.groups()) == [o.value for o in DeliveryOutcome]

"""One name per concept: no class name means two things in the product code.

A name may appear once on each side of the HTTP contract only where it is the same thing seen from both
sides (the backend cannot import the desktop's class, nor the desktop the backend's). Everything else
defined twice is a twin to merge or a word to change.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "desktop", "resources")

# The same concept, once in the backend and once in the app, on either side of the contract.
ACROSS_THE_CONTRACT = {
    "Alert": "an alert as GET /api/alerts answers it",
    "BillingDetails": "a buyer's billing details, as GET and PUT /api/billing/details answer them",
    "Pack": "a credit pack of the catalogue",
    "PeriodUse": "a spend cap's use in its period",
    "Receipt": "a paid purchase's receipt, as GET /api/billing/receipts answers it",
    "User": "an account, as the auth endpoints answer it",
    "Topup": "an auto top-up, as GET /api/credits/auto-topup lists it",
}


def class_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    names[node.name].append(str(path.relative_to(ROOT)))
    return names


def test_no_class_name_is_defined_twice_except_across_the_contract() -> None:
    twice = {name: paths for name, paths in class_names().items() if len(paths) > 1}
    for name, paths in twice.items():
        assert name in ACROSS_THE_CONTRACT, f"{name} is defined in {paths}: one name, one concept"
        sides = {path.split("/")[0] for path in paths}
        assert sides == {"backend", "desktop"} and len(paths) == 2, f"{name}: {paths}"


def test_the_allowed_pairs_still_exist() -> None:
    """An entry left in the allow-list after a rename would let a new twin in unseen."""
    names = class_names()
    assert {name for name in ACROSS_THE_CONTRACT if len(names.get(name, [])) == 2} == set(ACROSS_THE_CONTRACT)


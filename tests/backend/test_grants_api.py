"""Grants through the real backend, on both engines: the catalogue's sign-up bonus, a purchase, support's
``adjust --promotional --expires``, a spend that burns them in order, the balance's and usage's figures, and
``check`` and ``user`` on the same database (the one end-to-end test of the wiring; the rules are tested in
process in test_grants.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from resources import path as resource_path
from tests.helpers.api import Api

pytestmark = pytest.mark.subprocess


def test_a_bonus_a_purchase_and_promotional_credits_are_spent_in_order_and_said_apart(
    backend_factory, tmp_path: Path
) -> None:
    packs = tmp_path / "packs.toml"
    packs.write_text(resource_path("packs.toml").read_text() + "\n[signup_bonus]\ncredits = 50\n"
                     "expires_in_days = 14\ndescription = \"Welcome bonus\"\n")
    backend = backend_factory({"CREDITDESK_PACKS": str(packs)})
    api = Api(backend.url).register()
    balance = api.get("/api/credits/balance").json()
    assert (balance["balance"], balance["paid"], balance["promotional"]) == (50, 0, 50)
    assert balance["nextExpiry"]["credits"] == 50 and balance["grants"][0]["source"] == "signup"
    checkout = api.checkout("starter")
    requests.post(checkout["url"] + "/pay", timeout=10)  # 100 paid credits
    r = backend.admin("adjust", api.user["email"], "7", "--reason", "sorry", "--promotional", "--expires", "30d")
    assert r.returncode == 0, r.stderr
    r = api.post("/api/credits/spend", json={"amount": 53, "idempotencyKey": "k-1", "description": "Render"})
    assert r.status_code == 200, r.text
    balance = api.get("/api/credits/balance").json()
    # 53 = the bonus's 50 (earliest expiry) + 3 of support's 7; the paid 100 untouched
    assert (balance["balance"], balance["paid"], balance["promotional"]) == (104, 100, 4)
    assert [(g["source"], g["remaining"]) for g in balance["grants"]] == [("adjustment", 4), ("purchase", 100)]
    totals = api.get("/api/credits/usage").json()["totals"]
    assert (totals["spent"], totals["spentPaid"], totals["spentPromotional"]) == (53, 0, 53)
    assert [(t["type"], t["amount"]) for t in api.transactions()] == [
        ("spend", -53), ("adjustment", 7), ("purchase", 100), ("bonus", 50)]
    report = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    assert (report["paid"], report["promotional"]) == (100, 4)
    r = backend.admin("check")
    assert r.returncode == 0 and "the ledger adds up" in r.stdout, r.stdout + r.stderr

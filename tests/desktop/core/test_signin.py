"""Restoring a kept sign-in and removing stale ones, against the real backend."""

from __future__ import annotations

from typing import Any

import pytest

from desktop.core.api import ApiClient, ApiError
from desktop.core.purchase_records import PurchaseRecord
from desktop.core.signin import legacy_bundled_names, restore_sign_in, tidy_sign_ins
from desktop.core.tokens import TokenStore, account_key
from tests.desktop.core.conftest import PASSWORD, unique_email
from tests.helpers.backend import BackendProcess

KEY = "bundled:0123456789abcdef"


def test_legacy_names_are_the_bundled_backends_ports_of_the_day() -> None:
    def purchase(url: str) -> PurchaseRecord:
        return PurchaseRecord(url, "a@example.com", f"cs_{url[-5:]}", "starter", "Starter", 100)

    purchases = [purchase("http://127.0.0.1:41234"), purchase("http://127.0.0.1:8787"),
                 purchase("https://credits.example"), purchase("http://127.0.0.1:50000")]
    assert legacy_bundled_names(purchases, KEY) == {"http://127.0.0.1:41234", "http://127.0.0.1:50000"}


def test_restore_moves_a_token_of_an_earlier_version_under_the_identity(
    stub_backend: BackendProcess, memory_keyring: Any, tmp_path: Any,
) -> None:
    email = unique_email()
    token = ApiClient(stub_backend.url).register(email, PASSWORD).token
    tokens = TokenStore(index_path=tmp_path / "index.json")
    legacy = "http://127.0.0.1:41234"
    tokens.save(legacy, email, token)
    restored = restore_sign_in(stub_backend.url, KEY, email, tokens, {legacy})
    assert restored is not None and restored.token == token and restored.balance == 0
    assert tokens.load(KEY, email) == token and tokens.load(legacy, email) is None
    assert token not in repr(restored)


def test_restore_forgets_a_token_the_backend_no_longer_knows(stub_backend: BackendProcess, memory_keyring: Any) -> None:
    tokens = TokenStore()
    tokens.save(KEY, "gone@example.com", "revoked-long-ago")
    assert restore_sign_in(stub_backend.url, KEY, "gone@example.com", tokens) is None
    assert tokens.load(KEY, "gone@example.com") is None


def test_tidy_revokes_and_deletes_stale_entries(stub_backend: BackendProcess, memory_keyring: Any,
                                               tmp_path: Any) -> None:
    keep, other = unique_email(), unique_email()
    tokens = TokenStore(index_path=tmp_path / "index.json")
    kept = ApiClient(stub_backend.url).register(keep, PASSWORD).token
    old = ApiClient(stub_backend.url).login(keep, PASSWORD).token
    others = ApiClient(stub_backend.url).register(other, PASSWORD).token
    tokens.save(KEY, keep, kept)
    tokens.save(KEY, other, others)  # another account on the same backend
    tokens.save("http://127.0.0.1:41234", keep, old)  # an earlier version's entry
    tokens.save("https://elsewhere.example", keep, "another-backends-token")
    removed = tidy_sign_ins(stub_backend.url, KEY, keep, tokens, {"http://127.0.0.1:41234"})
    assert removed == 2
    assert set(memory_keyring.entries) == {("creditdesk", account_key(KEY, keep)),
                                           ("creditdesk", "https://elsewhere.example " + keep)}
    for revoked in (old, others):  # revoked at the backend too: they were live
        with pytest.raises(ApiError) as caught:
            ApiClient(stub_backend.url, revoked).balance()
        assert caught.value.status == 401
    assert ApiClient(stub_backend.url, kept).balance() == 0

"""Tokens in the keyring, or in memory for the session where no keyring works."""

from __future__ import annotations

import logging
from typing import Any

import keyring
import keyring.errors
import pytest

from desktop.core.tokens import TokenStore

URL = "http://127.0.0.1:8787"
TOKEN = "tok-Abc123-very-secret-value-0123456789"


def test_tokens_in_the_keyring(memory_keyring: Any) -> None:
    store = TokenStore()
    assert store.persistent
    assert store.backend_name.endswith("MemoryKeyring")
    assert "system keyring" in store.where
    assert store.load(URL, "a@example.com") is None
    store.save(URL + "/", "A@example.com", TOKEN)
    assert memory_keyring.entries == {("creditdesk", f"{URL} a@example.com"): TOKEN}
    assert store.load(URL, "a@example.com") == TOKEN
    assert TokenStore().load(URL, "a@example.com") == TOKEN  # persists beyond one store
    assert store.load("http://other:1", "a@example.com") is None
    store.delete(URL, "a@example.com")
    store.delete(URL, "a@example.com")  # deleting nothing is fine
    assert memory_keyring.entries == {}
    assert TOKEN not in repr(store)


def test_no_keyring_keeps_tokens_for_the_session(no_keyring: Any) -> None:
    assert type(keyring.get_keyring()).__module__ == "keyring.backends.fail"
    store = TokenStore()
    assert not store.persistent
    assert store.backend_name == (
        "keyring.backends.fail.Keyring (no keyring: tokens kept for this session only)")
    assert "only until Creditdesk closes" in store.where
    store.save(URL, "a@example.com", TOKEN)
    assert store.load(URL, "a@example.com") == TOKEN
    assert TokenStore().load(URL, "a@example.com") is None  # not persisted
    store.delete(URL, "a@example.com")
    assert store.load(URL, "a@example.com") is None


def test_a_failing_keyring_degrades_to_memory(memory_keyring: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = TokenStore()
    memory_keyring.fail_with = keyring.errors.KeyringLocked("locked")
    store.save(URL, "a@example.com", TOKEN)
    assert not store.persistent
    assert "session only" in store.backend_name
    assert store.load(URL, "a@example.com") == TOKEN
    store.delete(URL, "a@example.com")
    assert store.load(URL, "a@example.com") is None
    assert TOKEN not in caplog.text
    assert "KeyringLocked" in caplog.text


def test_explicit_backend(memory_keyring: Any) -> None:
    from keyring.backends import fail

    store = TokenStore(backend=fail.Keyring())
    assert not store.persistent
    store.save(URL, "a@example.com", TOKEN)
    assert memory_keyring.entries == {}


def test_the_store_keeps_an_index_of_its_entries(memory_keyring: Any, tmp_path: Any) -> None:
    index = tmp_path / "keyring-entries.json"
    store = TokenStore(index_path=index)
    store.save("bundled:abc", "a@example.com", TOKEN)
    store.save(URL, "b@example.com", TOKEN + "2")
    assert TokenStore(index_path=index).known_keys() == ["bundled:abc a@example.com", f"{URL} b@example.com"]
    assert TOKEN not in index.read_text()  # names only
    store.delete("bundled:abc", "a@example.com")
    assert store.known_keys() == [f"{URL} b@example.com"]
    index.write_text("{not json")
    assert store.known_keys() == []


def test_the_keyring_is_looked_up_on_first_use(memory_keyring: Any) -> None:
    store = TokenStore()
    assert "not looked up yet" in repr(store)
    store.prepare()
    assert store.persistent and "MemoryKeyring" in repr(store)

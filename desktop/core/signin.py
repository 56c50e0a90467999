"""The sign-in kept for a backend: restoring it at start, and removing stale ones.

Tokens are filed under the backend's identity (see :mod:`desktop.core.identity`). Versions before identities
filed the bundled backend's tokens under its URL of the day (``http://127.0.0.1:<random port>``), so each start
left one more live token behind; those URLs are this backend's *legacy* names. Restoring tries the identity's
entry first, then legacy ones (moving a working token under the identity); tidying revokes at the backend and
deletes every other entry of this backend's: another account's, and all legacy ones.

Blocking (keyring and network): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from desktop.core.api import ApiClient, ApiClientError, ApiError
from desktop.core.purchase_records import PurchaseRecord
from desktop.core.tokens import TokenStore, account_key, split_key

log = logging.getLogger("creditdesk.signin")

# The bundled backend of earlier versions listened on an ephemeral port (Linux: 32768 and up; others 49152 and
# up); a loopback URL on a port below is somebody's own server, never one of our old names.
EPHEMERAL_PORTS = range(32768, 65536)


@dataclass(frozen=True)
class Restored:
    email: str
    token: str = field(repr=False)
    balance: int


def legacy_bundled_names(purchases: Iterable[PurchaseRecord], backend_key: str) -> set[str]:
    """The bundled backend's names of earlier versions, as its purchases on record still show them."""
    names = set()
    for purchase in purchases:
        if purchase.backend_id == backend_key:
            continue
        parts = urlsplit(purchase.backend_id)
        if parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port in EPHEMERAL_PORTS:
            names.add(purchase.backend_id)
    return names


def restore_sign_in(url: str, backend_key: str, email: str, tokens: TokenStore,
                    legacy: Iterable[str] = ()) -> Restored | None:
    """The kept sign-in of ``email`` on this backend, if one still works; None when there is none. Raises
    :class:`ApiClientError` when the backend cannot say (it does not answer): the token is kept then."""
    for backend in [backend_key, *sorted(legacy)]:
        token = tokens.load(backend, email)
        if not token:
            continue
        probe = ApiClient(url, token)
        try:
            balance = probe.balance()
        except ApiError as exc:
            if exc.status != 401:
                raise
            log.info("a kept sign-in no longer works; forgetting it")
            tokens.delete(backend, email)
            continue
        finally:
            probe.close()
        if backend != backend_key:
            tokens.save(backend_key, email, token)
            tokens.delete(backend, email)
            log.info("moved a sign-in of an earlier version under the backend's identity")
        return Restored(email, token, balance)
    return None


def tidy_sign_ins(url: str, backend_key: str, email: str, tokens: TokenStore, legacy: Iterable[str] = (),
                  emails: Iterable[str] = ()) -> int:
    """Revoke and delete this backend's kept sign-ins other than ``email``'s, and every one under a legacy name
    (for ``email`` and the other ``emails`` known to have used it). Returns how many entries were removed."""
    legacy = set(legacy)
    keep = account_key(backend_key, email)
    stale = {key for key in tokens.known_keys()
             if key != keep and split_key(key)[0] in legacy | {backend_key}}
    stale |= {account_key(name, mail) for name in legacy for mail in {email, *emails}}
    removed = 0
    for key in sorted(stale):
        token = tokens.load_key(key)
        if token:
            revoker = ApiClient(url, token, retries=0)
            with contextlib.suppress(ApiClientError):
                revoker.logout()  # the same database: an old token of the bundled backend is still live
            revoker.close()
            removed += 1
        tokens.delete_key(key)
    if removed:
        log.info("removed %d stale sign-in(s) of this backend from the keyring", removed)
    return removed

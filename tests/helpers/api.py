"""A tiny HTTP client for the backend's API in tests (the app's own client is tested separately)."""

from __future__ import annotations

import secrets
from typing import Any

import requests


class Api:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = requests.Session()
        self.user: dict[str, Any] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def register(self, email: str | None = None, password: str = "correct horse battery") -> Api:
        email = email or f"user-{secrets.token_hex(6)}@example.com"
        r = self.post("/api/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.user = r.json()["user"]
        return self

    def balance(self) -> int:
        r = self.get("/api/credits/balance")
        assert r.status_code == 200, r.text
        return r.json()["balance"]

    def checkout(self, pack_id: str = "starter", **extra: Any) -> dict[str, Any]:
        r = self.post("/api/billing/checkout", json={"packId": pack_id, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def verify(self, session_id: str) -> requests.Response:
        return self.get("/api/billing/verify-payment", params={"session_id": session_id})

    def transactions(self, **params: Any) -> list[dict[str, Any]]:
        r = self.get("/api/credits/transactions", params=params)
        assert r.status_code == 200, r.text
        return r.json()["transactions"]

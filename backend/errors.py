"""Errors that answer in the contract's shape: ``{"error": {"code", "message"}}``."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "Sign in first: the request has no valid bearer token.",
                    {"WWW-Authenticate": "Bearer"})

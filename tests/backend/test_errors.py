"""The backend's own errors and the one table that answers them over HTTP."""

from __future__ import annotations

import re

import pytest

from backend import errors
from backend.api.errors import ANSWERS, answer_for, response_for

# The contract's statuses for error answers, and 502/503 for a provider or storage that fails.
CONTRACT_STATUSES = {400, 401, 402, 403, 404, 409, 422, 428, 429, 502, 503}


def all_errors() -> list[type[errors.CreditdeskError]]:
    found, todo = [], [errors.CreditdeskError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted({cls for cls in found if cls.__module__ == "backend.errors"}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", [c for c in all_errors() if c not in (errors.CreditdeskError, errors.Retryable)],
                         ids=lambda c: c.__name__)
def test_every_domain_error_has_an_answer_of_the_contract(cls: type[errors.CreditdeskError]) -> None:
    answer = answer_for(cls.__new__(cls))
    assert answer.status in CONTRACT_STATUSES
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", answer.code)
    assert answer.message.endswith(".") and "Traceback" not in answer.message
    if issubclass(cls, errors.Retryable):
        assert answer.status in (429, 503)


def test_retryable_errors_say_when_to_retry() -> None:
    response = response_for(errors.PaymentProviderUnavailable("Stripe timed out", retry_after=7))
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert b'"payment_provider_unavailable"' in response.body and b"Stripe timed out" not in response.body
    rejected = response_for(errors.PaymentProviderRejected("Stripe InvalidRequestError (HTTP 400)"))
    assert rejected.status_code == 502 and "Retry-After" not in rejected.headers
    assert b"will not help" in rejected.body


@pytest.mark.parametrize(("seconds", "said"), [
    (1, "1 second"), (59, "59 seconds"), (99, "99 seconds"), (100, "2 minutes"), (3598, "60 minutes"),
    (5940, "99 minutes"), (5941, "2 hours"), (86_399, "24 hours"),
])
def test_a_rate_limit_says_its_wait_as_a_person_reads_it(seconds: int, said: str) -> None:
    response = response_for(errors.RateLimited("sign-ins", retry_after=seconds))
    assert response.status_code == 429 and response.headers["Retry-After"] == str(seconds)  # exact for programs
    assert f"try again in {said}.".encode() in response.body


def test_messages_name_what_the_client_sent() -> None:
    assert b"'gold'" in response_for(errors.UnknownPack("gold")).body
    assert b"needs 7 credits and the balance is 3" in response_for(errors.InsufficientCredits(3, 7)).body


def test_the_table_names_only_domain_errors() -> None:
    assert set(ANSWERS) <= set(all_errors())

"""The retry policy's decisions and waits, without a server (the server tests are elsewhere)."""

from __future__ import annotations

import email.utils

import pytest

from anyoai import APIConnectionError, APITimeoutError, RetryPolicy
from anyoai._errors import error_from_status
from anyoai._exceptions import APIStatusError
from anyoai._headers import Headers
from anyoai._retry import parse_retry_after


def status_error(status: int, code: str | None = None, **headers: str) -> APIStatusError:
    body = b'{"error": {"message": "m", "code": %s}}' % (
        b'"%s"' % code.encode() if code else b"null"
    )
    hdrs = Headers({k.replace("_", "-"): v for k, v in headers.items()})
    return error_from_status(status, body, hdrs, retry_after=parse_retry_after(hdrs))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert RetryPolicy().is_retryable(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 418])
def test_statuses_never_retried(status: int) -> None:
    assert not RetryPolicy().is_retryable(status_error(status))


def test_insufficient_quota_is_not_retried() -> None:
    assert not RetryPolicy().is_retryable(status_error(429, "insufficient_quota"))
    assert RetryPolicy().is_retryable(status_error(429, "rate_limit_exceeded"))


def test_connection_errors_and_timeouts_are_retried() -> None:
    assert RetryPolicy().is_retryable(APIConnectionError("reset"))
    assert RetryPolicy().is_retryable(APITimeoutError("slow"))
    assert not RetryPolicy().is_retryable(ValueError("not ours"))


def test_x_should_retry_overrides() -> None:
    assert RetryPolicy().is_retryable(status_error(400, x_should_retry="true"))
    assert not RetryPolicy().is_retryable(status_error(503, x_should_retry="false"))


def test_retry_after_forms() -> None:
    assert parse_retry_after(Headers({"retry-after-ms": "250"})) == 0.25
    assert parse_retry_after(Headers({"retry-after": "3"})) == 3.0
    assert parse_retry_after(Headers({"retry-after-ms": "100", "retry-after": "9"})) == 0.1
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(Headers({"retry-after": date}), now=now) == pytest.approx(30)
    assert parse_retry_after(Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(Headers({"retry-after": "-5"})) is None
    assert parse_retry_after(Headers({})) is None


def test_server_wait_is_used_and_the_ceiling_stops_retries() -> None:
    policy = RetryPolicy(max_retry_after=10)
    err = status_error(429, retry_after="4")
    assert err.retry_after == 4.0
    assert policy.wait_for(err, 1) == 4.0
    too_long = status_error(429, retry_after="120")
    assert not policy.is_retryable(too_long)
    assert too_long.retry_after == 120.0


def test_full_jitter_backoff_stays_in_its_window() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    for retry in range(1, 6):
        for _ in range(50):
            assert 0 <= policy.wait_for(APIConnectionError("x"), retry) <= policy.backoff(retry)


def test_policy_is_keyword_only_and_validated() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)

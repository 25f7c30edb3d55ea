"""The one rule for sending a request again after a stale pooled connection (RFC 9112
§9.3.1), as a table. Both paths apply it through real sockets in test_proxy.py."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.http.errors import ProxyStatus
from adapter.http.retry import may_resend, worth_holding

_STALE: dict[str, Any] = {
    "body_held": True,
    "reused": True,
    "failure": ProxyStatus.CONNECTION_TERMINATED,
    "answer_started": False,
    "resent": False,
}


@pytest.mark.parametrize(
    ("method", "changed", "expected"),
    [
        pytest.param("GET", {}, True, id="get-stale"),
        pytest.param("HEAD", {}, True, id="head-stale"),
        pytest.param("OPTIONS", {}, True, id="options-stale"),
        pytest.param("TRACE", {}, True, id="trace-stale"),
        pytest.param("PUT", {}, False, id="put-idempotent-but-unsafe"),
        pytest.param("DELETE", {}, False, id="delete-idempotent-but-unsafe"),
        pytest.param("POST", {}, False, id="post"),
        pytest.param("PATCH", {}, False, id="patch"),
        pytest.param("get", {}, False, id="methods-are-case-sensitive"),
        pytest.param("GET", {"reused": False}, False, id="fresh-connection"),
        pytest.param("GET", {"resent": True}, False, id="second-attempt"),
        pytest.param("GET", {"answer_started": True}, False, id="answer-begun"),
        pytest.param("GET", {"body_held": False}, False, id="streamed-body"),
        pytest.param(
            "GET", {"failure": ProxyStatus.HTTP_RESPONSE_TIMEOUT}, False, id="silent-runner"
        ),
        pytest.param(
            "GET", {"failure": ProxyStatus.CONNECTION_REFUSED}, False, id="connect-failure"
        ),
        pytest.param(
            "GET", {"failure": ProxyStatus.HTTP_PROTOCOL_ERROR}, False, id="garbled-answer"
        ),
    ],
)
def test_may_resend(method: str, changed: dict[str, Any], expected: bool) -> None:
    """Only a safe method, held whole, that failed on a reused connection closed before
    any answer byte, and only once, is sent again."""
    facts = {**_STALE, **changed}
    assert may_resend(method, **facts) is expected


@pytest.mark.parametrize(
    ("method", "length", "expected"),
    [
        ("GET", 0, True),
        ("GET", 100, True),
        ("HEAD", 100, True),
        ("GET", 101, False),
        ("POST", 0, False),
        ("PUT", 10, False),
    ],
)
def test_worth_holding(method: str, length: int, expected: bool) -> None:
    """A copy is kept only of what may_resend could let through, up to the limit."""
    assert worth_holding(method, length, 100) is expected

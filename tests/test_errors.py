"""The one failure classification and the Proxy-Status strings both request paths send."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from adapter.http.errors import (
    ADAPTER_ERROR_ANSWER,
    ProxyStatus,
    UpstreamError,
    classify_upstream_failure,
    upstream_error_answer,
)

_KEY = ConnectionKey("runner", 80, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "connecting", "status", "kind"),
    [
        (aiohttp.ConnectionTimeoutError(), False, ProxyStatus.CONNECTION_TIMEOUT, "timeout"),
        (TimeoutError(), True, ProxyStatus.CONNECTION_TIMEOUT, "timeout"),
        (TimeoutError(), False, ProxyStatus.HTTP_RESPONSE_TIMEOUT, "timeout"),
        (aiohttp.SocketTimeoutError(), False, ProxyStatus.HTTP_RESPONSE_TIMEOUT, "timeout"),
        (
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "unknown")),
            False,
            ProxyStatus.DNS_ERROR,
            "connect",
        ),
        (socket.gaierror(-2, "unknown"), True, ProxyStatus.DNS_ERROR, "connect"),
        (
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
            False,
            ProxyStatus.CONNECTION_REFUSED,
            "connect",
        ),
        (ConnectionRefusedError(111, "refused"), True, ProxyStatus.CONNECTION_REFUSED, "connect"),
        (OSError(101, "unreachable"), True, ProxyStatus.CONNECTION_REFUSED, "connect"),
        (aiohttp.ServerDisconnectedError(), False, ProxyStatus.CONNECTION_TERMINATED, "reset"),
        (aiohttp.ClientOSError(104, "reset"), False, ProxyStatus.CONNECTION_TERMINATED, "reset"),
        (ConnectionResetError(104, "reset"), False, ProxyStatus.CONNECTION_TERMINATED, "reset"),
        (aiohttp.ClientPayloadError(), False, ProxyStatus.HTTP_RESPONSE_INCOMPLETE, "protocol"),
        (aiohttp.ClientError(), False, ProxyStatus.HTTP_PROTOCOL_ERROR, "protocol"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_failures_classify_alike_on_both_paths(
    exc: BaseException, connecting: bool, status: ProxyStatus, kind: str
) -> None:
    """Each exception maps to one RFC 9209 error type, and that type to one metric kind."""
    failure = classify_upstream_failure(exc, connecting=connecting)
    assert (failure.proxy_status, failure.kind) == (status, kind)
    assert failure.detail == type(exc).__name__
    assert failure.status == (504 if kind == "timeout" else 502)


@pytest.mark.parametrize(
    "status", [s for s in ProxyStatus if s is not ProxyStatus.PROXY_INTERNAL_ERROR]
)
def test_every_upstream_status_has_an_answer_with_its_header(status: ProxyStatus) -> None:
    """The answer's status and Proxy-Status header follow the failure's type."""
    answer = upstream_error_answer(UpstreamError(status, "detail"))
    headers, _ = answer.render("rid")
    assert headers["Proxy-Status"] == f"beacon-adapter; error={status.value}"
    assert answer.status == UpstreamError(status, "d").status


def test_the_internal_error_is_not_an_upstream_failure() -> None:
    """proxy_internal_error belongs to the adapter's own 502, never to an UpstreamError."""
    headers, _ = ADAPTER_ERROR_ANSWER.render("rid")
    assert headers["Proxy-Status"] == "beacon-adapter; error=proxy_internal_error"
    with pytest.raises(KeyError):
        UpstreamError(ProxyStatus.PROXY_INTERNAL_ERROR, "bug")

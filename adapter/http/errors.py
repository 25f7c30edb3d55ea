"""Why a request to the runner failed, and the answers the adapter gives instead of its.

One classification for both request paths: the aiohttp path classifies aiohttp's and the
OS's exceptions, the lean relay classifies the OS's while connecting and names its own
failures directly; both end in an ``UpstreamError`` carrying one ``ProxyStatus`` (the
RFC 9209 error type sent in ``Proxy-Status``), from which the metric label ``kind`` and
the 502/504 status follow. So the same failure gives the same answer, header and metric
whichever path saw it.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
import orjson

from adapter.http.client_pool import ResponseHeadSectionTooLarge

# The proxy's name in Proxy-Status (RFC 9209 §2).
PROXY_NAME: Final = "beacon-adapter"

UpstreamErrorKind = Literal["connect", "timeout", "reset", "protocol"]


class ProxyStatus(enum.StrEnum):
    """The RFC 9209 §2.3 error types the adapter sends in ``Proxy-Status``."""

    DNS_ERROR = "dns_error"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_TIMEOUT = "connection_timeout"
    CONNECTION_TERMINATED = "connection_terminated"
    HTTP_RESPONSE_TIMEOUT = "http_response_timeout"
    HTTP_RESPONSE_INCOMPLETE = "http_response_incomplete"
    HTTP_RESPONSE_HEADER_SECTION_SIZE = "http_response_header_section_size"
    HTTP_PROTOCOL_ERROR = "http_protocol_error"
    PROXY_INTERNAL_ERROR = "proxy_internal_error"


# The metric label (``adapter_upstream_errors_total{kind}``) of each upstream failure.
_KINDS: Final[dict[ProxyStatus, UpstreamErrorKind]] = {
    ProxyStatus.DNS_ERROR: "connect",
    ProxyStatus.CONNECTION_REFUSED: "connect",
    ProxyStatus.CONNECTION_TIMEOUT: "timeout",
    ProxyStatus.HTTP_RESPONSE_TIMEOUT: "timeout",
    ProxyStatus.CONNECTION_TERMINATED: "reset",
    ProxyStatus.HTTP_RESPONSE_INCOMPLETE: "protocol",
    ProxyStatus.HTTP_RESPONSE_HEADER_SECTION_SIZE: "protocol",
    ProxyStatus.HTTP_PROTOCOL_ERROR: "protocol",
}


class UpstreamError(Exception):
    """Talking to the runner failed; ``proxy_status`` says how, ``detail`` what exactly."""

    def __init__(self, proxy_status: ProxyStatus, detail: str) -> None:
        kind = _KINDS[proxy_status]  # KeyError: not a failure of the runner's
        super().__init__(f"{kind}: {detail}")
        self.kind: UpstreamErrorKind = kind
        self.proxy_status = proxy_status
        self.detail = detail

    @property
    def status(self) -> int:
        """504 for timeouts, 502 for everything else."""
        return 504 if self.kind == "timeout" else 502


def classify_upstream_failure(exc: BaseException, *, connecting: bool = False) -> UpstreamError:
    """Map an aiohttp or OS exception to an UpstreamError.

    ``connecting``: the exception came from opening a connection (the relay's own
    connect), where any timeout is a connect timeout and any OS error a refusal. Most
    specific first; timeouts before connection errors because ServerTimeoutError is both.
    """
    detail = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError) or (
        connecting and isinstance(exc, TimeoutError)
    ):
        return UpstreamError(ProxyStatus.CONNECTION_TIMEOUT, detail)
    if isinstance(exc, TimeoutError):
        return UpstreamError(ProxyStatus.HTTP_RESPONSE_TIMEOUT, detail)
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return UpstreamError(ProxyStatus.DNS_ERROR, detail)
    if isinstance(exc, aiohttp.ClientConnectorError) or (connecting and isinstance(exc, OSError)):
        return UpstreamError(ProxyStatus.CONNECTION_REFUSED, detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | OSError):
        return UpstreamError(ProxyStatus.CONNECTION_TERMINATED, detail)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(ProxyStatus.HTTP_RESPONSE_INCOMPLETE, detail)
    if isinstance(exc, ResponseHeadSectionTooLarge):
        return UpstreamError(ProxyStatus.HTTP_RESPONSE_HEADER_SECTION_SIZE, detail)
    return UpstreamError(ProxyStatus.HTTP_PROTOCOL_ERROR, detail)


@dataclass(frozen=True, slots=True)
class AdapterAnswer:
    """An answer the adapter gives itself instead of the runner's: one JSON shape, the
    same on the aiohttp path and the lean relay."""

    status: int
    reason: str
    code: str
    message: str
    proxy_status: ProxyStatus | None = None

    def render(self, request_id: str) -> tuple[dict[str, str], bytes]:
        """Headers and JSON body for this request."""
        body = orjson.dumps(
            {"error": self.message, "error_code": self.code, "request_id": request_id}
        )
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.proxy_status is not None:
            headers["Proxy-Status"] = f"{PROXY_NAME}; error={self.proxy_status}"
        headers["X-Request-ID"] = request_id
        return headers, body


CLIENT_TIMEOUT_ANSWER: Final = AdapterAnswer(
    408, "Request Timeout", "client_timeout", "The request body stopped arriving."
)
ADAPTER_ERROR_ANSWER: Final = AdapterAnswer(
    502,
    "Bad Gateway",
    "adapter_error",
    "The adapter failed while handling the request.",
    ProxyStatus.PROXY_INTERNAL_ERROR,
)


def upstream_error_answer(exc: UpstreamError) -> AdapterAnswer:
    """The 502/504 answer when the runner could not be reached or did not answer in time."""
    if exc.kind == "timeout":
        return AdapterAnswer(
            504,
            "Gateway Timeout",
            "upstream_timeout",
            "The runner did not answer in time.",
            exc.proxy_status,
        )
    return AdapterAnswer(
        502,
        "Bad Gateway",
        "upstream_unavailable",
        "The runner could not be reached.",
        exc.proxy_status,
    )


__all__ = (
    "ADAPTER_ERROR_ANSWER",
    "CLIENT_TIMEOUT_ANSWER",
    "PROXY_NAME",
    "AdapterAnswer",
    "ProxyStatus",
    "UpstreamError",
    "UpstreamErrorKind",
    "classify_upstream_failure",
    "upstream_error_answer",
)

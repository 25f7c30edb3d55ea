"""The end of every proxied request: its metrics and its canonical log line.

Both request paths (the lean relay and aiohttp's handler) fill a ``RequestStats`` as the
request goes and call ``finish_request`` once at the end, so operators see the same keys
and the same series whichever path served the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from structlog.typing import FilteringBoundLogger

from adapter.metrics import Metrics

# Status recorded when the client went away before the answer was complete (nginx's 499).
CLIENT_CLOSED_REQUEST: Final = 499


@dataclass(slots=True)
class RequestStats:
    """Per-request facts for the canonical log line, filled in as the request progresses."""

    client_ip: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    upstream_ms: float | None = None
    upstream_status: int | None = None
    upstream_error: str | None = None
    aborted: str | None = None


def finish_request(
    metrics: Metrics,
    log: FilteringBoundLogger,
    *,
    request_id: str,
    method: str,
    target: str,
    route: str,
    status: int,
    seconds: float,
    stats: RequestStats,
    peer_ip: str | None,
) -> None:
    """Count the request, time it, leave the in-flight gauge, and write its log line.

    ``target`` is the raw request target (the query is never logged: it may hold
    secrets); ``peer_ip`` stands in when no client address was resolved.
    """
    metrics.inflight.dec()
    if stats.upstream_error is not None:
        metrics.upstream_errors.labels(kind=stats.upstream_error).inc()
    metrics.observe_request(method, route, status, seconds)
    # The line's fields are only computed when it is written.
    if log.is_enabled_for(logging.INFO):
        upstream_ms = stats.upstream_ms
        log.info(
            "request",
            request_id=request_id,
            method=method,
            path=target.split("?", 1)[0],
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            upstream_ms=None if upstream_ms is None else round(upstream_ms, 3),
            upstream_status=stats.upstream_status,
            upstream_error=stats.upstream_error,
            bytes_in=stats.bytes_in,
            bytes_out=stats.bytes_out,
            client_ip=stats.client_ip or peer_ip,
            aborted=stats.aborted,
        )


__all__ = ("CLIENT_CLOSED_REQUEST", "RequestStats", "finish_request")

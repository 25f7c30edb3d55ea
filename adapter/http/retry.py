"""When a request the runner never answered may be sent once more: one rule, both paths.

A pooled keep-alive connection can be closed by the runner (its idle timeout) just as
the adapter reuses it; the request then fails before any answer byte. RFC 9112 §9.3.1
lets a client send such a request again when doing so cannot change the outcome: the
method is safe, the whole request can be sent again from memory, and nothing of an
answer was seen. Idempotent but unsafe methods (PUT, DELETE) are not resent: the runner
may have acted on them. Anything else, and every failure of a fresh connection, is
answered 502 at once.
"""

from __future__ import annotations

from typing import Final

from adapter.http.errors import ProxyStatus

# RFC 9110 §9.2.1: methods that change nothing on the server.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def may_resend(
    method: str,
    *,
    body_held: bool,
    reused: bool,
    failure: ProxyStatus,
    answer_started: bool,
    resent: bool,
) -> bool:
    """True when a failed request is sent once more on a fresh connection.

    ``body_held``: the request has no body, or all of it is still in memory (both paths
    hold a body whole when its Content-Length is at most ``proxy.COALESCE_LIMIT``).
    ``reused``: it was sent on a pooled connection (a fresh one proves nothing stale).
    ``failure``: how it failed; only a connection closed under it shows staleness.
    ``answer_started``: some bytes of an answer arrived (the runner did handle it).
    ``resent``: this already was the second attempt.
    """
    return (
        reused
        and not resent
        and not answer_started
        and failure is ProxyStatus.CONNECTION_TERMINATED
        and body_held
        and method in SAFE_METHODS
    )


def worth_holding(method: str, body_length: int, limit: int) -> bool:
    """Whether a path that forwards bodies as they arrive (the lean relay) keeps a copy
    of a request while sending it: only for one that ``may_resend`` could let through,
    with a body of at most ``limit`` bytes (what the aiohttp path holds whole)."""
    return method in SAFE_METHODS and body_length <= limit


__all__ = ("SAFE_METHODS", "may_resend", "worth_holding")

"""The route the runner's router sees: a request target reduced to the path gin matches.

Why: the adapter decides on ``POST /api/v1/jobs``; if it read the target differently
from the runner, a submission could reach the runner's standard handler undecided
(``POST /api/v1/%6Aobs``, ``POST http://host/api/v1/jobs``). The runner is a Go
``net/http`` server whose handler is a ``gin.Default()`` engine (docs/runner-contract.md
§3, §10), so the path it routes on is Go's ``url.ParseRequestURI(target).Path`` matched
by gin's defaults:

- absolute form (``scheme://authority/path``) is reduced to its path; the query is cut
  at the first ``?``; every percent-escape is decoded (``%6A`` and ``%2F`` alike: Go's
  ``URL.Path`` is the decoded path and gin's ``UseRawPath`` is false); a malformed
  escape or a control byte makes Go answer 400, so no route at all (None);
- nothing else is folded: gin's ``RedirectFixedPath`` (case, ``//``, dot segments) and
  ``RemoveExtraSlash`` are off, so ``/API/v1/jobs`` and ``/api//v1/jobs`` are 404s;
  ``RedirectTrailingSlash`` is on, so ``/api/v1/jobs/`` gets a 307 to ``/api/v1/jobs``,
  which the client then sends through the adapter, where it is decided.

Pure: strings in, strings out.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

JOBS_SUBMIT_PATH: Final = "/api/v1/jobs"

# Go's getScheme: a letter, then letters, digits, '+', '-', '.', then ':'.
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Go refuses a request URI with an ASCII control byte (stringContainsCTLByte).
_CTL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
# A '%' not followed by two hex digits: Go's unescape fails (EscapeError).
_BAD_ESCAPE_RE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Go's validOptionalPort: an authority's port, when present, is digits only.
_PORT_RE: Final = re.compile(r"(?:\[[^\]]*\]|[^:\[\]]*)(?::[0-9]*)?")


def router_path(target: str) -> str | None:
    """The path the runner's router matches for this request target, or None when the
    runner refuses the target itself (400 from Go's server, no route). Decoded bytes are
    returned as latin-1 text, one character per byte."""
    if target.startswith("/"):
        path = target.split("?", 1)[0]
        # The usual target, on every relayed request: no escape to decode, and printable
        # (every ASCII control byte is unprintable), so no regex is needed.
        if "%" not in path and target.isprintable():
            return path
        if _CTL_RE.search(target):
            return None
    elif _CTL_RE.search(target):
        return None
    elif target == "*":
        return target
    else:
        scheme = _SCHEME_RE.match(target)
        if scheme is None:
            return None  # neither origin form nor absolute form: Go refuses it
        rest = target[scheme.end() :].split("?", 1)[0]
        if not rest.startswith("//"):
            return ""  # scheme:opaque has no path
        authority, slash, path_rest = rest[2:].partition("/")
        hostport = authority.rpartition("@")[2]
        if not _PORT_RE.fullmatch(hostport):
            return None
        path = slash + path_rest
    if "%" not in path:
        return path
    if _BAD_ESCAPE_RE.search(path):
        return None
    return unquote_to_bytes(path).decode("latin-1")


def is_jobs_submit(method: str, target: str) -> bool:
    """True for the request the runner routes to its standard job submission handler."""
    return method == "POST" and router_path(target) == JOBS_SUBMIT_PATH


# The route label of adapter_requests_total and the request log line: a fixed set.
ROUTE_JOBS_SUBMIT: Final = "jobs_submit"
ROUTE_JOBS_CROSS_REGION: Final = "jobs_cross_region"
ROUTE_WEBSOCKET: Final = "websocket"
ROUTE_HEALTH: Final = "health"
ROUTE_OTHER: Final = "other"
ROUTES: Final = (
    ROUTE_JOBS_SUBMIT,
    ROUTE_JOBS_CROSS_REGION,
    ROUTE_WEBSOCKET,
    ROUTE_HEALTH,
    ROUTE_OTHER,
)
_HEALTH_PATHS: Final = frozenset(
    prefix + suffix
    for prefix in ("/health", "/api/v1/health")
    for suffix in ("", "/live", "/ready")
)


def route_label(method: str, raw_path: str) -> str:
    """Map a request to one of ``ROUTES`` by the path the runner routes on (the query
    string is ignored, absolute form and percent-escapes read as the runner reads them)."""
    path = router_path(raw_path)
    if method == "POST" and path == JOBS_SUBMIT_PATH:  # is_jobs_submit, path read once
        return ROUTE_JOBS_SUBMIT
    if method == "POST" and path == "/api/v1/jobs/cross-region":
        return ROUTE_JOBS_CROSS_REGION
    if path == "/ws":
        return ROUTE_WEBSOCKET
    if method in ("GET", "HEAD") and path in _HEALTH_PATHS:
        return ROUTE_HEALTH
    return ROUTE_OTHER


__all__ = (
    "JOBS_SUBMIT_PATH",
    "ROUTES",
    "ROUTE_HEALTH",
    "ROUTE_JOBS_CROSS_REGION",
    "ROUTE_JOBS_SUBMIT",
    "ROUTE_OTHER",
    "ROUTE_WEBSOCKET",
    "is_jobs_submit",
    "route_label",
    "router_path",
)

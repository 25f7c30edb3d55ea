"""Header rules for forwarding a request to the runner and its response back.

Pure: header multidicts, the peer address and config values come in; new multidicts come
out. No aiohttp.web, no clock, no randomness (the request-id generator is passed in).
Trust assumption: the TCP peer is the only fact we know first-hand. A client-sent
X-Forwarded-For is believed only for ``trusted_hops`` proxies in front of us (werkzeug
ProxyFix ``x_for`` semantics), or the client IP comes from one header a trusted edge
sets (``Fly-Client-IP``). Anything else a client says about its address is dropped,
because the runner rate-limits by the leftmost X-Forwarded-For entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from multidict import CIMultiDict, MultiMapping, istr
from yarl import URL

from adapter.http.http1 import connection_tokens

# Any case-insensitive multi-valued header view: CIMultiDict or its read-only proxy.
Headers: TypeAlias = MultiMapping[str]
# One header field as parsed or sent: (name as written, value).
Field: TypeAlias = tuple[str, str]

# RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy Proxy-Connection and the proxy
# authentication pair, which are meant for us and must never reach the runner.
HOP_BY_HOP: Final = frozenset(
    name.lower()
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
# Fields a Connection header may not remove (pingora's policy): dropping them would let a
# client break framing, mislabel the body, or erase the headers we add ourselves.
PROTECTED: Final = frozenset(
    name.lower()
    for name in (
        "Host",
        "Content-Length",
        "Content-Encoding",
        "Content-Type",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Real-IP",
        "X-Request-ID",
        "Forwarded",
    )
)
# Headers the adapter computes itself; client-sent copies are discarded. (istr only marks
# a name as already case-folded for multidict; sets above hold lower-case str.)
X_FORWARDED_FOR: Final = istr("X-Forwarded-For")
X_FORWARDED_PROTO: Final = istr("X-Forwarded-Proto")
X_FORWARDED_HOST: Final = istr("X-Forwarded-Host")
X_REAL_IP: Final = istr("X-Real-IP")
X_REQUEST_ID: Final = istr("X-Request-ID")
HOST: Final = istr("Host")
EXPECT: Final = istr("Expect")
_REPLACED_UPSTREAM: Final = frozenset(
    {X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST, X_REAL_IP, X_REQUEST_ID, HOST, EXPECT}
)
# What never reaches the runner from the client, as one set for a single filtering pass.
_NOT_FORWARDED: Final = HOP_BY_HOP | frozenset(str(name).lower() for name in _REPLACED_UPSTREAM)

REQUEST_ID_MAX_LENGTH: Final = 128
_SCHEMES: Final = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class ClientIpPolicy:
    """How far to believe what arrives about the client's address."""

    trusted_hops: int = 0
    client_ip_header: str | None = None

    @property
    def behind_trusted_proxy(self) -> bool:
        """True when something in front of us vouches for the client address."""
        return self.trusted_hops > 0 or self.client_ip_header is not None


@dataclass(frozen=True, slots=True)
class ClientOrigin:
    """Who sent the request: the real client IP and the X-Forwarded-For chain to send on."""

    client_ip: str | None
    forwarded_for: tuple[str, ...]


def kept_fields(fields: Sequence[Field], always: frozenset[str]) -> list[Field]:
    """Fields without ``always`` (lower-case names) and those Connection nominates.

    Order and repetition of the kept fields are preserved (several Set-Cookie stay
    several). A nomination of a protected field (Host, Content-Length, ...) is ignored.
    """
    lowered = [name.lower() for name, _ in fields]
    dropped = always
    if "connection" in lowered:  # the usual request has none: skip the token parse
        values = [
            value for (_, value), name in zip(fields, lowered, strict=True) if name == "connection"
        ]
        dropped = always | (connection_tokens(values) - PROTECTED)
    return [field for field, name in zip(fields, lowered, strict=True) if name not in dropped]


def strip_hop_by_hop(headers: Headers) -> CIMultiDict[str]:
    """Copy headers without hop-by-hop fields and those Connection nominates
    (``kept_fields`` with ``HOP_BY_HOP``)."""
    return CIMultiDict(kept_fields(list(headers.items()), HOP_BY_HOP))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _comma_list(values: Iterable[str]) -> list[str]:
    """Split repeated, comma-separated header values into one list, blanks removed."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def resolve_client(peer_ip: str | None, headers: Headers, policy: ClientIpPolicy) -> ClientOrigin:
    """Find the client IP and the X-Forwarded-For chain whose leftmost entry is that client.

    - ``client_ip_header`` set: that header (a valid IP) names the client; else the peer.
    - ``trusted_hops`` = N > 0: the N-th X-Forwarded-For entry from the right is the
      client, the entries right of it came from our trusted proxies; entries left of it
      are whatever the client claimed and are dropped. Too few entries: the peer.
    - otherwise: the peer; every client-sent X-Forwarded-For entry is dropped.
    The peer (the last hop, which connected to us) is appended when it is not the client.
    """
    peer = [peer_ip] if peer_ip else []
    if policy.client_ip_header is not None:
        claimed = headers.get(policy.client_ip_header, "").strip()
        if _is_ip(claimed):
            chain = [claimed] + [p for p in peer if p != claimed]
            return ClientOrigin(claimed, tuple(chain))
    elif policy.trusted_hops > 0:
        entries = _comma_list(headers.getall(X_FORWARDED_FOR, ()))
        if len(entries) >= policy.trusted_hops:
            trusted = entries[-policy.trusted_hops :]
            if all(_is_ip(entry) for entry in trusted):
                return ClientOrigin(trusted[0], (*trusted, *peer))
    return ClientOrigin(peer_ip, tuple(peer))


def forwarded_proto(scheme: str, headers: Headers, policy: ClientIpPolicy) -> str:
    """X-Forwarded-Proto: our own scheme, or a trusted edge's (last value) when one vouches."""
    if policy.behind_trusted_proxy:
        claimed = _comma_list(headers.getall(X_FORWARDED_PROTO, ()))
        if claimed and claimed[-1].lower() in _SCHEMES:
            return claimed[-1].lower()
    return scheme


def forwarded_host(original_host: str | None, headers: Headers, policy: ClientIpPolicy) -> str:
    """X-Forwarded-Host: the Host the client used, or a trusted edge's (last value)."""
    if policy.behind_trusted_proxy:
        claimed = _comma_list(headers.getall(X_FORWARDED_HOST, ()))
        if claimed:
            return claimed[-1]
    return original_host or ""


def upstream_host(upstream: URL) -> str:
    """The Host header the runner expects: its own authority (Fly routes by it)."""
    host = upstream.host_port_subcomponent
    assert host is not None, "the upstream URL is absolute (checked by Config)"
    return host


def is_acceptable_request_id(value: str) -> bool:
    """The runner's rule (1-128 characters), limited to printable ASCII for safe logs."""
    return 1 <= len(value) <= REQUEST_ID_MAX_LENGTH and all(" " <= ch <= "~" for ch in value)


def accept_request_id(headers: Headers, generate: Callable[[], str]) -> str:
    """Keep the client's first X-Request-ID when acceptable, else make a new one."""
    sent = headers.get(X_REQUEST_ID)
    if sent is not None and is_acceptable_request_id(sent):
        return sent
    return generate()


@dataclass(frozen=True, slots=True)
class ForwardedFacts:
    """What the I/O shell knows about one incoming request, beyond its headers."""

    peer_ip: str | None
    scheme: str
    request_id: str


def upstream_fields(
    incoming: Headers, facts: ForwardedFacts, upstream: URL, policy: ClientIpPolicy
) -> tuple[list[Field], ClientOrigin]:
    """Fields to send to the runner, plus the resolved client origin for logs and metrics.

    Hop-by-hop fields go first (RFC 9110 §7.6.1), then every field the adapter owns is
    replaced: Host (the upstream's), X-Forwarded-For/-Proto/-Host, X-Real-IP, X-Request-ID.
    ``Expect`` is dropped because the adapter already answered ``100 Continue`` itself.
    The adapter's fields come last, in that order.
    """
    origin = resolve_client(facts.peer_ip, incoming, policy)
    fields = kept_fields(list(incoming.items()), _NOT_FORWARDED)
    fields.append((HOST, upstream_host(upstream)))
    if origin.forwarded_for:
        fields.append((X_FORWARDED_FOR, ", ".join(origin.forwarded_for)))
    if origin.client_ip is not None:
        fields.append((X_REAL_IP, origin.client_ip))
    fields.append((X_FORWARDED_PROTO, forwarded_proto(facts.scheme, incoming, policy)))
    original_host = forwarded_host(incoming.get(HOST), incoming, policy)
    if original_host:
        fields.append((X_FORWARDED_HOST, original_host))
    fields.append((X_REQUEST_ID, facts.request_id))
    return fields, origin


def build_upstream_headers(
    incoming: Headers, facts: ForwardedFacts, upstream: URL, policy: ClientIpPolicy
) -> tuple[CIMultiDict[str], ClientOrigin]:
    """``upstream_fields`` as a multidict, for aiohttp's client."""
    fields, origin = upstream_fields(incoming, facts, upstream, policy)
    return CIMultiDict(fields), origin


__all__ = (
    "HOP_BY_HOP",
    "PROTECTED",
    "ClientIpPolicy",
    "ClientOrigin",
    "Field",
    "ForwardedFacts",
    "accept_request_id",
    "build_upstream_headers",
    "forwarded_host",
    "forwarded_proto",
    "is_acceptable_request_id",
    "kept_fields",
    "resolve_client",
    "strip_hop_by_hop",
    "upstream_fields",
    "upstream_host",
)

"""Pure header rules: hop-by-hop removal, client IP trust, X-Forwarded-*, request ids."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, strategies as st
from multidict import CIMultiDict
from yarl import URL

from adapter.http.forwarding import (
    ClientIpPolicy,
    ForwardedFacts,
    accept_request_id,
    build_upstream_headers,
    resolve_client,
    strip_hop_by_hop,
    upstream_host,
)
from adapter.http.http1 import connection_tokens

UPSTREAM = URL("http://runner.internal:8090")


def h(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    """Headers in the given order, repeats allowed."""
    return CIMultiDict(pairs)


@pytest.mark.parametrize(
    ("incoming", "expected"),
    [
        pytest.param(
            h(
                ("Connection", "keep-alive"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Trailer", "X-Checksum"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ("Proxy-Authenticate", "Basic"),
                ("Accept", "*/*"),
            ),
            h(("Accept", "*/*")),
            id="fixed-set",
        ),
        pytest.param(
            h(("connection", "X-Secret, x-other"), ("X-Secret", "1"), ("X-Other", "2"), ("A", "b")),
            h(("A", "b")),
            id="nominated-any-case",
        ),
        pytest.param(
            h(("Connection", "close"), ("Connection", "X-Two"), ("X-Two", "2"), ("Keep", "1")),
            h(("Keep", "1")),
            id="repeated-connection-headers",
        ),
        pytest.param(
            h(
                ("Connection", "Host, Content-Length, X-Forwarded-For, X-Request-ID"),
                ("Connection", "Content-Encoding, X-Real-IP"),
                ("Host", "example.org"),
                ("Content-Length", "3"),
                ("Content-Encoding", "gzip"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Real-IP", "1.2.3.4"),
                ("X-Request-ID", "abc"),
            ),
            h(
                ("Host", "example.org"),
                ("Content-Length", "3"),
                ("Content-Encoding", "gzip"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Real-IP", "1.2.3.4"),
                ("X-Request-ID", "abc"),
            ),
            id="protected-nominations-ignored",
        ),
        pytest.param(
            h(
                ("Set-Cookie", "a=1"),
                ("Vary", "Origin"),
                ("Set-Cookie", "b=2"),
                ("Set-Cookie", "c=3"),
            ),
            h(
                ("Set-Cookie", "a=1"),
                ("Vary", "Origin"),
                ("Set-Cookie", "b=2"),
                ("Set-Cookie", "c=3"),
            ),
            id="repeats-keep-order-and-count",
        ),
        pytest.param(h(("Connection", " , ,")), h(), id="empty-tokens"),
    ],
)
def test_strip_hop_by_hop(incoming: CIMultiDict[str], expected: CIMultiDict[str]) -> None:
    """Hop-by-hop and Connection-nominated fields go; the rest stays in order."""
    assert list(strip_hop_by_hop(incoming).items()) == list(expected.items())


def test_connection_tokens_are_case_insensitive() -> None:
    """Tokens from every Connection header are collected, compared without case."""
    headers = h(("Connection", "Foo, BAR"), ("connection", "baz"))
    tokens = connection_tokens(headers.getall("Connection", ()))
    assert tokens == {"foo", "bar", "baz"}


@pytest.mark.parametrize(
    ("peer", "incoming", "policy", "client_ip", "chain"),
    [
        pytest.param(
            "10.0.0.5",
            h(("X-Forwarded-For", "6.6.6.6")),
            ClientIpPolicy(),
            "10.0.0.5",
            ("10.0.0.5",),
            id="no-trust-drops-spoof",
        ),
        pytest.param(
            "10.0.0.5",
            h(),
            ClientIpPolicy(trusted_hops=1),
            "10.0.0.5",
            ("10.0.0.5",),
            id="hops1-none",
        ),
        pytest.param(
            "10.0.0.5",
            h(("X-Forwarded-For", "6.6.6.6, 203.0.113.7")),
            ClientIpPolicy(trusted_hops=1),
            "203.0.113.7",
            ("203.0.113.7", "10.0.0.5"),
            id="hops1-rightmost-is-client",
        ),
        pytest.param(
            "10.0.0.5",
            h(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7, 10.0.0.9")),
            ClientIpPolicy(trusted_hops=2),
            "203.0.113.7",
            ("203.0.113.7", "10.0.0.9", "10.0.0.5"),
            id="hops2-repeated-headers",
        ),
        pytest.param(
            "10.0.0.5",
            h(("X-Forwarded-For", "203.0.113.7")),
            ClientIpPolicy(trusted_hops=2),
            "10.0.0.5",
            ("10.0.0.5",),
            id="hops2-too-few-entries",
        ),
        pytest.param(
            "10.0.0.5",
            h(("X-Forwarded-For", "unknown")),
            ClientIpPolicy(trusted_hops=1),
            "10.0.0.5",
            ("10.0.0.5",),
            id="hops1-garbage",
        ),
        pytest.param(
            "10.0.0.5",
            h(("Fly-Client-IP", "2001:db8::1"), ("X-Forwarded-For", "6.6.6.6")),
            ClientIpPolicy(client_ip_header="Fly-Client-IP"),
            "2001:db8::1",
            ("2001:db8::1", "10.0.0.5"),
            id="client-ip-header",
        ),
        pytest.param(
            "10.0.0.5",
            h(("fly-client-ip", "not-an-ip")),
            ClientIpPolicy(client_ip_header="Fly-Client-IP"),
            "10.0.0.5",
            ("10.0.0.5",),
            id="client-ip-header-garbage",
        ),
        pytest.param(
            "10.0.0.5",
            h(("Fly-Client-IP", "10.0.0.5")),
            ClientIpPolicy(client_ip_header="Fly-Client-IP"),
            "10.0.0.5",
            ("10.0.0.5",),
            id="client-ip-header-is-peer",
        ),
        pytest.param(None, h(), ClientIpPolicy(), None, (), id="no-peer"),
    ],
)
def test_resolve_client(
    peer: str | None,
    incoming: CIMultiDict[str],
    policy: ClientIpPolicy,
    client_ip: str | None,
    chain: tuple[str, ...],
) -> None:
    """The client IP is leftmost and only trusted hops may name it (ProxyFix x_for rules)."""
    origin = resolve_client(peer, incoming, policy)
    assert origin.client_ip == client_ip
    assert origin.forwarded_for == chain


def _upstream(incoming: CIMultiDict[str], policy: ClientIpPolicy) -> CIMultiDict[str]:
    facts = ForwardedFacts(peer_ip="10.0.0.5", scheme="http", request_id="rid-1")
    headers, _ = build_upstream_headers(incoming, facts, UPSTREAM, policy)
    return headers


def test_upstream_headers_replace_what_we_own() -> None:
    """Host becomes the upstream's; X-Forwarded-*, X-Real-IP, X-Request-ID are ours."""
    incoming = h(
        ("Host", "adapter.example.org"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Request-ID", "client-supplied"),
        ("Expect", "100-continue"),
        ("Authorization", "Bearer t"),
    )
    out = _upstream(incoming, ClientIpPolicy())
    assert out["Host"] == "runner.internal:8090"
    assert out.getall("X-Forwarded-For") == ["10.0.0.5"]
    assert out.getall("X-Forwarded-Proto") == ["http"]
    assert out.getall("X-Forwarded-Host") == ["adapter.example.org"]
    assert out.getall("X-Real-IP") == ["10.0.0.5"]
    assert out.getall("X-Request-ID") == ["rid-1"]
    assert "Expect" not in out
    assert out["Authorization"] == "Bearer t"


def test_upstream_headers_trust_edge_proto_and_host() -> None:
    """Behind a trusted proxy, its X-Forwarded-Proto/-Host (last value) are kept."""
    incoming = h(
        ("Host", "internal:8080"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "http, https"),
        ("X-Forwarded-Host", "portal.example.org"),
    )
    out = _upstream(incoming, ClientIpPolicy(trusted_hops=1))
    assert out["X-Forwarded-For"] == "203.0.113.7, 10.0.0.5"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "portal.example.org"


def test_upstream_headers_ignore_bad_edge_proto() -> None:
    """A trusted edge's X-Forwarded-Proto that is not http/https falls back to ours."""
    out = _upstream(h(("X-Forwarded-Proto", "gopher")), ClientIpPolicy(trusted_hops=1))
    assert out["X-Forwarded-Proto"] == "http"


def test_connection_cannot_remove_our_headers() -> None:
    """A Connection header nominating our forwarding headers does not drop them."""
    incoming = h(
        ("Connection", "X-Forwarded-For, X-Request-ID, Host, Content-Length"),
        ("Content-Length", "2"),
    )
    out = _upstream(incoming, ClientIpPolicy())
    assert out["X-Forwarded-For"] == "10.0.0.5"
    assert out["X-Request-ID"] == "rid-1"
    assert out["Host"] == "runner.internal:8090"
    assert out["Content-Length"] == "2"
    assert "Connection" not in out


def test_upstream_headers_keep_repeats() -> None:
    """Repeated end-to-end request headers reach the runner in order and count."""
    incoming = h(("Accept", "a"), ("Cookie", "x=1"), ("Accept", "b"), ("Accept", "c"))
    out = _upstream(incoming, ClientIpPolicy())
    assert out.getall("Accept") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://runner:8090", "runner:8090", id="port"),
        pytest.param("http://runner", "runner", id="default-http"),
        pytest.param("https://runner.fly.dev", "runner.fly.dev", id="default-https"),
        pytest.param("http://[::1]:8090", "[::1]:8090", id="ipv6"),
    ],
)
def test_upstream_host(url: str, expected: str) -> None:
    """Host is the upstream authority, default ports omitted."""
    assert upstream_host(URL(url)) == expected


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param(None, "generated", id="absent"),
        pytest.param("", "generated", id="empty"),
        pytest.param("a", "a", id="one-char"),
        pytest.param("x" * 128, "x" * 128, id="128-chars"),
        pytest.param("x" * 129, "generated", id="129-chars"),
        pytest.param("req 42/α", "generated", id="non-ascii"),
        pytest.param("req\t42", "generated", id="control-char"),
        pytest.param("3f2c-abc req", "3f2c-abc req", id="printable-with-space"),
    ],
)
def test_accept_request_id(sent: str | None, expected: str) -> None:
    """The client's X-Request-ID is kept when 1-128 printable characters, else replaced."""
    incoming = h() if sent is None else h(("X-Request-ID", sent))
    assert accept_request_id(incoming, lambda: "generated") == expected


_names = st.sampled_from(
    ["Accept", "Set-Cookie", "X-A", "Connection", "Keep-Alive", "Upgrade", "X-B", "TE", "Host"]
)
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@given(st.lists(st.tuples(_names, _values), max_size=20))
def test_strip_keeps_every_end_to_end_field_in_order(pairs: list[tuple[str, str]]) -> None:
    """Property: the output is the input minus dropped names, order and count intact."""
    incoming = CIMultiDict(pairs)
    out = strip_hop_by_hop(incoming)
    dropped = {"connection", "keep-alive", "upgrade", "te"} | {
        *connection_tokens(incoming.getall("Connection", ()))
    }
    dropped -= {"host"}
    assert list(out.items()) == [(k, v) for k, v in pairs if k.lower() not in dropped]


def test_pure_modules_do_not_import_aiohttp_web() -> None:
    """forwarding and config stay pure: importing them leaves aiohttp.web unloaded."""
    code = (
        "import sys, adapter.http.forwarding, adapter.config, adapter.metrics; "
        "print('aiohttp.web' in sys.modules)"
    )
    result = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"

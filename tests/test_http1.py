"""The lean relay's HTTP/1.1 heads and chunked framing, checked against aiohttp's parsers.

The request parser must accept only what aiohttp's own server parses the same way, and
hand everything else over (None); the chunked scanner must find the end of a body exactly
where aiohttp's payload parser does, whatever the split of the stream into reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HeadersParser, HttpPayloadParser, HttpRequestParser, PayloadState
from aiohttp.streams import StreamReader
from hypothesis import given, settings, strategies as st

from adapter.http.http1 import (
    ANSWER_CONTINUES,
    ENDS_WITH_CONNECTION,
    HEAD_END,
    LAST_CHUNK,
    LEAN_METHODS,
    MAX_RESPONSE_HEAD,
    STREAM_CONTINUES,
    STREAM_UNTRACKED,
    AnswerEnd,
    ChunkedError,
    ChunkedScanner,
    Fields,
    Framing,
    RequestHead,
    RequestStreamEnd,
    ResponseHead,
    ResponseHeadError,
    ResponseHeadTooLarge,
    connection_tokens,
    parse_request_head,
    parse_response_head,
    rechunk,
    relayed_response_head,
    request_framing,
    serialize_request_head,
    serialize_response_head,
)

PROPERTY = settings(max_examples=300)


def _head(*lines: str | bytes) -> bytes:
    """A head without its blank line, as the relay slices it before HEAD_END."""
    return b"\r\n".join(line.encode("latin-1") if isinstance(line, str) else line for line in lines)


# --- parse_request_head -------------------------------------------------------------------

HOST = "Host: example.test"

ACCEPTED_REQUESTS = [
    pytest.param(
        _head("GET /path?q=1&r=%20 HTTP/1.1", HOST),
        RequestHead("GET", "/path?q=1&r=%20", [("Host", "example.test")], 0, True),
        id="plain-get",
    ),
    pytest.param(
        _head("POST /v1/jobs HTTP/1.1", HOST, "Content-Length: 12", "Content-Type: text/plain"),
        RequestHead(
            "POST",
            "/v1/jobs",
            [("Host", "example.test"), ("Content-Length", "12"), ("Content-Type", "text/plain")],
            12,
            True,
        ),
        id="post-with-length",
    ),
    pytest.param(
        _head("PUT / HTTP/1.1", HOST, "Content-Length: 999999999999999999"),
        RequestHead(
            "PUT",
            "/",
            [("Host", "example.test"), ("Content-Length", "999999999999999999")],
            999_999_999_999_999_999,
            True,
        ),
        id="eighteen-digit-length",
    ),
    pytest.param(
        _head("DELETE /x HTTP/1.1", HOST, "Content-Length: 0"),
        RequestHead("DELETE", "/x", [("Host", "example.test"), ("Content-Length", "0")], 0, True),
        id="zero-length",
    ),
    pytest.param(
        _head("GET / HTTP/1.1", HOST, "Connection: keep-alive"),
        RequestHead("GET", "/", [("Host", "example.test"), ("Connection", "keep-alive")], 0, True),
        id="keep-alive",
    ),
    pytest.param(
        _head("GET / HTTP/1.1", HOST, "Connection: close"),
        RequestHead("GET", "/", [("Host", "example.test"), ("Connection", "close")], 0, False),
        id="connection-close",
    ),
    pytest.param(
        _head("GET / HTTP/1.1", HOST, "connection: keep-alive", "CONNECTION: TE, Close"),
        RequestHead(
            "GET",
            "/",
            [
                ("Host", "example.test"),
                ("connection", "keep-alive"),
                ("CONNECTION", "TE, Close"),
            ],
            0,
            False,
        ),
        id="close-among-tokens-over-two-fields",
    ),
    pytest.param(
        _head(
            "OPTIONS /a HTTP/1.1",
            "hOsT:example.test",
            "X-Spaced: \t  inner  value \t ",
            "X-Empty:",
            "x-spaced: second",
            "X-Tab:a\tb",
        ),
        RequestHead(
            "OPTIONS",
            "/a",
            [
                ("hOsT", "example.test"),
                ("X-Spaced", "inner  value"),
                ("X-Empty", ""),
                ("x-spaced", "second"),
                ("X-Tab", "a\tb"),
            ],
            0,
            True,
        ),
        id="trimmed-values-order-repetition-and-name-case-kept",
    ),
    pytest.param(
        _head("PATCH /a HTTP/1.1", "Host:", "Content-Length: 007"),
        RequestHead("PATCH", "/a", [("Host", ""), ("Content-Length", "007")], 7, True),
        id="empty-host-and-leading-zeros",
    ),
]


@pytest.mark.parametrize(("head", "expected"), ACCEPTED_REQUESTS)
def test_parse_request_head_accepts_plain_requests(head: bytes, expected: RequestHead) -> None:
    """A plain request head parses to its method, target and fields, as aiohttp reads it."""
    assert parse_request_head(head) == expected
    _assert_aiohttp_agrees(head, expected)


@pytest.mark.parametrize("method", sorted(LEAN_METHODS))
def test_every_lean_method_is_accepted(method: str) -> None:
    """Every method the lean relay handles is accepted on an origin-form request."""
    head = parse_request_head(_head(f"{method} / HTTP/1.1", HOST))
    assert head is not None
    assert head.method == method


HANDED_OVER_REQUESTS = [
    pytest.param(_head("GET / HTTP/1.0", HOST), id="http-1.0"),
    pytest.param(_head("GET / HTTP/2.0", HOST), id="http-2.0"),
    pytest.param(_head("GET / http/1.1", HOST), id="lower-case-version"),
    pytest.param(_head("GET http://example.test/ HTTP/1.1", HOST), id="absolute-form"),
    pytest.param(_head("OPTIONS * HTTP/1.1", HOST), id="asterisk-form"),
    pytest.param(_head("CONNECT example.test:443 HTTP/1.1", HOST), id="connect"),
    pytest.param(_head("CONNECT / HTTP/1.1", HOST), id="connect-origin-form"),
    pytest.param(_head("TRACE / HTTP/1.1", HOST), id="trace"),
    pytest.param(_head("PROPFIND / HTTP/1.1", HOST), id="unknown-method"),
    pytest.param(_head("get / HTTP/1.1", HOST), id="lower-case-method"),
    pytest.param(_head("GET  / HTTP/1.1", HOST), id="two-spaces-after-method"),
    pytest.param(_head("GET /  HTTP/1.1", HOST), id="two-spaces-after-target"),
    pytest.param(_head("GET / HTTP/1.1 ", HOST), id="trailing-space"),
    pytest.param(_head(" GET / HTTP/1.1", HOST), id="leading-space"),
    pytest.param(_head("GET\t/ HTTP/1.1", HOST), id="tab-separator"),
    pytest.param(_head("GET / HTTP/1.1"), id="no-fields-no-host"),
    pytest.param(_head("GET /", HOST), id="no-version"),
    pytest.param(b"", id="empty"),
    pytest.param(_head("GET / HTTP/1.1", "X-A: b"), id="missing-host"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "host: other.test"), id="two-hosts"),
    pytest.param(_head("GET / HTTP/1.1", HOST, HOST), id="two-equal-hosts"),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked"), id="transfer-encoding"
    ),
    pytest.param(_head("POST / HTTP/1.1", HOST, "transfer-encoding: identity"), id="te-any-value"),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Content-Length: 3", "Transfer-Encoding: chunked"),
        id="te-and-cl",
    ),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Expect: 100-continue"), id="expect"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "Upgrade: websocket"), id="upgrade"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "Connection: Upgrade"), id="connection-upgrade"),
    pytest.param(
        _head("GET / HTTP/1.1", HOST, "Connection: keep-alive, upgrade"),
        id="connection-upgrade-in-list",
    ),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Content-Length: 3", "Content-Length: 3"),
        id="two-equal-lengths",
    ),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Content-Length: 3", "content-length: 4"),
        id="two-different-lengths",
    ),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: 3, 3"), id="length-list"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: +3"), id="plus-length"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: -3"), id="minus-length"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: 0x3"), id="hex-length"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: 3a"), id="letter-length"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: 3 3"), id="spaced-length"),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length:"), id="empty-length"),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Content-Length: 1000000000000000000"),
        id="nineteen-digit-length",
    ),
    pytest.param(_head("POST / HTTP/1.1", HOST, "Content-Length: " + "9" * 40), id="huge-length"),
    pytest.param(
        _head("POST / HTTP/1.1", HOST, "Content-Length: \u0663".encode()),
        id="non-ascii-digit-length",
    ),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: b", " folded"), id="obs-fold-space"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: b", "\tfolded"), id="obs-fold-tab"),
    pytest.param(_head("GET / HTTP/1.1", " Host: example.test"), id="fold-as-first-line"),
    pytest.param(_head("GET / HTTP/1.1", "Host : example.test"), id="space-before-colon"),
    pytest.param(_head("GET / HTTP/1.1", "Host\t: example.test"), id="tab-before-colon"),
    pytest.param(_head("GET / HTTP/1.1", HOST, ": value"), id="empty-field-name"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A"), id="no-colon"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X(A): b"), id="non-token-name"),
    pytest.param(_head("GET / HTTP/1.1", HOST, ""), id="empty-field-line"),
    pytest.param(_head("GET / HTTP/1.1", HOST) + b"\r\n", id="trailing-crlf"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: a\x00b"), id="nul-in-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: a\rb"), id="bare-cr-in-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: a\nb"), id="bare-lf-in-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: a\x7fb"), id="del-in-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: a\x01b"), id="control-in-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-\x00A: b"), id="nul-in-name"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-\rA: b"), id="bare-cr-in-name"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-\nA: b"), id="bare-lf-in-name"),
    pytest.param(_head("GET /a\x00b HTTP/1.1", HOST), id="nul-in-target"),
    pytest.param(_head("GET /a\rb HTTP/1.1", HOST), id="bare-cr-in-target"),
    pytest.param(_head("GET /a\nb HTTP/1.1", HOST), id="bare-lf-in-target"),
    pytest.param(b"GET / HTTP/1.1\nHost: example.test", id="bare-lf-line-end"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.test\nX-A: b", id="bare-lf-between-fields"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: caf\xe9"), id="latin-1-value"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-A: caf\xc3\xa9"), id="utf-8-value"),
    pytest.param(_head("GET /caf\xe9 HTTP/1.1", HOST), id="non-ascii-target"),
    pytest.param(_head("GET / HTTP/1.1", HOST, "X-\xe9: b"), id="non-ascii-name"),
]


@pytest.mark.parametrize("head", HANDED_OVER_REQUESTS)
def test_parse_request_head_hands_over(head: bytes) -> None:
    """Anything not plain (other versions or forms, framing fields, odd bytes) goes to aiohttp."""
    assert parse_request_head(head) is None


# --- parse_response_head ------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    framing: Framing
    reusable: bool
    content_length: int = 0


RESPONSES = [
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5"),
        "GET",
        Expected(Framing.LENGTH, True, 5),
        id="length",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5", "content-length: 5"),
        "GET",
        Expected(Framing.LENGTH, True, 5),
        id="two-equal-lengths",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 0"),
        "GET",
        Expected(Framing.LENGTH, True, 0),
        id="zero-length",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
        "GET",
        Expected(Framing.CHUNKED, True),
        id="chunked",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "transfer-encoding: Chunked"),
        "POST",
        Expected(Framing.CHUNKED, True),
        id="chunked-any-case",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 5"),
        "GET",
        Expected(Framing.CHUNKED, False),
        id="te-and-cl-chunked-not-reusable",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: nonsense"),
        "GET",
        Expected(Framing.CHUNKED, False),
        id="te-wins-over-bad-cl",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Type: text/plain"),
        "GET",
        Expected(Framing.CLOSE, False),
        id="close-delimited",
    ),
    pytest.param(_head("HTTP/1.1 200 OK"), "GET", Expected(Framing.CLOSE, False), id="no-fields"),
    pytest.param(
        _head("HTTP/1.0 200 OK", "Content-Length: 5"),
        "GET",
        Expected(Framing.LENGTH, False, 5),
        id="http-1.0-not-reusable",
    ),
    pytest.param(
        _head("HTTP/1.0 200 OK", "Connection: keep-alive", "Content-Length: 5"),
        "GET",
        Expected(Framing.LENGTH, False, 5),
        id="http-1.0-keep-alive-still-not-reusable",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5", "Connection: close"),
        "GET",
        Expected(Framing.LENGTH, False, 5),
        id="connection-close",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "connection: X, CLOSE"),
        "GET",
        Expected(Framing.CHUNKED, False),
        id="connection-close-in-list",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5"),
        "HEAD",
        Expected(Framing.NONE, True, 5),
        id="head-with-length",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
        "HEAD",
        Expected(Framing.NONE, True),
        id="head-with-chunked",
    ),
    pytest.param(_head("HTTP/1.1 200 OK"), "HEAD", Expected(Framing.NONE, True), id="head-bare"),
    pytest.param(_head("HTTP/1.1 204 No Content"), "GET", Expected(Framing.NONE, True), id="204"),
    pytest.param(
        _head("HTTP/1.1 204 No Content", "Content-Length: 5"),
        "DELETE",
        Expected(Framing.NONE, True, 5),
        id="204-ignores-length",
    ),
    pytest.param(
        _head("HTTP/1.1 304 Not Modified", 'ETag: "x"'),
        "GET",
        Expected(Framing.NONE, True),
        id="304",
    ),
    pytest.param(
        _head("HTTP/1.1 304 Not Modified", "Connection: close"),
        "GET",
        Expected(Framing.NONE, False),
        id="304-connection-close",
    ),
    pytest.param(_head("HTTP/1.1 100 Continue"), "POST", Expected(Framing.NONE, True), id="100"),
    pytest.param(
        _head("HTTP/1.1 103 Early Hints", "Link: </a.css>; rel=preload"),
        "GET",
        Expected(Framing.NONE, True),
        id="103",
    ),
    pytest.param(
        _head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"),
        "GET",
        Expected(Framing.NONE, False),
        id="101-never-reusable",
    ),
]


@pytest.mark.parametrize(("head", "method", "expected"), RESPONSES)
def test_parse_response_head_framing(head: bytes, method: str, expected: Expected) -> None:
    """A response's framing, reusability and length follow its status, method and fields."""
    response = parse_response_head(head, method)
    assert (response.framing, response.reusable, response.content_length) == (
        expected.framing,
        expected.reusable,
        expected.content_length,
    )
    assert response.status == int(head[9:12])


@pytest.mark.parametrize(
    ("status_line", "status", "reason"),
    [
        ("HTTP/1.1 200 OK", 200, "OK"),
        ("HTTP/1.1 200", 200, ""),
        ("HTTP/1.1 200 ", 200, ""),
        ("HTTP/1.1 404 Not  Found ", 404, "Not  Found "),
        ("HTTP/1.1 599 \tx", 599, "\tx"),
        ("HTTP/1.1 200 d\xe9j\xe0 vu", 200, "d\xe9j\xe0 vu"),
        ("HTTP/1.0 999 Custom", 999, "Custom"),
    ],
)
def test_parse_response_status_line(status_line: str, status: int, reason: str) -> None:
    """The status code and reason phrase are read from any HTTP/1.x status line."""
    response = parse_response_head(_head(status_line, "Content-Length: 0"), "GET")
    assert (response.status, response.reason) == (status, reason)


def test_parse_response_fields_keep_obs_text_order_case_and_repetition() -> None:
    """Response fields keep obs-text bytes, order, case and repeats; values lose edge spaces."""
    head = _head(
        "HTTP/1.1 200 OK",
        b"Set-Cookie: a=\x80\xff; Path=/",
        "X-Name:  caf\xe9 \t",
        "set-cookie: b=2",
        "X-Empty:",
        "Content-Length: 0",
    )
    response = parse_response_head(head, "GET")
    assert response.fields == [
        ("Set-Cookie", "a=\x80\xff; Path=/"),
        ("X-Name", "caf\xe9"),
        ("set-cookie", "b=2"),
        ("X-Empty", ""),
        ("Content-Length", "0"),
    ]
    # latin-1 round trip: the client receives the runner's bytes unchanged.
    out = serialize_response_head(response.status, response.reason, response.fields)
    assert b"Set-Cookie: a=\x80\xff; Path=/\r\n" in out
    assert b"X-Name: caf\xe9\r\n" in out


RESPONSE_ERRORS = [
    pytest.param(b"", id="empty"),
    pytest.param(_head("HTTP/1.1 200OK"), id="no-space-after-status"),
    pytest.param(_head("HTTP/1.1  200 OK"), id="two-spaces"),
    pytest.param(_head("HTTP/1.2 200 OK"), id="http-1.2"),
    pytest.param(_head("HTTP/2 200 OK"), id="http-2"),
    pytest.param(_head("http/1.1 200 OK"), id="lower-case-version"),
    pytest.param(_head("HTTP/1.1 20 OK"), id="two-digit-status"),
    pytest.param(_head("HTTP/1.1 2000 OK"), id="four-digit-status"),
    pytest.param(_head("HTTP/1.1 099 OK"), id="leading-zero-status"),
    pytest.param(_head("HTTP/1.1 abc OK"), id="letters-status"),
    pytest.param(_head("ICY 200 OK"), id="icy"),
    pytest.param(_head("HTTP/1.1 200 O\rK"), id="bare-cr-in-reason"),
    pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 0", id="bare-lf-line-end"),
    pytest.param(_head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"), id="te-gzip"),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"), id="te-gzip-chunked"
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
        id="te-chunked-twice",
    ),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"),
        id="two-different-lengths",
    ),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length: 5, 5"), id="length-list"),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length: -5"), id="minus-length"),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length: +5"), id="plus-length"),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length: 5a"), id="letter-length"),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length:"), id="empty-length"),
    pytest.param(_head("HTTP/1.1 200 OK", "Content-Length: " + "9" * 19), id="huge-length"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A: b", " folded"), id="obs-fold"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A : b"), id="space-before-colon"),
    pytest.param(_head("HTTP/1.1 200 OK", ": b"), id="empty-name"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A"), id="no-colon"),
    pytest.param(_head("HTTP/1.1 200 OK", ""), id="empty-field-line"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A: a\x00b"), id="nul-in-value"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A: a\rb"), id="bare-cr-in-value"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-A: a\x7fb"), id="del-in-value"),
    pytest.param(_head("HTTP/1.1 200 OK", "X-\xe9: b"), id="obs-text-in-name"),
    pytest.param(
        _head("HTTP/1.1 200 OK", "Content-Length: 5", "X-A: b\nContent-Length: 6"),
        id="bare-lf-smuggled-length",
    ),
]


@pytest.mark.parametrize("head", RESPONSE_ERRORS)
def test_parse_response_head_rejects(head: bytes) -> None:
    """A response head the relay cannot frame safely raises ResponseHeadError."""
    with pytest.raises(ResponseHeadError):
        parse_response_head(head, "GET")


@pytest.mark.parametrize(
    ("values", "tokens"),
    [
        ([], set()),
        (["close"], {"close"}),
        (["Keep-Alive, ,Upgrade ", "TE"], {"keep-alive", "upgrade", "te"}),
        ([" , "], set()),
    ],
)
def test_connection_tokens(values: list[str], tokens: set[str]) -> None:
    """Connection tokens are collected from every value, lower-cased, empty ones dropped."""
    assert connection_tokens(values) == tokens


# --- ChunkedScanner -----------------------------------------------------------------------

# (body, the bytes after it, the payload it carries)
CHUNKED_ENDS = [
    pytest.param(b"0\r\n\r\n", b"", b"", id="empty-body"),
    pytest.param(b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"", id="next-response-follows"),
    pytest.param(b"5\r\nhello\r\n0\r\n\r\n", b"", b"hello", id="one-chunk"),
    pytest.param(b"5\r\nhe\r\no\r\n0\r\n\r\n", b"", b"he\r\no", id="crlf-inside-data"),
    pytest.param(b"1\r\n\n\r\n0\r\n\r\n", b"", b"\n", id="lf-as-data"),
    pytest.param(b"A\r\n0123456789\r\n0\r\n\r\n", b"", b"0123456789", id="upper-hex"),
    pytest.param(b"a\r\n0123456789\r\n0\r\n\r\n", b"", b"0123456789", id="lower-hex"),
    pytest.param(b"0005\r\nhello\r\n000\r\n\r\n", b"", b"hello", id="leading-zeros"),
    pytest.param(b'5;a=b;c="d;e"\r\nhello\r\n0;z\r\n\r\n', b"", b"hello", id="extensions"),
    pytest.param(b"5 ;a\r\nhello\r\n0\t\r\n\r\n", b"", b"hello", id="bws"),
    pytest.param(
        b"2\r\nhe\r\n3\r\nllo\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
        b"rest",
        b"hello",
        id="trailers",
    ),
    pytest.param(b"0\r\n\r\n", b"0\r\n\r\n", b"", id="second-body-not-read"),
    pytest.param(b"0\r\n\r\n", b"\r\n", b"", id="blank-line-after-end"),
]


@pytest.mark.parametrize(("body", "extra", "payload"), CHUNKED_ENDS)
def test_chunked_scanner_finds_end(body: bytes, extra: bytes, payload: bytes) -> None:
    """The scanner finds the end of a chunked body whole or fed a byte at a time."""
    stream = body + extra
    assert _scan(stream, []) == len(body)
    assert _scan(stream, list(range(1, len(stream)))) == len(body)  # one byte at a time
    assert _decode_chunked(stream) == (payload, len(body))


CHUNKED_ERRORS = [
    pytest.param(b"\r\n", id="empty-size"),
    pytest.param(b"g\r\n", id="non-hex-size"),
    pytest.param(b"-1\r\n", id="negative-size"),
    pytest.param(b"0x5\r\nhello\r\n", id="0x-prefix"),
    pytest.param(b";a\r\n", id="extension-without-size"),
    pytest.param(b"5\nhello\r\n", id="lf-after-size"),
    pytest.param(b"5;a\nb\r\nhello\r\n", id="lf-in-extension"),
    pytest.param(b"5\r\nhelloX\r\n0\r\n\r\n", id="data-longer-than-size"),
    pytest.param(b"5\r\nhello\n0\r\n\r\n", id="lf-after-data"),
    pytest.param(b"5\r\nhello0\r\n\r\n", id="missing-crlf-after-data"),
    pytest.param(b"0\r\nX-A: 1\n\r\n", id="lf-in-trailer"),
    pytest.param(b"0\r\n\n", id="bare-lf-final-line"),
    pytest.param(b"1" * 5000, id="size-line-too-long-unterminated"),
    pytest.param(b"1;" + b"a" * 5000 + b"\r\n", id="size-line-too-long"),
    pytest.param(b"0\r\nX-A: " + b"a" * 5000, id="trailer-too-long-unterminated"),
    pytest.param(b"0\r\nX-A: " + b"a" * 5000 + b"\r\n\r\n", id="trailer-too-long"),
]


@pytest.mark.parametrize("stream", CHUNKED_ERRORS)
def test_chunked_scanner_rejects(stream: bytes) -> None:
    """Malformed chunked framing raises ChunkedError however the bytes arrive."""
    with pytest.raises(ChunkedError):
        _scan(stream, [])
    with pytest.raises(ChunkedError):
        _scan(stream, list(range(1, len(stream))))


def test_chunked_scanner_waits_for_the_final_blank_line() -> None:
    """The body ends only after the blank line that closes the trailers."""
    scanner = ChunkedScanner()
    for piece in (b"", b"3\r\nabc\r", b"\n0\r\n", b"X: y\r\n", b"\r"):
        assert scanner.feed(piece) == -1
    assert scanner.feed(b"\nextra") == 1


def _scan(stream: bytes, cuts: list[int]) -> int:
    """The end offset the scanner reports for ``stream`` fed in pieces split at ``cuts``.

    Checks the scanner says -1 for every piece before the one holding the end, and stops
    feeding once it has answered (the relay drops the scanner there). -1 if never ended.
    """
    scanner = ChunkedScanner()
    start = 0
    for stop in [*sorted(set(cuts)), len(stream)]:
        found = scanner.feed(stream[start:stop])
        if found >= 0:
            assert 0 < found <= stop - start
            return start + found
        start = stop
    return -1


def _decode_chunked(stream: bytes) -> tuple[bytes, int]:
    """A deliberately plain decoder (RFC 9112 §7.1): the payload and the end offset."""
    payload, pos = b"", 0
    while True:
        line_end = stream.index(b"\r\n", pos)
        size = int(stream[pos:line_end].split(b";")[0].strip(b" \t"), 16)
        pos = line_end + 2
        if size == 0:
            break
        payload += stream[pos : pos + size]
        assert stream[pos + size : pos + size + 2] == b"\r\n"
        pos += size + 2
    while not stream.startswith(b"\r\n", pos):  # trailer fields
        pos = stream.index(b"\r\n", pos) + 2
    return payload, pos + 2


def _aiohttp_end(stream: bytes, cuts: list[int]) -> tuple[bytes, int]:
    """aiohttp's own payload parser on the same pieces: the payload and the end offset."""
    loop = asyncio.new_event_loop()
    try:
        reader = StreamReader(BaseProtocol(loop), 2**24, loop=loop)
        parser = HttpPayloadParser(reader, chunked=True, headers_parser=HeadersParser())
        start = 0
        for stop in [*sorted(set(cuts)), len(stream)]:
            state, tail = parser.feed_data(stream[start:stop])
            if state is PayloadState.PAYLOAD_COMPLETE:
                return loop.run_until_complete(reader.read()), stop - len(tail)
            start = stop
    finally:
        loop.close()
    raise AssertionError("aiohttp did not find the end")


TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
TOKENS = TOKEN.filter(bool)
VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@st.composite
def _values(draw: st.DrawFn, *, obs_text: bool = False) -> str:
    """A field value as the parsers return it: no spaces or tabs at either end."""
    edge = VISIBLE | st.characters(min_codepoint=0x80, max_codepoint=0xFF) if obs_text else VISIBLE
    middle = draw(st.text(alphabet=edge | st.sampled_from(" \t"), max_size=20))
    if not middle:
        return draw(st.sampled_from(["", draw(edge)]))
    return draw(edge) + middle + draw(edge)


@st.composite
def _extensions(draw: st.DrawFn, *, bws: bool) -> bytes:
    space = st.sampled_from(["", " ", "\t", " \t"]) if bws else st.just("")
    out = ""
    for _ in range(draw(st.integers(0, 3))):
        out += draw(space) + ";" + draw(space) + draw(TOKENS)
        if draw(st.booleans()):
            quoted = draw(st.text(alphabet=VISIBLE.filter(lambda c: c not in '"\\'), max_size=8))
            value = draw(st.one_of(TOKENS, st.just(f'"{quoted}"')))
            out += draw(space) + "=" + draw(space) + value
    return out.encode("ascii")


@dataclass(frozen=True)
class ChunkedStream:
    stream: bytes
    payload: bytes
    end: int


@st.composite
def _chunked_streams(draw: st.DrawFn, *, bws: bool = True) -> ChunkedStream:
    """A chunked body with random sizes, extensions and trailers, then unrelated bytes."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=6))
    out = b""
    for chunk in [*chunks, b""]:
        size = b"%x" % len(chunk)
        size = b"0" * draw(st.integers(0, 2)) + (size.upper() if draw(st.booleans()) else size)
        out += size + draw(_extensions(bws=bws)) + b"\r\n" + chunk + (b"\r\n" if chunk else b"")
    # "X-" keeps aiohttp from refusing a repeated singleton field (Content-Length) as trailer.
    for name, value in draw(st.lists(st.tuples(TOKENS, _values()), max_size=3)):
        out += f"X-{name}: {value}\r\n".encode("ascii")
    out += b"\r\n"
    extra = draw(st.one_of(st.binary(max_size=30), st.sampled_from([b"0\r\n\r\n", b"\r\n"])))
    return ChunkedStream(out + extra, b"".join(chunks), len(out))


def _cuts(stream: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(stream)), max_size=8)


@PROPERTY
@given(data=st.data(), body=_chunked_streams())
def test_chunked_scanner_end_is_exact_for_any_split(
    data: st.DataObject, body: ChunkedStream
) -> None:
    """Property: the end offset is exact however the stream is split."""
    cuts = data.draw(_cuts(body.stream))
    assert _scan(body.stream, cuts) == body.end
    assert _decode_chunked(body.stream) == (body.payload, body.end)


@PROPERTY
@given(data=st.data(), body=_chunked_streams(bws=False))
def test_chunked_scanner_agrees_with_aiohttp(data: st.DataObject, body: ChunkedStream) -> None:
    """Property: the scanner ends where aiohttp's payload parser ends."""
    # aiohttp's strict parser rejects BWS around chunk extensions, so none here.
    cuts = data.draw(_cuts(body.stream))
    assert _aiohttp_end(body.stream, cuts) == (body.payload, body.end)
    assert _scan(body.stream, cuts) == body.end


@PROPERTY
@given(
    data=st.data(),
    body=_chunked_streams(),
    at=st.integers(0, 2**16),
    byte=st.binary(min_size=1, max_size=3),
)
def test_chunked_scanner_on_corrupted_streams_ends_where_a_decoder_does(
    data: st.DataObject, body: ChunkedStream, at: int, byte: bytes
) -> None:
    """Bytes inserted anywhere: the scanner either raises or agrees with the plain decoder."""
    at %= body.end + 1
    stream = body.stream[:at] + byte + body.stream[at:]
    cuts = data.draw(_cuts(stream))
    try:
        end = _scan(stream, cuts)
    except ChunkedError:
        return
    if end >= 0:
        assert _decode_chunked(stream)[1] == end


@PROPERTY
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    extra=st.binary(max_size=20),
    data=st.data(),
)
def test_rechunk_then_last_chunk_decodes_to_the_original(
    chunks: list[bytes], extra: bytes, data: st.DataObject
) -> None:
    """Property: rechunked pieces plus the last chunk decode to the original bytes."""
    body = b"".join(rechunk(chunk) for chunk in chunks) + LAST_CHUNK
    stream = body + extra
    cuts = data.draw(_cuts(stream))
    assert _scan(stream, cuts) == len(body)
    assert _decode_chunked(stream) == (b"".join(chunks), len(body))
    assert _aiohttp_end(stream, cuts) == (b"".join(chunks), len(body))


def test_rechunk_of_nothing_is_not_the_last_chunk() -> None:
    """An empty read must not end the client's body early."""
    assert rechunk(b"") != LAST_CHUNK
    stream = rechunk(b"a") + rechunk(b"") + rechunk(b"b") + LAST_CHUNK
    assert _decode_chunked(stream) == (b"ab", len(stream))


# --- serialisation round trips and robustness ---------------------------------------------

_SPECIAL_REQUEST_NAMES = {"host", "content-length", "connection", "transfer-encoding", "expect"}
_SPECIAL_REQUEST_NAMES |= {"upgrade"}


@st.composite
def _request_heads(draw: st.DrawFn) -> RequestHead:
    """A plain request as a RequestHead with the fields serialize_request_head writes."""
    method = draw(st.sampled_from(sorted(LEAN_METHODS)))
    target = "/" + draw(st.text(alphabet=VISIBLE, max_size=30))
    names = TOKENS.filter(lambda n: n.lower() not in _SPECIAL_REQUEST_NAMES)
    fields: Fields = draw(st.lists(st.tuples(names, _values()), max_size=8))
    fields.append((draw(st.sampled_from(["Host", "host", "HOST"])), draw(_values())))
    length = draw(st.one_of(st.none(), st.integers(0, 10**18 - 1)))
    if length is not None:
        fields.append(("Content-Length", str(length)))
    keep_alive = draw(st.booleans())
    if not keep_alive or draw(st.booleans()):
        fields.append(("Connection", "close" if not keep_alive else "keep-alive"))
    fields = list(draw(st.permutations(fields)))
    return RequestHead(method, target, fields, length or 0, keep_alive)


@PROPERTY
@given(request=_request_heads())
def test_request_head_round_trip(request: RequestHead) -> None:
    """Property: a serialized request head parses back to the same head."""
    raw = serialize_request_head(request.method, request.target, request.fields)
    assert raw.endswith(HEAD_END)
    head = raw[: -len(HEAD_END)]
    assert parse_request_head(head) == request
    _assert_aiohttp_agrees(head, request)


@st.composite
def _responses(draw: st.DrawFn) -> tuple[int, str, Fields]:
    status = draw(st.integers(100, 999))
    reason = draw(st.text(alphabet=st.sampled_from(["\t", " ", "\x80", "\xff"]) | VISIBLE))
    names = TOKENS.filter(lambda n: n.lower() not in {"content-length", "transfer-encoding"})
    fields: Fields = draw(st.lists(st.tuples(names, _values(obs_text=True)), max_size=8))
    return status, reason, fields


@PROPERTY
@given(response=_responses(), method=st.sampled_from(["GET", "HEAD", "POST"]))
def test_response_head_round_trip(response: tuple[int, str, Fields], method: str) -> None:
    """Property: a serialized response head parses back to the same status, reason and fields."""
    status, reason, fields = response
    raw = serialize_response_head(status, reason, fields)
    assert raw.endswith(HEAD_END)
    parsed = parse_response_head(raw[: -len(HEAD_END)], method)
    assert (parsed.status, parsed.reason, parsed.fields) == (status, reason, fields)
    body_less = method == "HEAD" or status < 200 or status in (204, 304)
    assert parsed.framing is (Framing.NONE if body_less else Framing.CLOSE)


@st.composite
def _mangled(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes replaced, inserted or deleted, biased to HTTP's delimiters."""
    out = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        piece = draw(
            st.one_of(st.binary(max_size=3), st.sampled_from([b"\r", b"\n", b" ", b"\t", b":"]))
        )
        cut = draw(st.integers(0, 2))
        out[at : at + cut] = piece
    return bytes(out)


@st.composite
def _request_like(draw: st.DrawFn) -> bytes:
    request = draw(_request_heads())
    raw = serialize_request_head(request.method, request.target, request.fields)
    return draw(st.one_of(st.binary(max_size=200), _mangled(raw[: -len(HEAD_END)])))


@st.composite
def _response_like(draw: st.DrawFn) -> bytes:
    status, reason, fields = draw(_responses())
    fields.append(
        draw(
            st.sampled_from(
                [
                    ("Content-Length", "12"),
                    ("Transfer-Encoding", "chunked"),
                    ("Connection", "close"),
                ]
            )
        )
    )
    raw = serialize_response_head(status, reason, fields)
    return draw(st.one_of(st.binary(max_size=200), _mangled(raw[: -len(HEAD_END)])))


@PROPERTY
@given(head=_request_like())
def test_parse_request_head_never_raises_and_agrees_with_aiohttp(head: bytes) -> None:
    """Property: mangled request heads never raise; accepted ones read as aiohttp reads them."""
    parsed = parse_request_head(head)
    assert parsed is None or isinstance(parsed, RequestHead)
    if parsed is not None:
        _assert_aiohttp_agrees(head, parsed)


@PROPERTY
@given(head=_response_like(), method=st.sampled_from(["GET", "HEAD"]))
def test_parse_response_head_raises_only_response_head_error(head: bytes, method: str) -> None:
    """Property: mangled response heads give a head or ResponseHeadError, nothing else."""
    try:
        parsed = parse_response_head(head, method)
    except ResponseHeadError:
        return
    assert isinstance(parsed, ResponseHead)
    assert parsed.framing in Framing


def _assert_aiohttp_agrees(head: bytes, expected: RequestHead) -> None:
    """aiohttp's server parser reads an accepted head the same way (no grey area)."""
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(BaseProtocol(loop), loop, 2**16)
        messages, upgraded, tail = parser.feed_data(head + HEAD_END)
        message = messages[0][0]
        assert (message.method, message.path, upgraded, tail) == (
            expected.method,
            expected.target,
            False,
            b"",
        )
        raw_fields = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in message.raw_headers]
        assert raw_fields == expected.fields
        assert message.should_close is not expected.keep_alive
        assert not message.chunked
        assert int(message.headers.get("Content-Length", "0")) == expected.content_length
    finally:
        loop.close()


# relayed_response_head: the runner's field lines passed on byte for byte, minus the
# dropped names, plus the added fields.

_RELAY_BLOCK = (
    b"HTTP/1.1 200 OK\r\nServer: runner\r\nConnection: keep-alive, X-Internal\r\n"
    b"Set-Cookie: a=1\r\nX-Internal: secret\r\nset-cookie: b=2\r\nKeep-Alive: timeout=5\r\n"
    b"Content-Type:  application/json \r\nContent-Length: 2"
)


@pytest.mark.parametrize(
    ("dropped", "added", "expected"),
    [
        pytest.param(
            frozenset({"connection", "keep-alive", "x-internal"}),
            [("X-Request-ID", "r1")],
            b"HTTP/1.1 200 OK\r\nServer: runner\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
            b"Content-Type:  application/json \r\nContent-Length: 2\r\nX-Request-ID: r1\r\n\r\n",
            id="hop-by-hop-and-nominated",
        ),
        pytest.param(
            frozenset({"CONTENT-LENGTH", "content-length"}),
            [],
            b"HTTP/1.1 200 OK\r\nServer: runner\r\nConnection: keep-alive, X-Internal\r\n"
            b"Set-Cookie: a=1\r\nX-Internal: secret\r\nset-cookie: b=2\r\nKeep-Alive: timeout=5\r\n"
            b"Content-Type:  application/json \r\n\r\n",
            id="case-insensitive",
        ),
        pytest.param(
            frozenset(),
            [("Connection", "close")],
            _RELAY_BLOCK + b"\r\nConnection: close\r\n\r\n",
            id="nothing-dropped",
        ),
        pytest.param(
            frozenset({"set-cookie", "server"}),
            [],
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\n"
            b"Keep-Alive: timeout=5\r\nContent-Type:  application/json \r\nContent-Length: 2"
            b"\r\n\r\n",
            id="repeated-names-all-dropped",
        ),
    ],
)
def test_relayed_response_head(
    dropped: frozenset[str], added: list[tuple[str, str]], expected: bytes
) -> None:
    """Kept lines are byte-identical (case, spacing, order, repetition); only whole lines
    whose name is dropped go, never a line whose name merely starts with a dropped one."""
    response = parse_response_head(_RELAY_BLOCK, "GET")
    assert relayed_response_head(response, dropped, added) == expected


def test_relayed_response_head_keeps_longer_names() -> None:
    """Dropping ``te`` must not drop ``Tenant`` or ``TE-Extra``."""
    response = parse_response_head(
        b"HTTP/1.1 204 No Content\r\nTE: trailers\r\nTenant: a\r\nTE-Extra: b", "GET"
    )
    assert relayed_response_head(response, frozenset({"te"}), []) == (
        b"HTTP/1.1 204 No Content\r\nTenant: a\r\nTE-Extra: b\r\n\r\n"
    )


def test_chunk_size_longer_than_64_bits_is_refused() -> None:
    """A 17-digit chunk size would overflow a client's 64-bit counter."""
    with pytest.raises(ChunkedError):
        ChunkedScanner().feed(b"1" + b"0" * 16 + b"\r\n")
    assert ChunkedScanner().feed(b"0000000000000000\r\n\r\n") == 20


# --- AnswerEnd: where one answer ends in the runner's stream, however it was split. ---

ANSWERS = [
    pytest.param("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", id="length"),
    pytest.param("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", id="length-zero"),
    pytest.param(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        id="chunked-with-trailer",
    ),
    pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", id="head"),
    pytest.param("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", id="204"),
    pytest.param(
        "POST",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
        id="interim-then-final",
    ),
]
AFTER = [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY", b"x", b"\r\n"]


def _end_of(method: str, stream: bytes, cuts: list[int]) -> int:
    """Feed ``stream`` cut at ``cuts``; the end's offset in the whole stream, or the
    last result when no end was found."""
    scanner = AnswerEnd(method)
    start = 0
    for stop in [*sorted(set(cuts)), len(stream)]:
        piece = stream[start:stop]
        if piece:
            end = scanner.feed(piece)
            if end >= 0:
                return start + end
            if end == ENDS_WITH_CONNECTION:
                return end
        start = stop
    return ANSWER_CONTINUES


@pytest.mark.parametrize("after", AFTER)
@pytest.mark.parametrize(("method", "answer"), ANSWERS)
def test_answer_end_in_one_read(method: str, answer: bytes, after: bytes) -> None:
    """The end is exactly the answer's last byte; what follows is never part of it."""
    assert _end_of(method, answer + after, []) == len(answer)


@given(data=st.data())
@PROPERTY
def test_answer_end_whatever_the_split(data: st.DataObject) -> None:
    """Cut anywhere, any number of times: the same end."""
    method, answer = data.draw(st.sampled_from([p.values for p in ANSWERS]))
    assert isinstance(method, str)
    assert isinstance(answer, bytes)
    stream = answer + data.draw(st.sampled_from(AFTER))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert _end_of(method, stream, cuts) == len(answer)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\nuntil close", id="close-delimited"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", id="101"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="bad-length"),
        pytest.param(b"garbage\r\n\r\n", id="garbage"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"
        ),
    ],
)
def test_answer_that_ends_with_the_connection(answer: bytes) -> None:
    """Nothing after these can be told apart from the answer: the connection ends with it."""
    assert _end_of("GET", answer, []) == ENDS_WITH_CONNECTION


@pytest.mark.parametrize("split", [None, 1000, MAX_RESPONSE_HEAD])
def test_answer_head_over_the_cap_whatever_the_split(split: int | None) -> None:
    """A head over MAX_RESPONSE_HEAD is refused in one read and in many."""
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * MAX_RESPONSE_HEAD + b"\r\n\r\n"
    scanner = AnswerEnd("GET")
    rest = head
    if split is not None:
        assert scanner.feed(head[:split]) == ANSWER_CONTINUES
        rest = head[split:]
    with pytest.raises(ResponseHeadTooLarge):
        scanner.feed(rest)


# --- RequestStreamEnd: the end of the request after which the client connection closes. ---

KEEP_ALIVE_GET = b"GET /k HTTP/1.1\r\nHost: a\r\n\r\n"
CLOSING_REQUESTS = [
    pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", id="1.0"),
    pytest.param(b"GET / HTTP/1.0\r\nConnection: Close\r\n\r\n", id="1.0-close"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n", id="1.1-close"),
    pytest.param(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", id="1.0-with-body"),
    pytest.param(
        b"POST / HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        id="1.1-chunked-close",
    ),
]


@pytest.mark.parametrize("after", [b"", b"GET /next HTTP/1.1\r\n\r\n", b"garbage"])
@pytest.mark.parametrize("closing", CLOSING_REQUESTS)
def test_stream_ends_after_the_closing_request(closing: bytes, after: bytes) -> None:
    """Keep-alive requests before it are stepped over; the end is its last byte."""
    stream = KEEP_ALIVE_GET + b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + closing
    assert RequestStreamEnd().feed(stream + after) == len(stream)


@given(data=st.data())
@PROPERTY
def test_stream_end_whatever_the_split(data: st.DataObject) -> None:
    """Cut anywhere, any number of times: the same end."""
    closing = data.draw(st.sampled_from([p.values[0] for p in CLOSING_REQUESTS]))
    assert isinstance(closing, bytes)
    stream = KEEP_ALIVE_GET + closing
    whole = stream + b"GET /after HTTP/1.1\r\n\r\n"
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(whole)), max_size=10))))
    scanner, start, found = RequestStreamEnd(), 0, None
    for stop in [*cuts, len(whole)]:
        piece = whole[start:stop]
        if piece and found is None:
            end = scanner.feed(piece)
            assert end != STREAM_UNTRACKED
            if end >= 0:
                found = start + end
        start = stop
    assert found == len(stream)


@pytest.mark.parametrize(
    ("head", "framing"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: a", (0, False), id="keep-alive"),
        pytest.param(b"GET / HTTP/1.0", (0, True), id="1.0-no-fields"),
        pytest.param(b"PUT / HTTP/1.1\r\nContent-Length: 007", (7, False), id="leading-zeros"),
        pytest.param(b"GET / HTTP/1.1\r\nUpgrade: websocket", None, id="upgrade"),
        pytest.param(b"CONNECT a:443 HTTP/1.1", None, id="connect"),
        pytest.param(b"GET / HTTP/2.0", None, id="other-version"),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", None, id="two-CL"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", None, id="CL-TE"
        ),
        pytest.param(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip", None, id="TE-not-chunked"),
        pytest.param(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", None, id="TE-in-1.0"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: +1", None, id="CL-sign"),
        pytest.param(b"GET / HTTP/1.1\r\nno colon", None, id="no-colon"),
    ],
)
def test_request_framing(head: bytes, framing: tuple[int, bool] | None) -> None:
    assert request_framing(head) == framing


def test_stream_untracked_from_an_unplain_request_on() -> None:
    """After an upgrade (or any head aiohttp must judge) nothing is cut any more."""
    scanner = RequestStreamEnd()
    assert scanner.feed(KEEP_ALIVE_GET) == STREAM_CONTINUES
    upgrade = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert scanner.feed(upgrade) == STREAM_UNTRACKED
    assert scanner.feed(b"GET / HTTP/1.0\r\n\r\nmore") == STREAM_UNTRACKED

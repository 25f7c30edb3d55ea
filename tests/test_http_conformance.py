"""HTTP conformance through raw sockets, on both paths (``ADAPTER_LEAN_RELAY`` true and false).

What a proxy owes its clients whatever the runner or the client sends: an answer never
reaches the wrong client (a pooled runner connection that sends bytes nobody asked for
is never reused), an unrequested ``101`` is a 502, the route is decided on the path the
runner's router matches, header bytes are forwarded as read or refused, and one set of
limits holds whatever the TCP segmentation. Runners that misbehave on purpose speak raw
bytes (``RawTcpUpstream``); clients are raw sockets too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from tests.conftest import AdapterFactory, RecordingUpstream
from tests.test_relay import (
    BOTH_PATHS,
    Answer,
    Reply,
    Runner,
    ScriptedUpstream,
    connect,
    ok,
    request,
)

PROTOCOL_ERROR = "beacon-adapter; error=http_protocol_error"


# --- 1. Isolation: a stray answer on a pooled runner connection never reaches a client. ---


@dataclass
class StrayUpstream(Runner):
    """Answers each request with its own target as the body; after the first answer only,
    sends ``stray`` on the same connection: right after the answer (``late`` = 0, one
    write) or ``late`` seconds later. Every request line it read is recorded."""

    stray: bytes = b""
    late: float = 0.0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # bounded: one turn per request the adapter sends
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                self.seen.append(line)
                length = 0
                for field_line in head.split(b"\r\n"):
                    name, _, value = field_line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                target = line.split(" ")[1].encode()
                answer = ok(target)
                if len(self.seen) > 1:
                    writer.write(answer)
                elif self.late:
                    writer.write(answer)
                    await writer.drain()
                    await asyncio.sleep(self.late)
                    writer.write(self.stray)
                else:
                    writer.write(answer + self.stray)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


STRAY_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Stray: yes\r\n\r\nSTRAY"
STRAYS = [
    pytest.param(STRAY_ANSWER, 0.2, id="late-answer"),
    pytest.param(STRAY_ANSWER[:30], 0.2, id="late-partial-head"),
    pytest.param(STRAY_ANSWER, 0.0, id="answer-right-after"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Stray: yes", 0.0, id="partial-head-right-after"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Stray: yes\r\n", 0.0, id="partial-field-right-after"),
    pytest.param(b"garbage", 0.0, id="garbage-right-after"),
]
# Requests the lean relay hands to aiohttp's client (and so to its pool), and one it
# relays itself: each kind is sent by clients A, B and C alike, so B and C borrow the
# pooled connection A's stray bytes arrived on.
KINDS = ["jobs-submit", "http-1.0", "expect", "plain"]


def _of_kind(kind: str, name: str) -> tuple[bytes, str]:
    """Client ``name``'s request of ``kind`` and the target the runner sees for it."""
    if kind == "jobs-submit":
        target = f"/api/v1/jobs?client={name}"
        head = f"POST {target} HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
        return (head + "Content-Length: 2\r\n\r\nhi").encode(), target
    target = f"/client-{name}"
    if kind == "http-1.0":
        return f"GET {target} HTTP/1.0\r\nHost: a\r\n\r\n".encode(), target
    if kind == "expect":
        return request("POST", target, "Expect: 100-continue", body=b"hi"), target
    return request("GET", target), target


async def _answer_on_new_connection(port: int, data: bytes) -> Reply:
    async with connect(port) as client:
        return await client.exchange(data, data.split(b" ", 1)[0].decode())


@pytest.mark.parametrize(("stray", "late"), STRAYS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_stray_bytes_never_answer_another_client(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    kind: str,
    stray: bytes,
    late: float,
) -> None:
    """Client A's request is answered, then the runner sends bytes nobody asked for on
    that connection. Clients B and C, on connections of their own, each get their own
    answer (or a clean 502), never the stray one; their requests reach the runner."""
    upstream = StrayUpstream(stray=stray, late=late)
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        sent = {name: _of_kind(kind, name) for name in ("a", "b", "c")}
        first_reply = await _answer_on_new_connection(adapter.port, sent["a"][0])
        await asyncio.sleep(late + 0.1)
        replies = [await _answer_on_new_connection(adapter.port, sent[n][0]) for n in "bc"]
    assert (first_reply.status, first_reply.body) == (200, sent["a"][1].encode())
    for name, reply in zip("bc", replies, strict=True):
        assert reply.header("X-Stray") == []
        assert b"STRAY" not in reply.raw_body
        if reply.status == 502:
            assert reply.header("Proxy-Status")
        else:
            assert (reply.status, reply.body) == (200, sent[name][1].encode())
    assert [line.split(" ")[1] for line in upstream.seen] == [sent[n][1] for n in "abc"]


# --- 2. An unrequested 101 is a 502, and the runner connection is closed. ---


UNASKED_101 = [
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", id="bare"),
    pytest.param(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        id="h2c",
    ),
    pytest.param(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        + ok(b"after-switch"),
        id="websocket-then-http",
    ),
]


@pytest.mark.parametrize("answer", UNASKED_101)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_unrequested_101_is_502_and_connection_closed(
    start_adapter: AdapterFactory, env: Mapping[str, str], kind: str, answer: bytes
) -> None:
    """A 101 to a request that asked for no upgrade: 502 http_protocol_error; the runner
    connection is closed (the next request opens a new one) and nothing after the 101
    reaches any client."""
    upstream = ScriptedUpstream(Answer((answer,)), ok(b"next"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        first, first_target = _of_kind(kind, "a")
        reply = await _answer_on_new_connection(adapter.port, first)
        following = await _answer_on_new_connection(adapter.port, request("GET", "/next"))
    assert reply.status == 502
    assert reply.header("Proxy-Status") == [PROTOCOL_ERROR]
    assert reply.header("Upgrade") == []
    assert (following.status, following.body) == (200, b"next")
    assert upstream.connections == 2
    assert [seen.line.split(" ")[1] for seen in upstream.seen] == [first_target, "/next"]


# --- 3. The rewrite is decided on the path the runner's router matches. ---


@pytest.mark.parametrize(
    ("target", "decided"),
    [
        pytest.param("/api/v1/jobs", True, id="origin-form"),
        pytest.param("http://adapter.test/api/v1/jobs", True, id="absolute-form"),
        pytest.param("/api/v1/%6Aobs", True, id="escaped-unreserved"),
        pytest.param("/api/v1%2Fjobs?x=1", True, id="escaped-slash"),
        pytest.param("/api/v1/jobs/", False, id="trailing-slash-runner-redirects"),
        pytest.param("/API/v1/jobs", False, id="case-runner-404s"),
        pytest.param("/api//v1/jobs", False, id="double-slash-runner-404s"),
    ],
)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_submission_decided_on_the_runners_route(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    target: str,
    decided: bool,
) -> None:
    """Every spelling the runner routes to its submission handler gets a decision; the
    others pass through undecided, their target byte for byte."""
    adapter = await start_adapter(upstream.url, env)
    body = b'{"not": "a jobspec"}'
    data = (
        f"POST {target} HTTP/1.1\r\nHost: adapter.test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reply = await _answer_on_new_connection(adapter.port, data)
    assert reply.status == 200
    assert bool(reply.header("X-Adapter-Decision")) is decided
    seen = upstream.last
    assert seen.body == body
    if not decided:
        assert seen.raw_path == target


# --- 5. Limits, HTTP/1.0 and closing after the adapter's own answers. ---

QUICK_CLIENT_TIMEOUT = {"ADAPTER_CLIENT_IDLE_TIMEOUT": "0.5"}


@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_408_closes_the_connection_at_once(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """A body that stops arriving gets 408 with Connection: close, and the connection
    is closed right after it (no lingering read of a body that is not coming)."""
    adapter = await start_adapter(upstream.url, {**env, **QUICK_CLIENT_TIMEOUT})
    async with connect(adapter.port) as client:
        await client.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        reply = await client.reply("POST")
        rest = await client.closed_by_server(within=2)
    assert reply.status == 408
    assert reply.header("Connection") == ["close"]
    assert rest == b""


async def _send_in_pieces(port: int, data: bytes, cuts: list[int]) -> tuple[Reply | None, bytes]:
    """Send ``data`` cut at ``cuts`` (one write each, a pause between, so each arrives in
    its own read); the first answer (None if the adapter closed without one: a refusal
    before the client finished sending may reach it as a reset) and what followed it
    before the adapter closed the connection."""
    async with connect(port) as client:
        start = 0
        for stop in [*cuts, len(data)]:
            try:
                await client.send(data[start:stop])
            except ConnectionError:
                break
            await asyncio.sleep(0.02)
            start = stop
        method = data.split(b" ", 1)[0].decode()
        try:
            reply = await client.reply(method)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, b""
        return reply, await client.closed_by_server()


async def _assert_refused(
    start_adapter: AdapterFactory, env: Mapping[str, str], data: bytes
) -> None:
    """``data`` is answered 400, the connection closes right after, and nothing at all
    reaches the runner."""
    upstream = ScriptedUpstream(ok(b"fine"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        reply, rest = await _send_in_pieces(adapter.port, data, [])
    assert reply is not None
    assert (reply.status, rest) == (400, b"")
    assert upstream.seen == []


CLOSING_THEN_MORE = [
    pytest.param(b"GET /a HTTP/1.0\r\nHost: a\r\n\r\nGET /b HTTP/1.0\r\n\r\n", id="1.0"),
    pytest.param(
        b"GET /a HTTP/1.0\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        id="1.0-connection-close",
    ),
    pytest.param(
        b"POST /a HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.0\r\n\r\n",
        id="1.0-with-body",
    ),
    pytest.param(
        b"POST /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        id="1.1-connection-close",
    ),
    pytest.param(
        b"POST /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\nGARBAGE",
        id="1.1-chunked-close",
    ),
]


@pytest.mark.parametrize("data", CLOSING_THEN_MORE)
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split"])
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_request_that_closes_is_answered_and_the_rest_dropped(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    data: bytes,
    split: bool,
) -> None:
    """As nginx and Go do: the request is answered, the connection closes after it, and
    nothing after it reaches the runner."""
    adapter = await start_adapter(upstream.url, env)
    cuts = [data.index(b"\r\n\r\n") + 2, len(data) - 3] if split else []
    reply, rest = await _send_in_pieces(adapter.port, data, cuts)
    assert reply is not None
    assert (reply.status, rest) == (200, b"")
    assert reply.json()["path"] == "/a"
    assert [(r.raw_path, r.body) for r in upstream.requests] == [
        ("/a", b"hi" if data.startswith(b"POST") else b"")
    ]


def _fields(count: int, size: int = 1) -> bytes:
    return b"".join(b"X-F%d: %b\r\n" % (i, b"v" * size) for i in range(count))


# (fields besides Host and Connection, forwarded?): what each limit lets through, the
# same on both paths.
LIMITS = [
    pytest.param(_fields(1, 8190), True, id="value-8190"),
    pytest.param(_fields(1, 8191), False, id="value-8191"),
    pytest.param(_fields(1, 9 * 1024), False, id="value-9KiB"),
    pytest.param(_fields(126), True, id="128-fields"),
    pytest.param(_fields(127), False, id="129-fields"),
    pytest.param(_fields(200), False, id="200-fields"),
    pytest.param(_fields(60, 1024), True, id="head-61KiB-in-limits"),
]


@pytest.mark.parametrize(("extra", "forwarded"), LIMITS)
@pytest.mark.parametrize("pieces", [1, 2, 7], ids=["one-write", "two-writes", "seven-writes"])
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_request_limits_whatever_the_segmentation(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    extra: bytes,
    forwarded: bool,
    pieces: int,
) -> None:
    """A head within the limits is forwarded, one over them is 400 and closed, however
    TCP cut it (the last cut just before the blank line)."""
    upstream = ScriptedUpstream(ok(b"fine"))
    data = b"GET /limits HTTP/1.1\r\nHost: a\r\n" + extra + b"Connection: close\r\n\r\n"
    cuts = [len(data) * i // pieces for i in range(1, pieces)]
    if pieces > 1:
        cuts[-1] = len(data) - 2
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        reply, _ = await _send_in_pieces(adapter.port, data, cuts)
    if forwarded:
        assert reply is not None
        assert (reply.status, reply.body) == (200, b"fine")
        assert len(upstream.seen) == 1
    else:
        assert reply is None or reply.status == 400
        assert upstream.seen == []


# Runner answers against the response limits (64 KiB head, 128 fields).
HEAD_TOO_LARGE = "beacon-adapter; error=http_response_header_section_size"
RESPONSE_LIMITS = [
    pytest.param(_fields(8, 8000), None, id="head-63KiB-8000-byte-fields"),
    pytest.param(_fields(9, 8000), HEAD_TOO_LARGE, id="head-over-64KiB"),
    pytest.param(_fields(1, 60_000), None, id="one-60KB-field"),
    pytest.param(_fields(127), None, id="127-fields"),
    pytest.param(_fields(129), PROTOCOL_ERROR, id="129-fields"),
]


@pytest.mark.parametrize(("extra", "proxy_status"), RESPONSE_LIMITS)
@pytest.mark.parametrize("apart", [False, True], ids=["one-write", "trickled"])
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_response_limits_whatever_the_segmentation(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    extra: bytes,
    proxy_status: str | None,
    apart: bool,
) -> None:
    """The runner's head within the limits is relayed, one over them is the same 502 on
    both paths, in one read or in many."""
    answer = b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 2\r\n\r\nok"
    parts = tuple(answer[i : i + 16_000] for i in range(0, len(answer), 16_000))
    upstream = ScriptedUpstream(Answer(parts, pause=0.02) if apart else Answer((answer,)))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        reply = await _answer_on_new_connection(adapter.port, request("GET", "/big-head"))
    if proxy_status is None:
        assert (reply.status, reply.body) == (200, b"ok")
    else:
        assert reply.status == 502
        assert reply.header("Proxy-Status") == [proxy_status]


REFUSED_LENGTHS = [
    pytest.param(b"9999999999999999999", id="over-int64"),
    pytest.param(b"18446744073709551616", id="over-uint64"),
    pytest.param(b"+2", id="plus-sign"),
    pytest.param(b"-1", id="negative"),
    pytest.param(b"0x2", id="hex"),
    pytest.param(b"1_0", id="underscore"),
    pytest.param(b"2, 2", id="list"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("length", REFUSED_LENGTHS)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_content_length_the_runner_refuses_is_400(
    start_adapter: AdapterFactory, env: Mapping[str, str], length: bytes
) -> None:
    """Go's net/http reads Content-Length as digits up to 2^63-1; anything else is 400
    here too, the connection closes and nothing reaches the runner."""
    data = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + length + b"\r\n\r\nhi"
    await _assert_refused(start_adapter, env, data)


# --- 4. Header bytes: forwarded exactly as received, or refused. ---


@pytest.mark.parametrize(
    ("data", "forwarded_line"),
    [
        pytest.param(b"GET /h HTTP/1.1\r\nHost: a\r\nX-A: a\xff\xfeb\r\n\r\n", None, id="x-a"),
        pytest.param(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Type: application/js\xffon\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            None,
            id="content-type-of-a-submission",
        ),
        pytest.param(b"GET /h\xff HTTP/1.1\r\nHost: a\r\n\r\n", None, id="target"),
        pytest.param(
            b"GET /h HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9 \xe2\x82\xac\r\n"
            b"Connection: close\r\n\r\n",
            b"X-A: caf\xc3\xa9 \xe2\x82\xac",
            id="valid-utf8-kept",
        ),
        pytest.param(
            b"GET /h HTTP/1.1\r\nHost: a\r\nX-A: tab\there ~!\r\nConnection: close\r\n\r\n",
            b"X-A: tab\there ~!",
            id="ascii-kept",
        ),
    ],
)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_field_bytes_are_forwarded_as_read_or_refused(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    data: bytes,
    forwarded_line: bytes | None,
) -> None:
    """Bytes that are not UTF-8 in a field value or the target: 400, closed, nothing
    forwarded (the adapter's reading and the runner's would differ); valid UTF-8 reaches
    the runner byte for byte."""
    upstream = ScriptedUpstream(ok(b"fine"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        reply, rest = await _send_in_pieces(adapter.port, data, [])
    assert reply is not None
    if forwarded_line is None:
        assert (reply.status, rest) == (400, b"")
        assert upstream.seen == []
    else:
        assert reply.status == 200
        assert forwarded_line in upstream.seen[0].head.split(b"\r\n")


# --- Request framing the adapter refuses: 400, closed, nothing forwarded (both paths). ---

SMUGGLING = [
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        id="CL.TE",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"1\r\nx\r\n0\r\n\r\n",
        id="TE.CL",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        id="TE-unknown-coding",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        id="TE-space-before-colon",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        id="TE-twice",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        id="TE-chunked-not-last",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        id="CL-twice-differing",
    ),
    pytest.param(
        b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        id="CL-twice-equal",
    ),
    pytest.param(b"GET /s HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n", id="obs-fold"),
    pytest.param(b"GET /s HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", id="bare-CR"),
    pytest.param(b"GET /s HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", id="bare-CR-line-end"),
    pytest.param(b"GET /s HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", id="NUL-in-value"),
    pytest.param(b"GET /s\x00 HTTP/1.1\r\nHost: a\r\n\r\n", id="NUL-in-target"),
]


@pytest.mark.parametrize("data", SMUGGLING)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_ambiguous_framing_is_400_and_never_forwarded(
    start_adapter: AdapterFactory, env: Mapping[str, str], data: bytes
) -> None:
    """Every framing conflict is answered 400, the connection closes, and the runner
    sees nothing at all."""
    await _assert_refused(start_adapter, env, data)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            id="other-protocol",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: not-the-key\r\n\r\n",
            id="wrong-accept",
        ),
    ],
)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_101_to_another_protocol_than_asked_is_502(
    start_adapter: AdapterFactory, env: Mapping[str, str], answer: bytes
) -> None:
    """A WebSocket upgrade answered by a switch to something else: 502
    http_protocol_error, the client's connection is never switched."""
    upstream = ScriptedUpstream(Answer((answer,)))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        reply = await _answer_on_new_connection(
            adapter.port,
            request(
                "GET",
                "/ws",
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ),
        )
    assert reply.status == 502
    assert reply.header("Proxy-Status") == [PROTOCOL_ERROR]
    assert reply.header("Upgrade") == []

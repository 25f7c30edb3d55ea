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
# Requests the lean relay hands to aiohttp's client, and one it relays itself.
FIRST_REQUESTS = [
    pytest.param(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi",
        "/api/v1/jobs",
        id="jobs-submit",
    ),
    pytest.param(b"GET /first HTTP/1.0\r\nHost: a\r\n\r\n", "/first", id="http-1.0"),
    pytest.param(request("GET", "/first"), "/first", id="plain"),
]


async def _answer_on_new_connection(port: int, data: bytes) -> Reply:
    async with connect(port) as client:
        return await client.exchange(data, data.split(b" ", 1)[0].decode())


@pytest.mark.parametrize(("stray", "late"), STRAYS)
@pytest.mark.parametrize(("first", "first_target"), FIRST_REQUESTS)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_stray_bytes_never_answer_another_client(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    first: bytes,
    first_target: str,
    stray: bytes,
    late: float,
) -> None:
    """Client A's request is answered, then the runner sends bytes nobody asked for on
    that connection. Clients B and C, on connections of their own, each get their own
    answer (or a clean 502), never the stray one; their requests reach the runner."""
    upstream = StrayUpstream(stray=stray, late=late)
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        first_reply = await _answer_on_new_connection(adapter.port, first)
        await asyncio.sleep(late + 0.1)
        replies = [
            await _answer_on_new_connection(adapter.port, request("GET", f"/client-{name}"))
            for name in ("b", "c")
        ]
    assert (first_reply.status, first_reply.body) == (200, first_target.encode())
    for name, reply in zip(("b", "c"), replies, strict=True):
        assert reply.header("X-Stray") == []
        assert b"STRAY" not in reply.raw_body
        if reply.status == 502:
            assert reply.header("Proxy-Status")
        else:
            assert (reply.status, reply.body) == (200, f"/client-{name}".encode())
    assert [line.split(" ")[1] for line in upstream.seen][-2:] == ["/client-b", "/client-c"]


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
@pytest.mark.parametrize(("first", "first_target"), FIRST_REQUESTS)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_unrequested_101_is_502_and_connection_closed(
    start_adapter: AdapterFactory,
    env: Mapping[str, str],
    first: bytes,
    first_target: str,
    answer: bytes,
) -> None:
    """A 101 to a request that asked for no upgrade: 502 http_protocol_error; the runner
    connection is closed (the next request opens a new one) and nothing after the 101
    reaches any client."""
    upstream = ScriptedUpstream(Answer((answer,)), ok(b"next"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
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

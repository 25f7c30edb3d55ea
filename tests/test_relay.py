"""The lean relay (``adapter.http.relay``) through real sockets.

Hand-over of every request that is not plain, pipelining, the runner's framing byte for
byte, the header rules beside the aiohttp path (``ADAPTER_LEAN_RELAY=false``), flow
control both ways, timeouts, shutdown, and a pooled connection the runner closed.
Raw client connections where exact bytes matter; raw runners (``RawTcpUpstream``) where
the runner's exact bytes matter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from adapter.http.relay import RelayServer
from tests.conftest import (
    AdapterFactory,
    RawTcpUpstream,
    RecordingUpstream,
    RunningAdapter,
    logged,
    served_proxy_runner,
)

LEAN: Mapping[str, str] = {"ADAPTER_LEAN_RELAY": "true"}
AIOHTTP: Mapping[str, str] = {"ADAPTER_LEAN_RELAY": "false"}
BOTH_PATHS = [pytest.param(LEAN, id="lean"), pytest.param(AIOHTTP, id="aiohttp")]
BIG = 64 * 1024 * 1024
PIECE = 1024 * 1024
TIMEOUTS = {
    "ADAPTER_UPSTREAM_TIMEOUT": "0.5",
    "ADAPTER_CLIENT_IDLE_TIMEOUT": "0.5",
}


# --- A raw client: exact bytes out, one parsed answer at a time back. ---


@dataclass
class Reply:
    """One answer as the client read it: interim statuses skipped, body as on the wire."""

    status: int
    version: str
    headers: list[tuple[str, str]]
    raw_body: bytes
    body: bytes
    interim: list[int]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> dict[str, object]:
        parsed = orjson.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


def _parse_head(head: bytes) -> tuple[str, int, list[tuple[str, str]]]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    fields = [(k, v.strip(" \t")) for k, _, v in (line.partition(":") for line in lines[1:])]
    return version, int(status), fields


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """A chunked body: (bytes on the wire, payload). Fails on bad framing."""
    raw = bytearray()
    payload = bytearray()
    while True:  # bounded by the caller's timeout and the peer's bytes
        line = await reader.readuntil(b"\r\n")
        raw += line
        size = int(line[:-2].split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers until the blank line
                trailer = await reader.readuntil(b"\r\n")
                raw += trailer
                if trailer == b"\r\n":
                    return bytes(raw), bytes(payload)
        data = await reader.readexactly(size + 2)
        assert data.endswith(b"\r\n"), data[-10:]
        raw += data
        payload += data[:-2]


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """Read one answer, framed as the client must frame it (RFC 9112 §6.3)."""
    interim: list[int] = []
    while True:  # bounded: each turn consumes one interim head
        version, status, fields = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        break
    reply = Reply(status, version, fields, b"", b"", interim)
    codings = ",".join(reply.header("Transfer-Encoding")).lower()
    lengths = reply.header("Content-Length")
    if method == "HEAD" or status in (101, 204, 304):
        return reply
    if "chunked" in codings:
        reply.raw_body, reply.body = await _read_chunked(reader)
    elif lengths:
        reply.raw_body = reply.body = await reader.readexactly(int(lengths[0]))
    else:
        reply.raw_body = reply.body = await reader.read()
    return reply


class Client:
    """One raw TCP connection to the adapter."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes | memoryview) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, method: str = "GET", within: float = 5) -> Reply:
        async with asyncio.timeout(within):
            return await read_reply(self.reader, method)

    async def exchange(self, data: bytes, method: str = "GET") -> Reply:
        await self.send(data)
        return await self.reply(method)

    async def closed_by_server(self, within: float = 5) -> bytes:
        """Read until the server closes (EOF or reset); return what was left unread."""
        rest = bytearray()
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionError):
                while chunk := await self.reader.read(65536):  # bounded by the timeout
                    rest += chunk
        return bytes(rest)


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request(method: str, target: str, *fields: str, body: bytes = b"", host: str = "a") -> bytes:
    """A plain HTTP/1.1 request (keep-alive), with Content-Length when there is a body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *fields]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*lines, "", ""])).encode("latin-1") + body


def fields_of(head: bytes) -> list[tuple[str, str]]:
    """The field lines of a raw request head, in order."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(k, v.strip(" \t")) for k, _, v in (line.partition(":") for line in lines if line)]


# --- Raw runners: exact bytes back, every request and connection counted. ---


@dataclass(frozen=True)
class Answer:
    """What the raw runner writes for one request: after ``delay``, ``parts`` one write
    each (``pause`` after each), then maybe close."""

    parts: tuple[bytes, ...]
    close: bool = False
    pause: float = 0.0
    delay: float = 0.0


@dataclass
class Seen:
    """One request as the raw runner read it."""

    connection: int
    head: bytes
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class Runner(RawTcpUpstream):
    """A raw runner that closes every connection it still holds when it stops, so no
    handler is left for the loop to cancel with an open socket."""

    def __init__(self) -> None:
        self.connections = 0
        self._open: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            await self.serve(reader, writer)
        finally:
            self._open.discard(writer)
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        await super().__aexit__(*exc)


class ScriptedUpstream(Runner):
    """Answers the n-th request with the n-th scripted answer (the last one repeats)."""

    def __init__(self, *answers: Answer | bytes) -> None:
        super().__init__()
        self.answers = [a if isinstance(a, Answer) else Answer((a,)) for a in answers]
        self.seen: list[Seen] = []
        self.arrived = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = self.connections
        try:
            while True:  # bounded: one turn per request the adapter sends
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                answer = self.answers[min(len(self.seen), len(self.answers) - 1)]
                self.seen.append(Seen(connection, head, body))
                self.arrived.set()
                await asyncio.sleep(answer.delay)
                for part in answer.parts:
                    writer.write(part)
                    await writer.drain()
                    if answer.pause:
                        await asyncio.sleep(answer.pause)
                if answer.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def ok(body: bytes = b"ok", *fields: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", *fields, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


# --- 1. Hand-over: what is not plain goes to aiohttp, with every byte already read. ---

HANDED_OVER = [
    pytest.param(
        b"GET /echo HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", "GET", id="http-1.0"
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n",
        "POST",
        id="chunked-upload",
    ),
    pytest.param(
        b"GET http://adapter.test/echo?q=1 HTTP/1.1\r\nHost: adapter.test\r\n\r\n",
        "GET",
        id="absolute-form",
    ),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", "GET", id="obs-fold"
    ),
    pytest.param(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: handover-1\r\nContent-Length: 2\r\n\r\n{}",
        "POST",
        id="jobs-submit",
    ),
    pytest.param(b"PROPFIND /echo HTTP/1.1\r\nHost: a\r\n\r\n", "PROPFIND", id="extension-method"),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-Big-%d: %b\r\n" % (i, b"b" * 3000) for i in range(3))
        + b"\r\n",
        "GET",
        id="head-over-8KiB",
    ),
]


async def _handed_over_then_plain(
    adapter: RunningAdapter, upstream: RecordingUpstream, data: bytes, method: str
) -> tuple[tuple[int, bytes], tuple[int, bytes] | None, list[tuple[str, str, bytes]]]:
    """The non-plain request, then a plain one on the same connection (None when the
    server closed the connection instead); what the runner saw."""
    before = len(upstream.requests)
    async with connect(adapter.port) as client:
        first = await client.exchange(data, method)
        try:
            second = await client.exchange(request("GET", "/after"))
        except (asyncio.IncompleteReadError, ConnectionError):
            after = None
        else:
            after = (second.status, second.body)
    seen = [(r.method, r.raw_path, r.body) for r in upstream.requests[before:]]
    return (first.status, first.body), after, seen


@pytest.mark.parametrize(("data", "method"), HANDED_OVER)
async def test_handed_over_request_works_and_connection_stays_usable(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, data: bytes, method: str
) -> None:
    """Each non-plain request gets the answer the aiohttp path gives, and a plain request
    after it on the same connection is answered too, except after aiohttp's own 400
    (obs-fold), which closes the connection on both paths alike."""
    lean = await start_adapter(upstream.url, LEAN)
    reference = await start_adapter(upstream.url, AIOHTTP)
    lean_result = await _handed_over_then_plain(lean, upstream, data, method)
    reference_result = await _handed_over_then_plain(reference, upstream, data, method)
    assert lean_result == reference_result
    (status, _), after, seen = lean_result
    if status == 400:
        assert (after, seen) == (None, [])
    else:
        assert after is not None
        assert after[0] == 200
        assert [s[:2] for s in seen][-1] == ("GET", "/after")
        assert len(seen) == 2  # each request reached the runner once


async def test_expect_100_continue_then_plain(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """Expect goes to aiohttp: 100 Continue, the body, the answer; then a plain request."""
    adapter = await start_adapter(upstream.url, LEAN)
    async with connect(adapter.port) as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(5):
            interim = await client.reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100")
        final = await client.exchange(b"hello", "POST")
        after = await client.exchange(request("GET", "/after"))
    assert final.status == 200
    assert final.json()["body_length"] == 5
    assert after.status == 200
    assert [(r.raw_path, r.body) for r in upstream.requests] == [
        ("/echo", b"hello"),
        ("/after", b""),
    ]
    assert "Expect" not in upstream.requests[0].headers


@dataclass
class WsEcho:
    """A runner with one WebSocket route that echoes text, and JSON everywhere else."""

    upgrades: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != "/ws":
            return web.json_response({"path": request.raw_path})
        self.upgrades += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
        return ws


@pytest.fixture(name="ws_runner")
async def _ws_runner(aiohttp_server: AiohttpServer) -> tuple[WsEcho, URL]:
    echo = WsEcho()
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo.handle)
    server = await aiohttp_server(app)
    return echo, server.make_url("")


def _masked_text_frame(text: bytes) -> bytes:
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    return bytes([0x81, 0x80 | len(text)]) + mask + payload


async def test_websocket_upgrade_after_plain_request_on_one_connection(
    ws_runner: tuple[WsEcho, URL], start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A plain GET on the lean path, then an upgrade on the same connection: 101 with the
    right accept key and frames both ways; an aiohttp client's WebSocket works as well."""
    echo, url = ws_runner
    adapter = await start_adapter(url, LEAN)
    key = base64.b64encode(os.urandom(16)).decode()
    async with connect(adapter.port) as client:
        before = await client.exchange(request("GET", "/before"))
        assert before.json() == {"path": "/before"}
        switched = await client.exchange(
            request(
                "GET",
                "/ws",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            )
        )
        assert switched.status == 101
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()  # noqa: S324 - RFC 6455
        ).decode()
        assert switched.header("Sec-WebSocket-Accept") == [accept]
        await client.send(_masked_text_frame(b"hi"))
        async with asyncio.timeout(5):
            frame = await client.reader.readexactly(2 + len(b"echo:hi"))
        assert frame == bytes([0x81, len(b"echo:hi")]) + b"echo:hi"
    async with http.ws_connect(adapter.url / "ws") as ws:
        await ws.send_str("again")
        assert await ws.receive_str(timeout=5) == "echo:again"
    async with http.get(adapter.url / "after") as response:
        assert await response.json() == {"path": "/after"}
    assert echo.upgrades == 2


async def test_head_split_at_every_byte_is_relayed_once(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """A head arriving in two segments (every split point) or byte by byte is relayed once."""
    adapter = await start_adapter(upstream.url, LEAN)
    head = request("GET", "/split", "X-N: 1")
    for cut in range(1, len(head)):
        async with connect(adapter.port) as client:
            await client.send(head[:cut])
            await asyncio.sleep(0.005)
            reply = await client.exchange(head[cut:])
            assert reply.status == 200
    async with connect(adapter.port) as client:
        for byte in head[:-1]:
            await client.send(bytes([byte]))
            await asyncio.sleep(0.001)
        assert (await client.exchange(head[-1:])).status == 200
    assert [r.raw_path for r in upstream.requests] == ["/split"] * len(head)
    assert all(r.headers.getall("X-N") == ["1"] for r in upstream.requests)


# --- 2. Pipelining ---


async def test_pipelined_plain_requests_answered_in_order(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """Three requests in one send (one with a body) get three answers, in order."""
    adapter = await start_adapter(upstream.url, LEAN)
    batch = (
        request("GET", "/p/1")
        + request("POST", "/p/2", body=b"x" * 3000)
        + request("DELETE", "/p/3")
    )
    async with connect(adapter.port) as client:
        await client.send(batch)
        replies = [await client.reply() for _ in range(3)]
    assert [r.json() for r in replies] == [
        {"method": "GET", "path": "/p/1", "body_length": 0},
        {"method": "POST", "path": "/p/2", "body_length": 3000},
        {"method": "DELETE", "path": "/p/3", "body_length": 0},
    ]
    assert [(r.raw_path, r.body) for r in upstream.requests] == [
        ("/p/1", b""),
        ("/p/2", b"x" * 3000),
        ("/p/3", b""),
    ]


async def test_pipelined_plain_then_handed_over(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """A plain request and a chunked upload in one send: both answered in order, and the
    connection (now aiohttp's) serves a third request."""
    adapter = await start_adapter(upstream.url, LEAN)
    chunked = (
        b"POST /p/2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    async with connect(adapter.port) as client:
        await client.send(request("GET", "/p/1") + chunked)
        first = await client.reply()
        second = await client.reply("POST")
        third = await client.exchange(request("GET", "/p/3"))
    assert [r.json()["path"] for r in (first, second, third)] == ["/p/1", "/p/2", "/p/3"]
    assert [r.body for r in upstream.requests] == [b"", b"abc", b""]


# --- 3. The runner's framing, byte for byte ---

CHUNKED_WITH_TRAILERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
    b"Trailer: X-Sum\r\n\r\n"
    b"5;name=value\r\nhello\r\n6;x\r\n world\r\n0;last=1\r\nX-Sum: abc\r\n\r\n"
)


@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_content_length_body_and_runner_connection_reused(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """A sized answer keeps its Content-Length; both requests ride one runner connection."""
    upstream = ScriptedUpstream(ok(b"hello", "Content-Type: text/plain"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            replies = [await client.exchange(request("GET", f"/{i}")) for i in range(2)]
    assert [(r.status, r.raw_body, r.header("Content-Length")) for r in replies] == [
        (200, b"hello", ["5"])
    ] * 2
    assert all(r.header("Transfer-Encoding") == [] for r in replies)
    assert upstream.connections == 1


async def test_chunked_with_extensions_and_trailers(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """Chunk extensions and trailers pass through the relay verbatim; a chunked reader and
    aiohttp's client both get the payload, and the runner connection is reused."""
    upstream = ScriptedUpstream(CHUNKED_WITH_TRAILERS)
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/c"))
            again = await client.exchange(request("GET", "/c"))
        async with http.get(adapter.url / "c") as response:
            payload = await response.read()
    assert reply.header("Transfer-Encoding") == ["chunked"]
    assert reply.header("Content-Length") == []
    assert reply.body == again.body == payload == b"hello world"
    assert reply.raw_body == CHUNKED_WITH_TRAILERS.split(b"\r\n\r\n", 1)[1]
    assert upstream.connections == 1


@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_close_delimited_body_is_rechunked(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """A body ended by the runner closing goes out chunked; the client connection stays
    usable and the next request opens a new runner connection."""
    answer = Answer((b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"abc", b"def"), True)
    upstream = ScriptedUpstream(answer, ok(b"next"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            first = await client.exchange(request("GET", "/close"))
            second = await client.exchange(request("GET", "/next"))
    assert first.header("Transfer-Encoding") == ["chunked"]
    assert first.body == b"abcdef"
    assert first.raw_body.endswith(b"0\r\n\r\n")
    assert (second.status, second.body) == (200, b"next")
    assert upstream.connections == 2


@pytest.mark.parametrize("apart", [False, True], ids=["one-write", "apart"])
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_interim_answers_are_not_relayed(
    start_adapter: AdapterFactory, env: Mapping[str, str], apart: bool
) -> None:
    """100 Continue and 103 Early Hints before the final answer never reach the client."""
    parts = (
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        ok(b"final"),
    )
    answer = Answer(parts, pause=0.02) if apart else Answer((b"".join(parts),))
    async with ScriptedUpstream(answer) as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("POST", "/i", body=b"x"))
            again = await client.exchange(request("GET", "/i"))
    assert (reply.interim, reply.status, reply.body) == ([], 200, b"final")
    assert (again.interim, again.status, again.body) == ([], 200, b"final")


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        pytest.param("GET", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", id="204"),
        pytest.param(
            "GET",
            b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 50\r\n\r\n',
            id="304",
        ),
        pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", id="head"),
        pytest.param(
            "HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", id="head-chunked"
        ),
    ],
)
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_bodyless_answers(
    start_adapter: AdapterFactory, env: Mapping[str, str], method: str, answer: bytes
) -> None:
    """204, 304 and HEAD answers end at their head whatever the fields say; the client and
    runner connections both stay in step for the next request."""
    upstream = ScriptedUpstream(answer, ok(b"next"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            await client.send(request(method, "/n"))
            async with asyncio.timeout(5):
                head = await client.reader.readuntil(b"\r\n\r\n")
            nxt = await client.exchange(request("GET", "/next"))
    assert head.split(b" ", 2)[1] == answer.split(b" ", 2)[1]
    assert (nxt.status, nxt.body) == (200, b"next")  # no stray body bytes before it
    assert upstream.connections == 1


async def test_runner_sends_both_transfer_encoding_and_length(
    start_adapter: AdapterFactory,
) -> None:
    """Chunked wins over Content-Length (RFC 9112 §6.3): the client gets the chunked
    payload without the length, and the runner connection is not reused. (The aiohttp
    path answers 502 http_protocol_error instead: its client parser refuses both.)"""
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    upstream = ScriptedUpstream(answer, ok(b"next"))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/both"))
            nxt = await client.exchange(request("GET", "/next"))
    assert reply.header("Content-Length") == []
    assert reply.header("Transfer-Encoding") == ["chunked"]
    assert reply.body == b"hello"
    assert (nxt.status, nxt.body) == (200, b"next")
    assert upstream.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"garbage\r\n\r\n", id="garbage-status-line"),
        pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="bad-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Field: x\r\n\r\n", id="bad-field-name"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", id="two-lengths"
        ),
    ],
)
async def test_malformed_answer_is_502_protocol_error(
    start_adapter: AdapterFactory, answer: bytes
) -> None:
    """A head the relay cannot frame is a 502 with Proxy-Status http_protocol_error."""
    async with ScriptedUpstream(answer) as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/bad"))
    assert reply.status == 502
    assert reply.header("Proxy-Status") == ["beacon-adapter; error=http_protocol_error"]
    assert reply.json()["error_code"] == "upstream_unavailable"


async def test_unsupported_transfer_coding_is_502(start_adapter: AdapterFactory) -> None:
    """Transfer-Encoding: gzip cannot be framed: 502, and the bytes are never relayed.
    (The aiohttp path relays them as a close-delimited body with status 200.)"""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00"
    async with ScriptedUpstream(answer) as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/gz"))
    assert reply.status == 502
    assert reply.header("Proxy-Status") == ["beacon-adapter; error=http_protocol_error"]
    assert b"\x1f\x8b" not in reply.raw_body


@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_runner_connection_close_means_new_connection(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """A runner answer with Connection: close is relayed without it (hop-by-hop); the
    client connection stays open and the next request opens a new runner connection."""
    upstream = ScriptedUpstream(Answer((ok(b"bye", "Connection: close"),), close=True))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            replies = [await client.exchange(request("GET", f"/{i}")) for i in range(3)]
    assert [(r.status, r.body, r.header("Connection")) for r in replies] == [(200, b"bye", [])] * 3
    assert upstream.connections == 3
    assert [s.connection for s in upstream.seen] == [1, 2, 3]


# --- 4. Header rules, beside the aiohttp path ---

CLIENT_FIELDS = (
    "User-Agent: test/1",
    "Accept: text/a",
    "X-Secret: hop-only",
    "Keep-Alive: timeout=5",
    "TE: trailers",
    "Proxy-Authorization: Basic cHJveHk6cHc=",
    "Proxy-Connection: keep-alive",
    "X-Forwarded-For: 6.6.6.6",
    "X-Real-IP: 6.6.6.6",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: evil.example",
    "Accept: text/b",
    "Connection: keep-alive, X-Secret, Content-Type, X-Request-ID",
    "Content-Type: text/plain",
    "X-Request-ID: client-id-7",
)
RUNNER_ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"Set-Cookie: a=1; Path=/\r\n"
    b"Connection: X-Internal, Content-Type\r\n"
    b"X-Internal: must-not-leak\r\n"
    b"Content-Type: text/plain\r\n"
    b"Set-Cookie: b=2; Path=/\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"Proxy-Authenticate: Basic\r\n"
    b"Upgrade: h2c\r\n"
    b"X-Request-ID: runner-own-id\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Server: runner\r\n"
    b"Set-Cookie: c=3; Path=/\r\n"
    b"Content-Length: 2\r\n\r\nok"
)


async def _headers_through(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> tuple[list[tuple[str, str]], Reply]:
    upstream = ScriptedUpstream(RUNNER_ANSWER)
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            reply = await client.exchange(
                request("POST", "/h", *CLIENT_FIELDS, body=b"hello", host="portal.example")
            )
    [seen] = upstream.seen
    assert seen.body == b"hello"
    fields = [(k, "<runner>" if v == f"127.0.0.1:{port}" else v) for k, v in fields_of(seen.head)]
    return fields, reply


async def test_header_rules_on_the_lean_path(start_adapter: AdapterFactory) -> None:
    """Hop-by-hop and Connection-nominated fields are dropped both ways (protected ones
    kept), forwarding fields are ours, repeats keep their order, the client's id is echoed."""
    upstream_fields, reply = await _headers_through(start_adapter, LEAN)
    assert upstream_fields == [
        ("User-Agent", "test/1"),
        ("Accept", "text/a"),
        ("Accept", "text/b"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "5"),
        ("Host", "<runner>"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "portal.example"),
        ("X-Request-ID", "client-id-7"),
    ]
    names = [name.lower() for name, _ in reply.headers]
    for dropped in ("connection", "x-internal", "keep-alive", "proxy-authenticate", "upgrade"):
        assert dropped not in names
    assert reply.header("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"]
    assert reply.header("Content-Type") == ["text/plain"]
    assert reply.header("X-Request-ID") == ["client-id-7"]
    assert reply.body == b"ok"


def _apart(fields: list[tuple[str, str]], name: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The fields without ``name``, and the values of ``name``."""
    return [f for f in fields if f[0] != name], [v for k, v in fields if k == name]


async def test_header_rules_match_the_aiohttp_path(start_adapter: AdapterFactory) -> None:
    """Both paths send the runner the same fields in the same order, and the client the
    same answer fields, with two differences of position only: aiohttp's client writes
    Host first (the relay writes it where ``upstream_fields`` puts it, after the client's
    fields), and aiohttp's server sets X-Request-ID in the slot of the runner's copy (the
    relay appends it after the runner's fields)."""
    lean_fields, lean_reply = await _headers_through(start_adapter, LEAN)
    aiohttp_fields, aiohttp_reply = await _headers_through(start_adapter, AIOHTTP)
    assert _apart(lean_fields, "Host") == _apart(aiohttp_fields, "Host")
    assert aiohttp_fields[0] == ("Host", "<runner>")
    assert _apart(lean_reply.headers, "X-Request-ID") == _apart(
        aiohttp_reply.headers, "X-Request-ID"
    )
    assert lean_reply.headers[-1] == ("X-Request-ID", "client-id-7")


async def test_lean_answer_adds_no_fields_of_its_own(start_adapter: AdapterFactory) -> None:
    """The relay passes the runner's fields and adds only X-Request-ID (and its framing);
    the aiohttp path also adds Date, Server and, when the runner sent none, Content-Type:
    application/octet-stream."""
    async with ScriptedUpstream(ok(b"x", "X-A: 1")) as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/bare", "X-Request-ID: bare-1"))
    assert reply.headers == [("X-A", "1"), ("Content-Length", "1"), ("X-Request-ID", "bare-1")]


async def test_both_paths_write_the_same_request_line(
    start_adapter: AdapterFactory, upstream: RecordingUpstream, log_lines: io.BytesIO
) -> None:
    """One request on each path: the canonical log lines have the same keys, and the same
    values but for the timings and the component that wrote them."""
    for env in (LEAN, AIOHTTP):
        adapter = await start_adapter(upstream.url, env)
        async with connect(adapter.port) as client:
            sent = request("POST", "/echo?token=secret", "X-Request-ID: line-1", body=b"12345")
            reply = await client.exchange(sent)
        assert reply.status == 200
    lean, aiohttp_line = logged(log_lines, "request")
    assert set(lean) == set(aiohttp_line)
    varying = {"timestamp", "duration_ms", "upstream_ms", "component"}
    assert {k: v for k, v in lean.items() if k not in varying} == {
        k: v for k, v in aiohttp_line.items() if k not in varying
    }
    assert (lean["component"], aiohttp_line["component"]) == ("adapter.relay", "adapter.app")
    assert (lean["request_id"], lean["path"], lean["bytes_in"]) == ("line-1", "/echo", 5)


# --- 5. Flow control ---


class SlowReadingRunner(Runner):
    """Reads a request head, waits before reading its body, then answers with its SHA-256."""

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = wait
        self.reading = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(self.wait)
        self.reading.set()
        digest = hashlib.sha256()
        remaining = _content_length(head)
        while remaining:  # bounded by the declared length
            chunk = await reader.read(min(remaining, PIECE))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        writer.write(ok(digest.hexdigest().encode()))
        await writer.drain()


class BigDownloadRunner(Runner):
    """Sends a BIG-byte answer as fast as the adapter takes it; counts what it wrote."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        self.sent = 0
        self.outcome = "running"
        self.ended = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.data))
            view = memoryview(self.data)
            for start in range(0, len(self.data), PIECE):
                writer.write(view[start : start + PIECE])
                await writer.drain()
                self.sent = start + PIECE
            self.outcome = "complete"
        except ConnectionError as exc:
            self.outcome = type(exc).__name__
        finally:
            self.ended.set()


async def test_big_download_to_a_slow_client(
    start_adapter: AdapterFactory, log_lines: io.BytesIO
) -> None:
    """64 MiB to a client that waits before reading: the runner is held back (it cannot
    write everything before the client reads), and every byte arrives intact."""
    data = os.urandom(BIG)
    runner = BigDownloadRunner(data)
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client, asyncio.timeout(30):
            await client.send(request("GET", "/big"))
            await asyncio.sleep(0.5)
            sent_before_reading = runner.sent
            reply = await client.reply(within=30)
    assert sent_before_reading < BIG // 2
    assert runner.outcome == "complete"
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(data).digest()
    [line] = logged(log_lines, "request")
    assert (line["bytes_in"], line["bytes_out"], line["status"]) == (0, BIG, 200)


async def test_big_upload_to_a_slow_runner(
    start_adapter: AdapterFactory, log_lines: io.BytesIO
) -> None:
    """64 MiB with Content-Length to a runner that waits before reading: the client is
    held back (it cannot send everything first), and the runner's digest matches."""
    data = os.urandom(BIG)
    runner = SlowReadingRunner(0.5)
    written_before_runner_read = 0
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", LEAN)
        async with connect(adapter.port) as client, asyncio.timeout(30):
            await client.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % BIG)
            view = memoryview(data)
            for start in range(0, BIG, PIECE):
                await client.send(view[start : start + PIECE])
                if not runner.reading.is_set():
                    written_before_runner_read = start + PIECE
            reply = await client.reply(within=30)
    assert written_before_runner_read < BIG // 2
    assert reply.body == hashlib.sha256(data).hexdigest().encode()
    [line] = logged(log_lines, "request")
    assert (line["bytes_in"], line["status"]) == (BIG, 200)


# --- 6. Timeouts ---


class BodyWatcher(Runner):
    """Reads a head and waits for its whole body; records how the wait ended."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome = "running"
        self.ended = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        try:
            await reader.readexactly(_content_length(head))
            self.outcome = "complete"
            writer.write(ok())
        except asyncio.IncompleteReadError:
            self.outcome = "cut"
        except ConnectionError:
            self.outcome = "reset"
        finally:
            self.ended.set()


async def test_stalled_upload_is_closed_and_runner_sees_abort(
    start_adapter: AdapterFactory,
) -> None:
    """Content-Length 100, 10 bytes, then silence: the client gets 408 and is closed after
    the idle timeout, and the runner's connection is cut, never completed."""
    runner = BodyWatcher()
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", {**LEAN, **TIMEOUTS})
        loop = asyncio.get_running_loop()
        async with connect(adapter.port) as client:
            await client.send(
                b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
            )
            stalled = loop.time()
            rest = await client.closed_by_server(within=5)
            elapsed = loop.time() - stalled
        async with asyncio.timeout(5):
            await runner.ended.wait()
    assert 0.4 <= elapsed < 3
    assert runner.outcome in ("cut", "reset")
    # The same answer as the aiohttp path gives a stalled body (the client may see a
    # reset first: its unsent body is still pending).
    if rest:
        assert rest.startswith(b"HTTP/1.1 408 "), rest[:80]
    labels = {"method": "POST", "route": "other", "code": "408"}
    assert adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0


async def test_client_that_stops_reading_is_aborted(start_adapter: AdapterFactory) -> None:
    """A client that reads the head of a big download and then nothing more is aborted
    after the idle timeout, and so is the runner's connection."""
    runner = BigDownloadRunner(bytes(BIG))
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", {**LEAN, **TIMEOUTS})
        async with connect(adapter.port) as client:
            await client.send(request("GET", "/big"))
            async with asyncio.timeout(5):
                await client.reader.readuntil(b"\r\n\r\n")
                await runner.ended.wait()
            rest = await client.closed_by_server(within=5)
    assert runner.outcome in ("ConnectionResetError", "BrokenPipeError")
    assert runner.sent < BIG
    assert len(rest) < BIG


async def test_silent_runner_is_504(start_adapter: AdapterFactory) -> None:
    """A runner that reads the request and says nothing: 504 http_response_timeout."""
    runner = ScriptedUpstream(Answer(()))
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", {**LEAN, **TIMEOUTS})
        async with connect(adapter.port) as client:
            reply = await client.exchange(request("GET", "/silent"))
    assert reply.status == 504
    assert reply.header("Proxy-Status") == ["beacon-adapter; error=http_response_timeout"]
    assert reply.json()["error_code"] == "upstream_timeout"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, id="length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n", id="chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 10, id="close-delimited"),
    ],
)
async def test_runner_stalling_mid_body_aborts_client(
    start_adapter: AdapterFactory, head: bytes
) -> None:
    """A runner silent mid-body: the client connection is aborted, never ended cleanly
    (no complete length, no last chunk)."""
    async with ScriptedUpstream(Answer((head,))) as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", {**LEAN, **TIMEOUTS})
        async with connect(adapter.port) as client:
            await client.send(request("GET", "/stall"))
            async with asyncio.timeout(5):
                await client.reader.readuntil(b"\r\n\r\n")
            rest = await client.closed_by_server(within=5)
    assert len(rest) < 100
    assert not rest.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(LEAN, id="lean"),
        pytest.param(AIOHTTP, id="aiohttp"),
    ],
)
async def test_upload_to_a_runner_slower_than_the_client_timeout(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """A client sending as fast as it may, to a runner that reads its body only after
    three client idle timeouts (but within the upstream timeout): the client is not to
    blame, the upload completes."""
    data = os.urandom(BIG // 2)
    runner = SlowReadingRunner(1.5)
    async with runner as port:
        settings = {**env, **TIMEOUTS, "ADAPTER_UPSTREAM_TIMEOUT": "5"}
        adapter = await start_adapter(f"http://127.0.0.1:{port}", settings)
        async with connect(adapter.port) as client, asyncio.timeout(10):
            await client.send(
                b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(data)
            )
            await client.send(data)
            reply = await client.reply(within=10)
    assert reply.body == hashlib.sha256(data).hexdigest().encode()


async def test_runner_that_stops_taking_an_upload_gets_the_upstream_timeout(
    start_adapter: AdapterFactory,
) -> None:
    """Lean path only (aiohttp's client has no write timeout): a runner that takes no
    upload bytes for ADAPTER_UPSTREAM_TIMEOUT is given up on with a 504, and the client
    connection is closed because its body was not read to the end. (Closing with the
    body unread resets the connection, so the client may see the reset before the 504:
    the adapter's own count is the proof.)"""
    data = os.urandom(BIG // 2)
    runner = SlowReadingRunner(30)
    async with runner as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", {**LEAN, **TIMEOUTS})
        async with connect(adapter.port) as client, asyncio.timeout(10):
            await client.send(
                b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(data)
            )
            with contextlib.suppress(ConnectionError):
                await client.send(data)
                await client.reader.read()  # bounded by the timeout above: until closed
    labels = {"method": "PUT", "route": "other", "code": "504"}
    assert adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0
    timeouts = {"kind": "timeout"}
    assert adapter.registry.get_sample_value("adapter_upstream_errors_total", timeouts) == 1.0
    assert not runner.reading.is_set()


# --- 7. Shutdown ---


async def test_shutdown_finishes_lean_request_and_closes_idle() -> None:
    """cleanup() during a lean request: its answer arrives whole with Connection: close;
    an idle lean connection is closed before that answer is even ready."""
    slow = ScriptedUpstream(ok(b"first"), Answer((ok(b"slow done"),), delay=0.3))
    async with (
        slow as upstream_port,
        served_proxy_runner(f"http://127.0.0.1:{upstream_port}") as (
            runner,
            port,
        ),
    ):
        assert isinstance(runner.server, RelayServer)
        async with connect(port) as busy, connect(port) as idle:
            assert (await idle.exchange(request("GET", "/first"))).body == b"first"
            slow.arrived.clear()
            await busy.send(request("GET", "/slow"))
            async with asyncio.timeout(5):
                await slow.arrived.wait()
            cleanup = asyncio.create_task(runner.cleanup())
            answer = asyncio.create_task(busy.reply())
            leftover = await idle.closed_by_server()
            assert not answer.done()  # the idle one closed first, not after the drain
            reply = await answer
            async with asyncio.timeout(10):
                await cleanup
    assert leftover == b""
    assert (reply.status, reply.body) == (200, b"slow done")
    assert reply.header("Connection") == ["close"]


# --- 8. A pooled connection the runner closed right after answering ---


@pytest.mark.parametrize("gap", [0.0, 0.05], ids=["at-once", "after-close-seen"])
@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_runner_closes_keep_alive_connection_after_answering(
    start_adapter: AdapterFactory, env: Mapping[str, str], gap: float
) -> None:
    """The runner says keep-alive but closes after each answer: the next GET still works."""
    upstream = ScriptedUpstream(Answer((ok(b"fine", "Connection: keep-alive"),), close=True))
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        async with connect(adapter.port) as client:
            first = await client.exchange(request("GET", "/one"))
            await asyncio.sleep(gap)
            second = await client.exchange(request("GET", "/two"))
    assert [(r.status, r.body) for r in (first, second)] == [(200, b"fine")] * 2
    assert [s.line for s in upstream.seen][-1] == "GET /two HTTP/1.1"
    assert upstream.connections == len(upstream.seen)


@pytest.mark.parametrize("env", BOTH_PATHS)
async def test_adapter_answers_are_valid_json_for_any_accepted_request_id(
    start_adapter: AdapterFactory, env: Mapping[str, str]
) -> None:
    """The adapter's own 502 is the same JSON on both paths, escaped properly even for a
    client request id with quotes and backslashes in it."""
    with socket_bound_and_closed() as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}", env)
        request_id = 'a"b\\c'
        async with connect(adapter.port) as client:
            reply = await client.exchange(
                b"GET /x HTTP/1.1\r\nHost: a\r\nX-Request-ID: " + request_id.encode() + b"\r\n\r\n"
            )
    assert reply.status == 502
    assert reply.header("Proxy-Status") == ["beacon-adapter; error=connection_refused"]
    assert reply.header("X-Request-ID") == [request_id]
    assert orjson.loads(reply.body) == {
        "error": "The runner could not be reached.",
        "error_code": "upstream_unavailable",
        "request_id": request_id,
    }


@contextlib.contextmanager
def socket_bound_and_closed() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port

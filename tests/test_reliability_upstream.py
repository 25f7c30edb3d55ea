"""Upstream faults: refused, reset, stalled, garbled, dripping and restarting runners.

The adapter runs in-process with a 0.5 s upstream timeout in front of a raw asyncio
server that misbehaves on purpose, chosen by the request path. Each fault is repeated
and the test then checks that the adapter answered as specified (502/504 with
Proxy-Status, or an aborted client connection once the headers were out), still serves
a healthy request, and left nothing behind: no extra file descriptors
(/proc/self/fd), no extra asyncio tasks, no connection held in the upstream connector,
and no connection left open at the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from yarl import URL

from adapter.http.proxy import UPSTREAM
from adapter.http.relay import UPSTREAM_POOL
from tests.conftest import AdapterFactory, RunningAdapter, connector_counts, free_port

TIMEOUT = 0.5
ENV = {"ADAPTER_UPSTREAM_TIMEOUT": str(TIMEOUT), "ADAPTER_UPSTREAM_CONNECT_TIMEOUT": "1"}
REPEATS = 15
# Slack for descriptors the loop or a pooled keep-alive connection may hold at either count.
FD_SLACK = 3

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _tasks() -> int:
    return len(asyncio.all_tasks())


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class FaultyUpstream:
    """A raw HTTP/1.1 server whose behaviour is chosen by the request path."""

    port: int = 0
    open_connections: int = 0
    requests: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.port}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            async with asyncio.timeout(20):  # bounded: no handler outlives a test
                while await self._one_request(reader, writer):
                    pass
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        if length:
            await reader.readexactly(length)
        self.requests.append(path)
        if path == "/ok":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            return True
        if path == "/reset-before-headers":
            _rst(writer)
        elif path == "/close-before-headers":
            writer.close()
        elif path == "/garbage":
            writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
            await writer.drain()
            writer.close()
        elif path == "/stall":
            await reader.read()  # until the adapter gives up and closes
        elif path in ("/reset-mid-body", "/stall-mid-body"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            await writer.drain()
            if path == "/reset-mid-body":
                await asyncio.sleep(0.05)
                _rst(writer)
            else:
                await reader.read()
        elif path == "/drip":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for index in range(10):  # 10 gaps of TIMEOUT / 2: 2.5 s in all
                await asyncio.sleep(TIMEOUT / 2)
                writer.write(b"5\r\ndrip%d\r\n" % index)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        return False


@pytest.fixture(name="faulty")
async def _faulty() -> AsyncIterator[FaultyUpstream]:
    upstream = FaultyUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture(name="client")
async def _client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a fresh connection per request, so it holds none between them."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None
    proxy_status: str | None
    error_code: str | None
    aborted: bool
    body: bytes


async def _fetch(client: aiohttp.ClientSession, url: URL, method: str = "GET") -> Answer:
    data = b'{"job": 1}' if method == "POST" else None
    async with asyncio.timeout(10):
        async with client.request(method, url, data=data) as response:
            try:
                body = await response.read()
                aborted = False
            except aiohttp.ClientPayloadError:
                body, aborted = b"", True
            code = None
            if response.headers.get("Proxy-Status"):
                code = orjson.loads(body)["error_code"]
            return Answer(
                response.status, response.headers.get("Proxy-Status"), code, aborted, body
            )


async def _settled(adapter: RunningAdapter, fds: int, tasks: int) -> tuple[int, int]:
    """Wait (bounded) for descriptors and tasks to drop back; return the final counts."""
    for _ in range(100):  # bounded: 2 s
        if _fds() <= fds + FD_SLACK and _tasks() <= tasks:
            break
        await asyncio.sleep(0.02)
    return _fds(), _tasks()


def _upstream_connections(adapter: RunningAdapter) -> tuple[int, int]:
    """(connections in use, idle pooled connections) to the runner, over both paths: the
    lean relay's pool and aiohttp's connector."""
    pool = adapter.app[UPSTREAM_POOL]
    connector = adapter.app[UPSTREAM].session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    acquired, pooled = connector_counts(connector)
    in_use = acquired + pool.open_connections - pool.idle_connections
    return in_use, pooled + pool.idle_connections


FAULTS = [
    pytest.param("GET", "/reset-before-headers", 502, "connection_terminated", False, id="reset"),
    pytest.param(
        "POST", "/reset-before-headers", 502, "connection_terminated", False, id="reset-post"
    ),
    pytest.param("GET", "/close-before-headers", 502, "connection_terminated", False, id="close"),
    pytest.param("GET", "/garbage", 502, "http_protocol_error", False, id="garbage"),
    pytest.param("GET", "/stall", 504, "http_response_timeout", False, id="stall"),
    pytest.param("POST", "/stall", 504, "http_response_timeout", False, id="stall-post"),
    pytest.param("GET", "/reset-mid-body", 200, None, True, id="reset-mid-body"),
    pytest.param("GET", "/stall-mid-body", 200, None, True, id="stall-mid-body"),
]


@pytest.mark.parametrize(("method", "path", "status", "proxy_error", "aborted"), FAULTS)
async def test_fault_is_mapped_and_leaves_nothing_behind(
    faulty: FaultyUpstream,
    start_adapter: AdapterFactory,
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    status: int,
    proxy_error: str | None,
    aborted: bool,
) -> None:
    """Each fault gets its specified answer, is sent once, and leaks no fd, task or connection."""
    adapter = await start_adapter(faulty.url, ENV)
    for _ in range(2):  # warm-up: lazily created objects exist before the baseline
        await _fetch(client, adapter.url / path[1:], method)
        await _fetch(client, adapter.url / "ok")
    fds, tasks = await _settled(adapter, _fds(), _tasks())
    sent_before = len(faulty.requests)

    for _ in range(REPEATS if "stall" not in path else 4):
        answer = await _fetch(client, adapter.url / path[1:], method)
        assert (answer.status, answer.aborted) == (status, aborted), answer
        if proxy_error is None:
            assert answer.proxy_status is None
        else:
            assert answer.proxy_status == f"beacon-adapter; error={proxy_error}"
            expected = "upstream_timeout" if status == 504 else "upstream_unavailable"
            assert answer.error_code == expected
    repeats = len(faulty.requests) - sent_before
    assert faulty.requests[sent_before:] == [path] * repeats  # each sent once, never retried

    healthy = await _fetch(client, adapter.url / "ok")
    assert (healthy.status, healthy.body) == (200, b"ok")
    after_fds, after_tasks = await _settled(adapter, fds, tasks)
    assert after_fds <= fds + FD_SLACK, (fds, after_fds)
    assert after_tasks <= tasks, (tasks, after_tasks)
    in_use, idle = _upstream_connections(adapter)
    assert in_use == 0
    assert idle <= 1  # the healthy request's keep-alive connection
    assert faulty.open_connections <= idle


async def test_refused_upstream_answers_502_and_leaks_nothing(
    start_adapter: AdapterFactory, client: aiohttp.ClientSession
) -> None:
    """Nothing listening: 502 connection_refused every time, no descriptors or tasks left."""
    adapter = await start_adapter(URL(f"http://127.0.0.1:{free_port()}"), ENV)
    await _fetch(client, adapter.url / "warm-up")
    fds, tasks = await _settled(adapter, _fds(), _tasks())
    for method in ["GET", "POST"] * 10:
        answer = await _fetch(client, adapter.url / "api/v1/jobs", method)
        assert answer.status == 502
        assert answer.proxy_status == "beacon-adapter; error=connection_refused"
        assert answer.error_code == "upstream_unavailable"
    after_fds, after_tasks = await _settled(adapter, fds, tasks)
    assert after_fds <= fds + FD_SLACK
    assert after_tasks <= tasks
    assert _upstream_connections(adapter) == (0, 0)


async def test_slow_drip_that_keeps_moving_is_never_cut(
    faulty: FaultyUpstream, start_adapter: AdapterFactory, client: aiohttp.ClientSession
) -> None:
    """A body arriving every TIMEOUT/2 for 5 x TIMEOUT streams through whole: no 504, no abort."""
    adapter = await start_adapter(faulty.url, ENV)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(_fetch(client, adapter.url / "drip") for _ in range(3)))
    elapsed = loop.time() - started
    expected = b"".join(b"drip%d" % i for i in range(10))
    assert [(a.status, a.aborted, a.body) for a in answers] == [(200, False, expected)] * 3
    assert elapsed > 4 * TIMEOUT  # it really outlasted the timeout several times over
    assert _upstream_connections(adapter)[0] == 0


async def _serve_upstream(port: int) -> web.AppRunner:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_upstream_restart_under_load_recovers_without_adapter_restart(
    start_adapter: AdapterFactory,
) -> None:
    """8 clients in a loop while the runner stops and restarts: only 200/502, then all 200."""
    port = free_port()
    upstream = await _serve_upstream(port)
    adapter = await start_adapter(URL(f"http://127.0.0.1:{port}"), ENV)
    phase = "up"
    seen: dict[str, list[int]] = {"up": [], "down": [], "restarted": []}
    stop = asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in range(10_000):  # bounded; the phases end it long before
            if stop.is_set():
                return
            started_in = phase
            answer = await _fetch(session, adapter.url / "ok")
            # A request in flight across a phase change proves nothing about either phase.
            if phase == started_in:
                seen[started_in].append(answer.status or 0)
            await asyncio.sleep(0.005)

    async with aiohttp.ClientSession() as session:
        await _fetch(session, adapter.url / "ok")
        fds, tasks = _fds(), _tasks()
        workers = [asyncio.create_task(worker(session)) for _ in range(8)]
        await asyncio.sleep(1.0)
        phase = "stopping"
        seen["stopping"] = []
        await upstream.cleanup()
        phase = "down"
        await asyncio.sleep(1.0)
        phase = "restarting"
        seen["restarting"] = []
        upstream = await _serve_upstream(port)
        await asyncio.sleep(0.3)
        phase = "restarted"
        await asyncio.sleep(1.0)
        stop.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*workers)
    await upstream.cleanup()

    assert seen["up"]
    assert set(seen["up"]) == {200}
    assert seen["down"]
    assert set(seen["down"]) == {502}
    assert seen["restarted"]
    assert set(seen["restarted"]) == {200}
    every = {status for statuses in seen.values() for status in statuses}
    assert every <= {200, 502}, seen
    after_fds, after_tasks = await _settled(adapter, fds, tasks)
    assert after_fds <= fds + FD_SLACK + 8  # the workers' own pooled client connections
    assert after_tasks <= tasks
    assert _upstream_connections(adapter)[0] == 0

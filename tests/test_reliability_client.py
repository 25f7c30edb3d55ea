"""Client faults: disconnects mid-upload and mid-download, slowloris, 1,000 idle connections.

A client that goes away must not leave the runner waiting: the upstream request is
aborted too. A client that never finishes its request headers, or sits idle on a
keep-alive connection, is closed after ``ADAPTER_CLIENT_IDLE_TIMEOUT`` (aiohttp's own default
keeps it for an hour). A thousand idle connections do not stop the adapter from serving
others, and its descriptors return to baseline once they close.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from adapter.config import DEFAULT_CLIENT_IDLE_TIMEOUT
from adapter.http.proxy import UPSTREAM
from adapter.http.relay import RelayServer
from tests.conftest import (
    AdapterFactory,
    RecordingUpstream,
    RunningAdapter,
    connector_counts,
    served_proxy_runner,
)
from tests.served_adapter import served_adapter

DECLARED = 50 * 1024 * 1024
CHUNK = 64 * 1024

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")


@dataclass
class AbortWatcher:
    """An upstream that records how each upload and download ended, as the runner saw it."""

    outcomes: list[tuple[str, str, int]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        received = 0
        outcome = "complete"
        try:
            async for chunk in request.content.iter_any():
                received += len(chunk)
                self.started.set()
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:  # whatever the server raises for a cut body
            outcome = type(exc).__name__
        finally:
            self.outcomes.append(("upload", outcome, received))
            self.ended.set()
        return web.json_response({"received": received})

    async def download(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = DECLARED
        sent = 0
        outcome = "complete"
        try:
            await response.prepare(request)
            for _ in range(DECLARED // CHUNK):  # bounded; ~8 s at the pace below
                await response.write(b"d" * CHUNK)
                sent += CHUNK
                self.started.set()
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ConnectionError as exc:
            outcome = type(exc).__name__
        finally:
            self.outcomes.append(("download", outcome, sent))
            self.ended.set()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/upload", self.upload)
        app.router.add_post("/api/v1/jobs", self.upload)
        app.router.add_get("/download", self.download)
        return app


@pytest.fixture(name="watcher")
async def _watcher(aiohttp_server: AiohttpServer) -> AbortWatcher:
    return AbortWatcher()


async def _adapter_for(
    watcher: AbortWatcher, aiohttp_server: AiohttpServer, start_adapter: AdapterFactory
) -> RunningAdapter:
    server = await aiohttp_server(watcher.app())  # test servers cancel handlers on disconnect
    return await start_adapter(server.make_url(""))


async def _quiet(adapter: RunningAdapter) -> None:
    """Wait (bounded) until no request is in flight and no upstream connection is held."""
    connector = adapter.app[UPSTREAM].session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    for _ in range(250):  # bounded: 5 s
        inflight = adapter.registry.get_sample_value("adapter_inflight_requests")
        acquired, _ = connector_counts(connector)
        if inflight == 0 and not acquired:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still busy: inflight={inflight}, acquired={acquired}")


@pytest.mark.parametrize(
    ("path", "content_type", "framing"),
    [
        pytest.param("/upload", "application/octet-stream", "length", id="length"),
        pytest.param("/upload", "application/octet-stream", "chunked", id="chunked"),
        pytest.param("/api/v1/jobs", "application/octet-stream", "length", id="jobs-not-json"),
        pytest.param("/api/v1/jobs", "application/json", "length", id="jobs-json-too-large"),
    ],
)
async def test_disconnect_mid_upload_aborts_the_upstream_request(
    watcher: AbortWatcher,
    aiohttp_server: AiohttpServer,
    start_adapter: AdapterFactory,
    path: str,
    content_type: str,
    framing: str,
) -> None:
    """A client that vanishes halfway through a body: the runner sees an incomplete upload."""
    adapter = await _adapter_for(watcher, aiohttp_server, start_adapter)
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    framing_header = (
        f"Content-Length: {DECLARED}" if framing == "length" else "Transfer-Encoding: chunked"
    )
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: {content_type}\r\n"
        f"{framing_header}\r\n\r\n".encode()
    )
    async with asyncio.timeout(10):
        while not watcher.started.is_set():  # bounded by the timeout
            block = b"u" * CHUNK
            writer.write(block if framing == "length" else b"%x\r\n%s\r\n" % (len(block), block))
            await writer.drain()
            await asyncio.sleep(0.005)
    writer.transport.abort()
    async with asyncio.timeout(5):
        await watcher.ended.wait()
    [(kind, outcome, received)] = watcher.outcomes
    assert kind == "upload"
    assert outcome != "complete", watcher.outcomes
    assert 0 < received < DECLARED
    await _quiet(adapter)
    del reader


async def test_disconnect_mid_download_aborts_the_upstream_response(
    watcher: AbortWatcher, aiohttp_server: AiohttpServer, start_adapter: AdapterFactory
) -> None:
    """A client that closes mid-body: the runner's write fails or its handler is cancelled."""
    adapter = await _adapter_for(watcher, aiohttp_server, start_adapter)
    async with aiohttp.ClientSession() as http:
        response = await http.get(adapter.url / "download")
        assert response.status == 200
        for _ in range(3):
            assert await response.content.readany()
        response.close()  # drops the connection mid-body
    async with asyncio.timeout(5):
        await watcher.ended.wait()
    [(kind, outcome, sent)] = watcher.outcomes
    assert kind == "download"
    assert outcome != "complete", watcher.outcomes
    assert sent < DECLARED
    await _quiet(adapter)


async def _closed_after(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Seconds from ``started`` until the server closes the connection (reads to EOF, bounded).

    A reset counts as closed too: a server that closes while the client's last bytes sit
    unread in its receive buffer makes the kernel send RST instead of FIN (RFC 1122
    §4.2.2.13), which is how a slowloris client still trickling sees the close.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limit):
        with contextlib.suppress(ConnectionResetError):
            while await reader.read(65536):  # bounded by the timeout
                pass
    return loop.time() - started


async def test_slowloris_headers_are_timed_out(upstream: RecordingUpstream) -> None:
    """Header bytes trickling in forever: the connection is closed, others are served meanwhile."""
    async with served_proxy_runner(upstream.url, client_idle_timeout=1.0) as (_, port):
        connected = asyncio.get_running_loop().time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /never HTTP/1.1\r\nHost: a\r\nX-Slow: ")

        async def trickle() -> None:
            for _ in range(100):  # bounded: 10 s
                await asyncio.sleep(0.1)
                writer.write(b"z")
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        dripping = asyncio.create_task(trickle())
        async with aiohttp.ClientSession() as http:
            for _ in range(5):  # the adapter keeps serving while the slow client trickles
                async with http.get(f"http://127.0.0.1:{port}/ok") as response:
                    assert response.status == 200
        elapsed = await _closed_after(reader, connected, 5)
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripping
        writer.close()
    assert 0.9 <= elapsed < 5
    assert all(r.raw_path != "/never" for r in upstream.requests)


@pytest.mark.parametrize("after_request", [False, True], ids=["silent", "idle-keep-alive"])
async def test_idle_connections_are_closed(
    upstream: RecordingUpstream, after_request: bool
) -> None:
    """A connection that sends nothing, or idles after a request, is closed after the timeout."""
    async with served_proxy_runner(upstream.url, client_idle_timeout=0.5) as (_, port):
        connected = asyncio.get_running_loop().time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if after_request:
            writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
        elapsed = await _closed_after(reader, connected, 5)
        writer.close()
    assert 0.4 <= elapsed < 5


async def test_default_idle_timeout_replaces_aiohttps_hour(upstream: RecordingUpstream) -> None:
    """Both client paths close idle connections after 75 s, not aiohttp's 3630 s: the lean
    relay's sweep, and aiohttp's keep-alive timer on a connection handed over to it."""
    async with served_proxy_runner(upstream.url) as (runner, port):
        server = runner.server
        assert isinstance(server, RelayServer)
        assert server.context.client_idle_timeout == DEFAULT_CLIENT_IDLE_TIMEOUT == 75.0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # HTTP/1.0 keep-alive is not the relay's: the connection goes to aiohttp.
        writer.write(b"GET /ok HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
        [handler] = server.connections
        assert handler.keepalive_timeout == 75.0
        writer.close()


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip(f"needs {wanted} file descriptors, the hard limit is {hard}")


async def _one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


IDLE_CONNECTIONS = 1000


@pytest.mark.slow
async def test_thousand_idle_keep_alive_connections(upstream: RecordingUpstream) -> None:
    """1,000 idle keep-alive clients: others are still served, descriptors return to baseline."""
    _raise_fd_limit(IDLE_CONNECTIONS + 1024)
    async with served_adapter(upstream.url, ADAPTER_LOG_LEVEL="warning") as adapter:
        async with aiohttp.ClientSession() as http, http.get(adapter.proxy / "warm-up") as response:
            assert response.status == 200
        baseline = adapter.fds()

        gate = asyncio.Semaphore(8)  # few at a time, so the upstream pool stays small
        connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def open_one() -> int:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", adapter.proxy.port)
                connections.append((reader, writer))
                return await _one_request(reader, writer)

        try:
            async with asyncio.timeout(60):
                statuses = await asyncio.gather(*(open_one() for _ in range(IDLE_CONNECTIONS)))
            assert statuses == [200] * IDLE_CONNECTIONS
            holding = adapter.fds()
            assert holding >= baseline + IDLE_CONNECTIONS

            # Five at a time, so the adapter's upstream pool stays within the slack below.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=5)) as http:

                async def other() -> int:
                    async with http.get(adapter.proxy / "other") as response:
                        await response.read()
                        return response.status

                async with asyncio.timeout(20):
                    assert await asyncio.gather(*(other() for _ in range(50))) == [200] * 50
            # Idle, not dead: a few of the thousand can still be reused.
            for reader, writer in connections[::200]:
                assert await _one_request(reader, writer) == 200
        finally:
            for _, writer in connections:
                writer.close()
            await asyncio.gather(*(w.wait_closed() for _, w in connections), return_exceptions=True)

        after = adapter.fds()
        for _ in range(500):  # bounded: 10 s for the adapter to notice every close
            after = adapter.fds()
            if after <= baseline + 16:
                break
            await asyncio.sleep(0.02)
        print(  # figures for the report (pytest -s)
            f"\nidle connections: adapter fds baseline {baseline}, holding {holding}, "
            f"after close {after}"
        )
        assert after <= baseline + 16  # + the adapter's idle upstream pool (at most 8)


STALLED_BODIES = [
    pytest.param(
        {},
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n",
        b'{"id": "j1"',
        "jobs_submit",
        id="jobs-submit-read-for-decision",
    ),
    pytest.param(
        {},
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        "other",
        id="chunked-upload-handed-to-aiohttp",
    ),
    pytest.param(
        {"ADAPTER_LEAN_RELAY": "false"},
        b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
        b"0123456789",
        "other",
        id="small-body-aiohttp-path",
    ),
    pytest.param(
        {"ADAPTER_LEAN_RELAY": "false"},
        b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n",
        b"x" * 70_000,
        "other",
        id="streamed-body-aiohttp-path",
    ),
]


@pytest.mark.parametrize(("env", "head", "first_bytes", "route"), STALLED_BODIES)
async def test_stalled_request_body_on_aiohttp_path_is_answered_408(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    env: dict[str, str],
    head: bytes,
    first_bytes: bytes,
    route: str,
) -> None:
    """A client that stops sending its body on a request aiohttp handles (the rewrite
    route's read, a chunked upload, either body path with the relay off) is given up on
    after the client idle timeout: 408 (or a closed connection when the answer cannot be
    sent any more), recorded as 408, never a 502 blamed on the runner."""
    adapter = await start_adapter(
        upstream.url, {"ADAPTER_CLIENT_IDLE_TIMEOUT": "0.5", "ADAPTER_ROLLOUT_PERCENT": "0", **env}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    started = asyncio.get_running_loop().time()
    writer.write(head + first_bytes)
    await writer.drain()
    answer = b""
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in answer:  # bounded by the timeout: a head or the close
            piece = await reader.read(65536)
            if not piece:
                break
            answer += piece
    elapsed = asyncio.get_running_loop().time() - started
    writer.close()
    assert 0.4 <= elapsed < 5
    if answer:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b"Connection: close" in answer
    labels = {"method": "POST", "route": route, "code": "408"}
    for _ in range(100):  # bounded: the middleware records after the handler returns
        if adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0:
            break
        await asyncio.sleep(0.02)
    assert adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0
    errors = sum(
        adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": kind}) or 0
        for kind in ("connect", "timeout", "reset", "protocol")
    )
    assert errors == 0

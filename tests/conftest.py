"""Shared fixtures: the conformance vectors and small helpers every test module may use."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import io
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web
from hypothesis import HealthCheck, settings
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer
from yarl import URL

from adapter.admin import Readiness
from adapter.app import create_admin_app, create_app, make_admin_runner, make_proxy_runner
from adapter.config import Config
from adapter.log import configure_logging

# One Hypothesis profile for the whole suite. A cold example database (a fresh clone, CI's new
# container) makes the first text draw build Hypothesis' character tables (~1.4 s), and a loaded
# 2-core machine stretches any single example: neither is a bug, so neither may fail a test.
# Speed is measured in bench/, never asserted here.
settings.register_profile(
    "adapter",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("adapter")

# Fixtures in their own modules: a throwaway PostgreSQL cluster (tests/postgres.py) and a
# throwaway redis-server (tests/redis_server.py).
pytest_plugins = ("tests.postgres", "tests.redis_server")

VECTORS_DIR = Path(__file__).parent / "vectors"
# The project's shared folder sits beside the checkout (../shared); CI lays it there too.
SHARED_VECTORS_DIR = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def load_vector(name: str) -> Any:
    """Return one vector file, parsed, from the in-repo copy of shared/vectors."""
    return json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(name="vectors_dir")
def _vectors_dir() -> Path:
    return VECTORS_DIR


# --- Proxy fixtures: a recording upstream on a real port and the adapter in front of it. ---

GZIP_PAYLOAD = b'{"hello": "world", "pad": "' + b"z" * 2000 + b'"}'


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_unavailable(reason: str) -> NoReturn:
    """A throwaway server a test needs (PostgreSQL, Redis) cannot start: skip, except under
    ``CI=true``, where ``.ci/run`` installs the servers and the test must fail instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never answers (a stuck database or Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def connector_counts(connector: aiohttp.BaseConnector) -> tuple[int, int]:
    """(connections in use, idle pooled connections) of an aiohttp client connector.

    The fourth aiohttp seam (the others are in adapter/http/aiohttp_seams.py): aiohttp
    has no public count, so this reads the private ``_acquired`` set and ``_conns`` dict
    (aiohttp 3.14.5); tests/test_aiohttp_seams.py checks both still exist.
    """
    return len(connector._acquired), sum(len(idle) for idle in connector._conns.values())


@pytest.fixture(autouse=True)
def _structlog_isolated() -> Iterator[None]:
    """Each test starts from structlog's defaults and leaves them behind: a test that
    configures logging (the CLI sets a level, some tests a buffer) must not filter or
    redirect the log lines a later test captures."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(name="log_lines")
def _log_lines() -> Iterator[io.BytesIO]:
    """Every log line (debug and up) as JSON, into a buffer instead of stdout."""
    buffer = io.BytesIO()
    configure_logging("debug", "json", binary_stream=buffer)
    yield buffer
    structlog.reset_defaults()


def logged(buffer: io.BytesIO, event: str | None = None) -> list[dict[str, object]]:
    """The JSON lines written to ``buffer``, only those of ``event`` when given."""
    lines = [orjson.loads(line) for line in buffer.getvalue().splitlines() if line]
    return lines if event is None else [line for line in lines if line.get("event") == event]


@dataclass
class Recorded:
    """One request as the upstream saw it: raw target, headers in order, raw body bytes."""

    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes
    peer: str | None


@dataclass
class RecordingUpstream:
    """A stand-in runner on a real port; its behaviour is chosen by the request path."""

    url: URL = field(default_factory=lambda: URL("http://127.0.0.1:0"))
    requests: list[Recorded] = field(default_factory=list)
    health_status: int = 200
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        if path == "/drip":
            return await self._drip(request)
        body = await request.read()
        self.requests.append(
            Recorded(
                request.method, request.raw_path, CIMultiDict(request.headers), body, request.remote
            )
        )
        if path == "/health":
            return web.json_response({"status": "ok"}, status=self.health_status)
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return web.Response(status=code, headers={"ETag": '"v1"', "X-Upstream": "yes"})
        if path == "/cookies":
            headers = CIMultiDict(
                [
                    ("Set-Cookie", "a=1; Path=/"),
                    ("Connection", "X-Internal"),
                    ("X-Internal", "must-not-leak"),
                    ("Set-Cookie", "b=2; Path=/"),
                    ("Keep-Alive", "timeout=5"),
                    ("Set-Cookie", "c=3; Path=/"),
                ]
            )
            return web.Response(text="cookies", headers=headers)
        if path == "/gzip":
            headers = CIMultiDict(
                [("Content-Encoding", "gzip"), ("Content-Type", "application/json")]
            )
            return web.Response(body=gzip.compress(GZIP_PAYLOAD, mtime=0), headers=headers)
        if path == "/chunked":
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b"one,", b"two,", b"three"):
                await response.write(part)
            await response.write_eof()
            return response
        if path == "/slow":
            await asyncio.sleep(float(request.query.get("seconds", "1")))
            return web.Response(text="slow done")
        if path == "/truncated":
            response = web.StreamResponse(headers={"Content-Length": "100"})
            await response.prepare(request)
            await response.write(b"x" * 10)
            assert request.transport is not None
            request.transport.close()
            return response
        return web.json_response(
            {"method": request.method, "path": request.raw_path, "body_length": len(body)}
        )

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        """Send one chunk, then wait; records whether the proxy cancelled us."""
        self.requests.append(
            Recorded(request.method, request.raw_path, CIMultiDict(request.headers), b"", None)
        )
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first chunk")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return response

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture(name="upstream")
async def _upstream(aiohttp_server: AiohttpServer) -> RecordingUpstream:
    """A recording upstream on a free port, reading raw (still encoded) request bodies."""
    recorder = RecordingUpstream()
    server = await aiohttp_server(recorder.app(), auto_decompress=False)
    recorder.url = server.make_url("")
    return recorder


@dataclass
class RunningAdapter:
    """The adapter under test, listening on 127.0.0.1."""

    app: web.Application
    registry: CollectorRegistry
    url: URL
    port: int


AdapterFactory = Callable[..., Awaitable[RunningAdapter]]


@contextlib.asynccontextmanager
async def served_proxy_runner(
    upstream_url: URL | str, *, client_idle_timeout: float | None = None
) -> AsyncIterator[tuple[web.AppRunner, int]]:
    """The proxy runner itself (for tests that look at its server or stop it mid-test),
    serving on a free port: (runner, port)."""
    config = Config.from_env({"ADAPTER_UPSTREAM_URL": str(upstream_url)})
    app = create_app(config, registry=CollectorRegistry())
    runner = make_proxy_runner(app, client_idle_timeout=client_idle_timeout)
    port = await _start_runner(runner)
    try:
        yield runner, port
    finally:
        await runner.cleanup()


async def _start_runner(runner: web.AppRunner) -> int:
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return port


@pytest.fixture(name="start_adapter")
async def _start_adapter() -> AsyncIterator[AdapterFactory]:
    """Factory: start the proxy app exactly as `serve` runs it, on a free port."""
    runners: list[web.AppRunner] = []

    async def start(
        upstream_url: URL | str,
        env: Mapping[str, str] | None = None,
        *,
        readiness: Readiness | None = None,
        prepare: Callable[[web.Application], None] | None = None,
    ) -> RunningAdapter:
        config = Config.from_env({"ADAPTER_UPSTREAM_URL": str(upstream_url), **(env or {})})
        registry = CollectorRegistry()
        app = create_app(config, registry=registry, readiness=readiness)
        if prepare is not None:
            prepare(app)
        runner = make_proxy_runner(app)
        runners.append(runner)
        port = await _start_runner(runner)
        return RunningAdapter(app, registry, URL(f"http://127.0.0.1:{port}"), port)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


AdminFactory = Callable[..., Awaitable[URL]]


@pytest.fixture(name="start_admin")
async def _start_admin() -> AsyncIterator[AdminFactory]:
    """Factory: start the admin app of a running proxy app on a free port."""
    runners: list[web.AppRunner] = []

    async def start(proxy_app: web.Application, **kwargs: object) -> URL:
        runner = make_admin_runner(create_admin_app(proxy_app, **kwargs))  # type: ignore[arg-type]
        runners.append(runner)
        port = await _start_runner(runner)
        return URL(f"http://127.0.0.1:{port}")

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    """A test client that shows bytes as sent (no decompression) and keeps no cookies."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


@dataclass
class RawResponse:
    """A response read off the socket: status, headers in wire order, raw body bytes."""

    status: int
    headers: list[tuple[str, str]]
    raw_body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def raw_exchange(port: int, request: bytes) -> RawResponse:
    """Send bytes as-is to 127.0.0.1:port and read the reply until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return RawResponse(status, headers, body)


# --- Reference runner: the embedded stand-in for the Project Beacon runner on a real port. ---

from aiohttp.test_utils import TestServer  # noqa: E402 - kept with the fixture it types


@pytest.fixture(name="reference_runner")
async def _reference_runner(aiohttp_server: AiohttpServer) -> TestServer:
    """A reference runner (in-memory SQLite, default options) on a free 127.0.0.1 port.

    ``server.app`` holds ``STORE``, ``RECEIVED`` and ``FAULTS``; build your own with
    ``create_reference_runner(...)`` for other options.
    """
    from adapter.devkit.reference_runner import create_reference_runner

    return await aiohttp_server(create_reference_runner())


class RawTcpUpstream:
    """Base for raw TCP upstreams that misbehave on purpose: ``async with`` gives the port.

    Subclasses implement ``_handle`` (one connection) and keep whatever they record.
    """

    server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def runner_verifies_other_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the reference runner's cross-region route verify other bytes than the adapter
    signs (a canonical-form drift between versions), so it answers 400 on the signature.

    Only the cross-region check drifts (``request_signable``); the standard route's checks
    stay as they are, so a fallback there still succeeds.
    """
    from adapter.devkit.reference_runner import runner_canonical

    real = runner_canonical.request_signable

    def drifted(body: bytes) -> runner_canonical.Signable:
        signable = real(body)
        return dataclasses.replace(signable, canonical=signable.canonical + b" ")

    monkeypatch.setattr(runner_canonical, "request_signable", drifted)

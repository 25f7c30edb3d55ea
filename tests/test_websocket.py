"""WebSocket relay through real sockets: messages, pings, close codes, failures, drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer
from yarl import URL

from adapter.app import create_app, make_proxy_runner
from adapter.config import Config
from adapter.http.websocket import sendable_close_code
from tests.conftest import AdapterFactory


@dataclass
class WsUpstream:
    """A runner-like WebSocket endpoint that echoes and obeys small text commands."""

    url: URL = field(default_factory=lambda: URL("http://127.0.0.1:0"))
    handshake: CIMultiDict[str] = field(default_factory=CIMultiDict)
    events: list[tuple[str, object]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/ws-forbidden":
            return web.Response(status=403, text="no")
        self.handshake = CIMultiDict(request.headers)
        ws = web.WebSocketResponse(protocols=("beacon.v2",), autoping=False)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._command(request, ws, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data[::-1])
                elif msg.type is WSMsgType.PING:
                    self.events.append(("ping", msg.data))
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    self.events.append(("pong", msg.data))
        finally:
            self.events.append(("closed", ws.close_code))
            self.closed.set()
        return ws

    async def _command(self, request: web.Request, ws: web.WebSocketResponse, text: str) -> None:
        if text.startswith("close:"):
            await ws.close(code=int(text.split(":")[1]), message=b"upstream says bye")
        elif text == "ping-me":
            await ws.ping(b"from-upstream")
        elif text == "drop":
            assert request.transport is not None
            request.transport.abort()
        else:
            await ws.send_str("echo:" + text)


@pytest.fixture(name="ws_upstream")
async def _ws_upstream(aiohttp_server: AiohttpServer) -> WsUpstream:
    upstream = WsUpstream()
    app = web.Application()
    app.router.add_get("/{tail:.*}", upstream.handle)
    server = await aiohttp_server(app)
    upstream.url = server.make_url("")
    return upstream


@pytest.fixture(name="ws_client")
async def _ws_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_text_and_binary_both_ways_with_subprotocol(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """Text and binary frames cross both ways; the runner's subprotocol choice reaches us."""
    adapter = await start_adapter(ws_upstream.url)
    async with ws_client.ws_connect(adapter.url / "ws", protocols=("beacon.v1", "beacon.v2")) as ws:
        assert ws.protocol == "beacon.v2"
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "echo:hello"
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes(timeout=5) == b"\x02\x01\x00"
    assert ws_upstream.handshake["Sec-WebSocket-Protocol"] == "beacon.v1,beacon.v2"


async def test_handshake_carries_forwarding_headers(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """The upstream handshake has our X-Request-ID, X-Forwarded-For, Host and the Origin."""
    adapter = await start_adapter(ws_upstream.url)
    headers = {
        "X-Request-ID": "ws-req-1",
        "Origin": "https://projectbeacon.netlify.app",
        "X-Forwarded-For": "6.6.6.6",
    }
    async with ws_client.ws_connect(adapter.url / "ws", headers=headers) as ws:
        await ws.send_str("x")
        await ws.receive_str(timeout=5)
    seen = ws_upstream.handshake
    assert seen["X-Request-ID"] == "ws-req-1"
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["Origin"] == "https://projectbeacon.netlify.app"
    assert seen["Host"] == f"127.0.0.1:{ws_upstream.url.port}"


async def test_pings_and_pongs_are_relayed(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """Pings travel end to end and the far side's pong comes back with the same payload."""
    adapter = await start_adapter(ws_upstream.url)
    async with ws_client.ws_connect(adapter.url / "ws", autoping=False) as ws:
        await ws.ping(b"from-client")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"from-client")
        await ws.send_str("ping-me")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (WSMsgType.PING, b"from-upstream")
        await ws.pong(msg.data)
        await ws.send_str("sync")
        assert await ws.receive_str(timeout=5) == "echo:sync"
    assert ("ping", b"from-client") in ws_upstream.events
    assert ("pong", b"from-upstream") in ws_upstream.events


async def test_client_close_code_reaches_upstream(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """A client close with code 4001 closes the upstream socket with 4001."""
    adapter = await start_adapter(ws_upstream.url)
    ws = await ws_client.ws_connect(adapter.url / "ws")
    await ws.send_str("x")
    await ws.receive_str(timeout=5)
    await ws.close(code=4001, message=b"bye")
    async with asyncio.timeout(5):
        await ws_upstream.closed.wait()
    assert ("closed", 4001) in ws_upstream.events


async def test_upstream_close_code_reaches_client(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """An upstream close with code 4002 closes the client socket with 4002."""
    adapter = await start_adapter(ws_upstream.url)
    async with ws_client.ws_connect(adapter.url / "ws") as ws:
        await ws.send_str("close:4002")
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 4002
        assert msg.extra == "upstream says bye"
    assert ws.close_code == 4002


async def test_upstream_drop_closes_client_with_1014(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """If the runner's connection drops without a close frame, the client gets 1014."""
    adapter = await start_adapter(ws_upstream.url)
    async with ws_client.ws_connect(adapter.url / "ws") as ws:
        await ws.send_str("drop")
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1014


async def test_client_drop_closes_upstream(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory
) -> None:
    """If the client vanishes without a close frame, the upstream socket is closed too."""
    adapter = await start_adapter(ws_upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    writer.transport.abort()
    async with asyncio.timeout(5):
        await ws_upstream.closed.wait()
    assert ws_upstream.events[-1][0] == "closed"


async def test_refused_upgrade_passes_status(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """When the runner answers the upgrade with 403, the client sees 403."""
    adapter = await start_adapter(ws_upstream.url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await ws_client.ws_connect(adapter.url / "ws-forbidden")
    assert caught.value.status == 403


async def test_unreachable_upstream_is_502(
    start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """An upgrade to an unreachable runner gets the proxy's 502."""
    from tests.conftest import free_port

    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await ws_client.ws_connect(adapter.url / "ws")
    assert caught.value.status == 502


async def test_idle_socket_outlives_upstream_timeout(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """ADAPTER_UPSTREAM_TIMEOUT is for HTTP answers; an idle WebSocket stays open."""
    adapter = await start_adapter(ws_upstream.url, {"ADAPTER_UPSTREAM_TIMEOUT": "0.2"})
    async with ws_client.ws_connect(adapter.url / "ws") as ws:
        await asyncio.sleep(0.6)
        await ws.send_str("still here")
        assert await ws.receive_str(timeout=5) == "echo:still here"


async def test_websocket_metrics(
    ws_upstream: WsUpstream, start_adapter: AdapterFactory, ws_client: aiohttp.ClientSession
) -> None:
    """An open WebSocket counts as in flight and is recorded under route=websocket, 101."""
    adapter = await start_adapter(ws_upstream.url)
    async with ws_client.ws_connect(adapter.url / "ws") as ws:
        await ws.send_str("x")
        await ws.receive_str(timeout=5)
        assert adapter.registry.get_sample_value("adapter_inflight_requests") == 1.0
    labels = {"method": "GET", "route": "websocket", "code": "101"}
    for _ in range(500):  # bounded wait for the relay to finish its bookkeeping
        if adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0:
            break
        await asyncio.sleep(0.01)
    assert adapter.registry.get_sample_value("adapter_requests_total", labels) == 1.0


async def test_shutdown_closes_websockets_with_1001(
    ws_upstream: WsUpstream, ws_client: aiohttp.ClientSession
) -> None:
    """Draining the proxy closes relayed WebSockets with 1001 instead of waiting for them."""
    config = Config.from_env({"ADAPTER_UPSTREAM_URL": str(ws_upstream.url)})
    runner = make_proxy_runner(create_app(config, registry=CollectorRegistry()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    ws = await ws_client.ws_connect(f"http://127.0.0.1:{port}/ws")
    await ws.send_str("x")
    await ws.receive_str(timeout=5)
    async with asyncio.timeout(10):
        cleanup = asyncio.create_task(runner.cleanup())
        msg = await ws.receive(timeout=5)
        await cleanup
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == 1001
    await ws.close()


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        pytest.param(1000, 1000, id="normal"),
        pytest.param(4999, 4999, id="private"),
        pytest.param(3000, 3000, id="registered"),
        pytest.param(0, 1000, id="no-code"),
        pytest.param(1005, 1000, id="no-status-reserved"),
        pytest.param(1006, 1000, id="abnormal-reserved"),
        pytest.param(1015, 1000, id="tls-reserved"),
        pytest.param(5000, 1000, id="out-of-range"),
        pytest.param(None, 1000, id="none"),
    ],
)
def test_sendable_close_code(code: object, sent: int) -> None:
    """Only codes RFC 6455 lets an endpoint send are relayed; others become 1000."""
    assert sendable_close_code(code) == sent

"""WebSocket relay for ``GET /ws`` (any path with ``Upgrade: websocket``).

The adapter terminates the WebSocket on both sides and copies messages across: text,
binary, ping and pong (pings are relayed, not answered locally, so the runner's
60-second read deadline still measures the real client), and close frames with their
code. A close or a dropped connection on either side closes the other. Other
``Upgrade`` tokens are not tunnelled: the header is hop-by-hop, so they pass as plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from adapter.http.errors import ProxyStatus, UpstreamError, classify_upstream_failure
from adapter.http.forwarding import strip_hop_by_hop
from adapter.http.http1 import connection_tokens
from adapter.http.proxy import (
    CONFIG,
    REQUEST_ID,
    UPSTREAM,
    new_request_id,
    raw_path_qs,
    request_stats,
    upstream_headers,
)
from adapter.log import get_logger

# Larger messages close the connection with 1009; the runner's own limits are smaller.
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
# Handshake fields each leg negotiates for itself.
_HANDSHAKE_HEADERS: Final = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Accept",
)
_BODY_HEADERS: Final = ("Content-Length", "Content-Encoding", "Content-Type")
OPEN_WEBSOCKETS: Final[web.AppKey[set[web.WebSocketResponse]]] = web.AppKey("open_websockets")

_log = get_logger("adapter.websocket")

AnyWebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    """A GET asking to switch to the WebSocket protocol (RFC 6455 §4.1)."""
    return (
        request.method == "GET"
        and request.headers.get("Upgrade", "").strip().lower() == "websocket"
        and "upgrade" in connection_tokens(request.headers.getall("Connection", ()))
    )


def sendable_close_code(code: object) -> int:
    """A close code we may put on the wire (RFC 6455 §7.4): reserved ones become 1000."""
    if (
        isinstance(code, int)
        and (1000 <= code <= 1014 or 3000 <= code <= 4999)
        and code not in (1004, 1005, 1006)
    ):
        return code
    return WSCloseCode.OK


def _requested_protocols(request: web.BaseRequest) -> tuple[str, ...]:
    values = request.headers.getall("Sec-WebSocket-Protocol", ())
    return tuple(p.strip() for value in values for p in value.split(",") if p.strip())


async def _pump(source: AnyWebSocket, sink: AnyWebSocket, gone_code: int) -> None:
    """Copy messages from source to sink until one side closes."""
    while True:
        msg = await source.receive()
        if msg.type is WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type is WSMsgType.PING:
            await sink.ping(msg.data)
        elif msg.type is WSMsgType.PONG:
            await sink.pong(msg.data)
        elif msg.type is WSMsgType.CLOSE:
            code = sendable_close_code(msg.data)
            reason = (msg.extra or "").encode()
            await sink.close(code=code, message=reason)
            await source.close(code=code, message=reason)
            return
        elif msg.type is WSMsgType.CLOSING:
            # The other pump is closing this socket; it finishes the handshake.
            return
        else:  # CLOSED or ERROR: the source's connection is gone without a close frame.
            await sink.close(code=gone_code)
            return


async def relay_websocket(request: web.Request) -> web.StreamResponse:
    """Open the upstream WebSocket first, then accept the client's and relay both ways."""
    request_id = request.get(REQUEST_ID) or new_request_id()
    headers = upstream_headers(request, request.app[CONFIG], request_id)
    for name in _HANDSHAKE_HEADERS:
        headers.popall(name, None)
    client = request.app[UPSTREAM]
    try:
        upstream_ws = await client.session.ws_connect(
            client.url(raw_path_qs(request)),
            headers=headers,
            protocols=_requested_protocols(request),
            autoclose=False,
            autoping=False,
            max_msg_size=MAX_MESSAGE_BYTES,
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 101:  # switched, but not to the protocol asked for: a 502
            raise UpstreamError(ProxyStatus.HTTP_PROTOCOL_ERROR, exc.message) from exc
        # The runner answered the upgrade with an ordinary HTTP status: pass it on.
        refusal = strip_hop_by_hop(exc.headers) if exc.headers else None
        for name in _BODY_HEADERS:
            if refusal is not None:
                refusal.popall(name, None)
        status = exc.status if exc.status >= 400 else 502
        request_stats(request).upstream_status = exc.status
        return web.Response(status=status, headers=refusal)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise classify_upstream_failure(exc) from exc

    request_stats(request).upstream_status = 101
    protocols = (upstream_ws.protocol,) if upstream_ws.protocol else ()
    ws = web.WebSocketResponse(
        protocols=protocols,
        autoclose=False,
        autoping=False,
        max_msg_size=MAX_MESSAGE_BYTES,
    )
    open_sockets = request.app[OPEN_WEBSOCKETS]
    try:
        await ws.prepare(request)
        open_sockets.add(ws)
        to_upstream = asyncio.create_task(_pump(ws, upstream_ws, WSCloseCode.GOING_AWAY))
        to_client = asyncio.create_task(_pump(upstream_ws, ws, WSCloseCode.BAD_GATEWAY))
        try:
            await asyncio.gather(to_upstream, to_client)
        except asyncio.CancelledError:
            # Closing the client socket ends its TCP connection, and aiohttp cancels the
            # handler on connection loss. After a completed close that is the normal end.
            current = asyncio.current_task()
            if not ws.closed or current is None:
                raise
            current.uncancel()
        finally:
            for task in (to_upstream, to_client):
                task.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
    except (ConnectionError, aiohttp.ClientError) as exc:
        _log.info("websocket_relay_ended", error=type(exc).__name__)
    finally:
        open_sockets.discard(ws)
        if not upstream_ws.closed:
            with contextlib.suppress(Exception):
                await upstream_ws.close(code=WSCloseCode.GOING_AWAY)
    _log.debug(
        "websocket_closed",
        client_close_code=ws.close_code,
        upstream_close_code=upstream_ws.close_code,
    )
    return ws


async def close_open_websockets(app: web.Application) -> None:
    """On shutdown: close every relayed WebSocket with 1001 so the drain can finish."""
    sockets = app[OPEN_WEBSOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"adapter shutting down")


__all__ = (
    "MAX_MESSAGE_BYTES",
    "OPEN_WEBSOCKETS",
    "close_open_websockets",
    "is_websocket_upgrade",
    "relay_websocket",
    "sendable_close_code",
)

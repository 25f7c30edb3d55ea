"""The lean pass-through relay: plain HTTP/1.1 requests forwarded on raw asyncio protocols.

Why it exists: aiohttp's web server plus its client cost about 300 µs of CPU per proxied
request on the bench machine (``bench/results/latest.md``: the aiohttp path against this
one); most of that is machinery a byte relay does not need. Here a client connection
parses each request head once (``http1``), applies the same header rules as the aiohttp
path (``forwarding``), writes head and body to a pooled upstream connection, and moves
the answer back transport to transport, with flow control both ways so memory stays flat.

What it does not do, it hands over: the first request that is not plain (the jobs-submit
route, WebSocket and other upgrades, ``Expect``, chunked uploads, HTTP/1.0, absolute-form
targets, any head ``http1`` does not accept) switches the connection, with every byte
already read, to aiohttp's request handler for the rest of its life. So the rewrite,
the WebSocket relay and aiohttp's answers to malformed requests are exactly as before.

Timeouts are checked by one sweep per server (every ``sweep_interval`` seconds) instead
of timers per request: an idle or half-sent head is closed after the client idle
timeout; a request body or a client reader that makes no progress for that long is
abandoned; a runner that sends nothing for ``upstream_timeout`` gets a 504 (or, mid-body,
the client connection is aborted, as on the aiohttp path).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
from dataclasses import dataclass
from typing import Final, cast

from aiohttp import web
from multidict import CIMultiDict

from adapter.config import Config
from adapter.http.aiohttp_seams import ServerStandIn
from adapter.http.errors import (
    ADAPTER_ERROR_ANSWER,
    CLIENT_TIMEOUT_ANSWER,
    AdapterAnswer,
    ProxyStatus,
    UpstreamError,
    classify_upstream_failure,
    upstream_error_answer,
)
from adapter.http.forwarding import (
    HOP_BY_HOP,
    PROTECTED,
    ClientIpPolicy,
    ForwardedFacts,
    accept_request_id,
    upstream_fields,
)
from adapter.http.http1 import (
    HEAD_END,
    LAST_CHUNK,
    MAX_REQUEST_HEAD,
    MAX_RESPONSE_HEAD,
    ChunkedError,
    ChunkedScanner,
    Framing,
    RequestHead,
    ResponseHead,
    ResponseHeadError,
    parse_request_head,
    parse_response_head,
    rechunk,
    relayed_response_head,
    serialize_request_head,
    serialize_response_head,
)
from adapter.http.last_request import LastRequestGuard
from adapter.http.proxy import COALESCE_LIMIT, new_request_id
from adapter.http.record import CLIENT_CLOSED_REQUEST, RequestStats, finish_request
from adapter.http.retry import may_resend, worth_holding
from adapter.http.routing import is_jobs_submit, route_label
from adapter.log import get_logger
from adapter.metrics import Metrics

# A pooled runner connection unused for this long is closed (aiohttp's client default),
# before the runner's own idle timeout can race a request sent on it.
POOL_IDLE_TIMEOUT: Final = 15.0
# Client bytes buffered ahead of the exchange in progress (pipelined requests, or a body
# waiting for the runner connection) before the client is paused.
CLIENT_BUFFER_LIMIT: Final = 256 * 1024
_TIMEOUT_SWEEPS_PER_PERIOD: Final = 4
_MAX_SWEEP_INTERVAL: Final = 1.0
_MIN_SWEEP_INTERVAL: Final = 0.05
# How long stopping waits for the runner connections to finish closing.
_POOL_CLOSE_WAIT: Final = 1.0

_log = get_logger("adapter.relay")
_DROPPED_CACHE_SIZE: Final = 64
# Framing members as module constants: enum attribute access costs ~0.3 µs on 3.11.
_NONE, _LENGTH, _CHUNKED, _CLOSE = Framing.NONE, Framing.LENGTH, Framing.CHUNKED, Framing.CLOSE
# Response fields never relayed to the client: hop-by-hop ones and the runner's copy of
# our request id. ``_dropped`` adds the fields the runner's Connection nominates, and
# Content-Length when the body goes out chunked (RFC 9112 §6.3).
_RESPONSE_DROPPED: Final = HOP_BY_HOP | {"x-request-id"}
_DROPPED_CACHE: dict[tuple[Framing, frozenset[str]], frozenset[str]] = {}


class Stage(enum.IntEnum):
    """Where one exchange is; ``TRANSITIONS`` says where it may go next.

    An IntEnum only so that the check on every move hashes in C.
    """

    CONNECTING = 1  # no runner connection yet: the request waits in ``pending``
    SENDING = 2  # on a runner connection, the request body still coming from the client
    WAITING = 3  # the whole request sent, no answer head yet (interim answers skipped)
    RELAYING = 4  # the answer head relayed, its body following; the upload may still be
    #               unfinished when the runner answered early (the client connection closes)
    DONE = 5  # recorded; the runner connection released, closed or aborted


TRANSITIONS: Final[dict[Stage, frozenset[Stage]]] = {
    Stage.CONNECTING: frozenset({Stage.SENDING, Stage.WAITING, Stage.DONE}),
    Stage.SENDING: frozenset({Stage.WAITING, Stage.RELAYING, Stage.DONE}),
    # CONNECTING again: resent once on a fresh connection after a stale pooled one.
    Stage.WAITING: frozenset({Stage.RELAYING, Stage.CONNECTING, Stage.DONE}),
    Stage.RELAYING: frozenset({Stage.DONE}),
    Stage.DONE: frozenset(),
}
_CONNECTING, _SENDING, _WAITING, _RELAYING, _DONE = Stage


class StageError(RuntimeError):
    """A move ``TRANSITIONS`` does not allow: a bug in the relay."""


def check_transition(old: Stage, new: Stage) -> None:
    """Raise StageError unless ``TRANSITIONS`` allows moving from ``old`` to ``new``."""
    if new not in TRANSITIONS[old]:
        raise StageError(f"exchange stage {old.name} -> {new.name} is not allowed")


class Fate(enum.Enum):
    """What becomes of the runner connection when an exchange ends."""

    RELEASE = "release"  # back to the pool: in step, the whole request sent
    CLOSE = "close"  # closed after what was written: not reusable, nothing abandoned
    ABORT = "abort"  # reset at once: the request was abandoned and the runner must see it


_RELEASE, _CLOSE_CONNECTION, _ABORT = Fate


def runner_connection_fate(
    *, request_sent: bool, in_step: bool, abandoned: bool, closed: bool
) -> Fate:
    """Release a connection that is ``in_step`` (the answer read exactly to its end)
    after the whole request was sent, unless it closed meanwhile; abort one whose
    request was ``abandoned`` (the client left, timed out or the answer broke) or not
    sent in full, so the runner sees a reset; close the rest gracefully."""
    if in_step and request_sent and not closed:
        return _RELEASE
    if abandoned or not request_sent:
        return _ABORT
    return _CLOSE_CONNECTION


class ReadPause(enum.StrEnum):
    """Why the relay is not reading from a client (several may hold at once)."""

    BUFFER = "buffer"  # pipelined bytes past CLIENT_BUFFER_LIMIT wait for their turn
    PENDING = "pending"  # a body past CLIENT_BUFFER_LIMIT waits for a runner connection
    UPSTREAM = "upstream"  # the runner is not taking the upload as fast as it comes


_PAUSE_BUFFER, _PAUSE_PENDING, _PAUSE_UPSTREAM = ReadPause


def _dropped(framing: Framing, nominated: frozenset[str]) -> frozenset[str]:
    """Names not relayed for a response with this framing and Connection nominations;
    cached, so the regex cache in ``relayed_response_head`` hashes the same object."""
    key = (framing, nominated)
    dropped = _DROPPED_CACHE.get(key)
    if dropped is None:
        dropped = _RESPONSE_DROPPED | (nominated - PROTECTED)
        if framing is _CHUNKED or framing is _CLOSE:
            dropped |= {"content-length"}
        if len(_DROPPED_CACHE) < _DROPPED_CACHE_SIZE:  # nominations come from the runner
            _DROPPED_CACHE[key] = dropped
    return dropped


def sweep_interval(*timeouts: float) -> float:
    """How often timeouts are checked: a quarter of the shortest, within [0.05, 1] s."""
    return min(
        max(min(timeouts) / _TIMEOUT_SWEEPS_PER_PERIOD, _MIN_SWEEP_INTERVAL), _MAX_SWEEP_INTERVAL
    )


def hands_over(head: RequestHead) -> bool:
    """Plain requests the relay still leaves to aiohttp: the jobs-submit route."""
    return is_jobs_submit(head.method, head.target)


@dataclass(slots=True)
class RelayContext:
    """What every connection of one proxy port shares."""

    config: Config
    metrics: Metrics
    pool: UpstreamPool
    policy: ClientIpPolicy
    client_idle_timeout: float
    draining: bool = False


class UpstreamConnection(asyncio.Protocol):
    """One connection to the runner; owned by an exchange or idle in the pool."""

    __slots__ = ("closed", "exchange", "idle_since", "pool", "transport")

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing was asked: the connection is out of step
            self.close()
            return
        exchange.upstream_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        exchange = self.exchange
        self.exchange = None
        self.pool.forget(self)
        if exchange is not None:
            exchange.upstream_lost(exc)

    def pause_writing(self) -> None:
        # The runner is not taking the upload as fast as the client sends it: the runner
        # now has upstream_timeout to take more (checked by the sweep).
        exchange = self.exchange
        if exchange is not None:
            exchange.upstream_progress = exchange.client.loop.time()
            exchange.client.pause_reading(_PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.upstream_progress = exchange.client.loop.time()
            exchange.client.resume_reading(_PAUSE_UPSTREAM)

    def close(self) -> None:
        """Close gracefully; the pool forgets the connection when it is gone."""
        self.exchange = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once (the runner sees a reset): the request was abandoned."""
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to the runner, most recently used first."""

    def __init__(self, config: Config) -> None:
        url = config.upstream_url
        assert url.raw_host is not None, "checked by Config"
        assert url.port is not None, "http(s) URLs always have a port"
        self._host = url.raw_host
        self._port = url.port
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if url.scheme == "https" else None
        )
        self._connect_timeout = config.upstream_connect_timeout
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection] = set()
        self._gone: asyncio.Event | None = None

    def acquire(self) -> UpstreamConnection | None:
        """An idle connection that still looks open, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                return conn
            conn.close()
        return None

    async def connect(self) -> UpstreamConnection:
        """A new connection; raises UpstreamError."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except (TimeoutError, OSError) as exc:
            raise classify_upstream_failure(exc, connecting=True) from exc
        self._all.add(conn)
        return conn

    def release(self, conn: UpstreamConnection, now: float) -> None:
        """Return a connection whose last exchange ended cleanly."""
        conn.exchange = None
        conn.idle_since = now
        self._idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """A connection closed: drop every reference to it."""
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if not self._all and self._gone is not None:
            self._gone.set()

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than POOL_IDLE_TIMEOUT."""
        stale = [conn for conn in self._idle if now - conn.idle_since > POOL_IDLE_TIMEOUT]
        for conn in stale:
            self._idle.remove(conn)
            conn.close()

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or in use."""
        return len(self._all)

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pool for the next request."""
        return len(self._idle)

    async def close(self) -> None:
        """Close every connection (the app is stopping) and wait until they are gone,
        so the runner has seen every close before the loop stops."""
        self._idle.clear()
        if not self._all:
            return
        self._gone = asyncio.Event()
        for conn in list(self._all):
            conn.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_POOL_CLOSE_WAIT):
                await self._gone.wait()
        self._all.clear()


class ClientConnection(asyncio.Protocol):
    """One client connection on the lean path, until it closes or is handed over."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.context = server.context
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer_ip: str | None = None
        self.scheme = "http"
        self.buffer = bytearray()
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        self.progress = 0.0
        self.write_paused = False
        self._read_pauses: set[ReadPause] = set()
        self.closed = False
        # Bound once per connection: binding costs ~3 µs, a tenth of a relayed request.
        self.log = _log.bind()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if isinstance(peer, tuple) and peer else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.idle_since = self.progress = self.loop.time()
        self.server.track(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.progress = self.loop.time()
            exchange = self.exchange
            if exchange is not None and exchange.body_remaining:
                data = exchange.client_body(data)
                if not data:
                    return
            if self.exchange is None and not self.buffer:
                self.start_from(data)
                return
            self.buffer += data
            if self.exchange is None:
                self.start_next()
            elif len(self.buffer) > CLIENT_BUFFER_LIMIT:
                self.pause_reading(_PAUSE_BUFFER)
        except Exception:
            self.internal_error()

    def eof_received(self) -> bool:
        # A client that half-closes is treated as gone, as aiohttp and nginx do: the
        # transport closes, connection_lost abandons the exchange and the runner sees it.
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.server.untrack(self)
        exchange = self.exchange
        self.exchange = None
        if exchange is not None:
            exchange.client_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None:
            self.exchange.pause_upstream_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.progress = self.loop.time()
        if self.exchange is not None:
            self.exchange.resume_upstream_reading()

    # Reading from the client

    def pause_reading(self, reason: ReadPause) -> None:
        """Stop reading from the client for ``reason`` until resumed for it."""
        if not self._read_pauses and self.transport is not None:
            self.transport.pause_reading()
        self._read_pauses.add(reason)

    def resume_reading(self, reason: ReadPause) -> None:
        """Lift one reason for not reading; read again when none is left (the client's
        idle clock restarts: the wait was ours, not its)."""
        if reason in self._read_pauses:
            self._read_pauses.discard(reason)
            if not self._read_pauses and self.transport is not None and not self.closed:
                self.progress = self.loop.time()
                self.transport.resume_reading()

    @property
    def reading_paused(self) -> bool:
        """True while the relay is not reading from the client, for any reason."""
        return bool(self._read_pauses)

    def paused_for(self, reason: ReadPause) -> bool:
        """True while ``reason`` keeps the relay from reading the client."""
        return reason in self._read_pauses

    def take_body(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes already buffered behind the head."""
        if not limit or not self.buffer:
            return b""
        body = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return body

    def start_next(self) -> None:
        """Start the next buffered request: on the lean path, or handed to aiohttp."""
        buffer = self.buffer
        end = buffer.find(HEAD_END)
        if end < 0:
            if len(buffer) > MAX_REQUEST_HEAD:
                self.hand_over()
            return
        if self.context.draining:
            self.close()
            return
        head = parse_request_head(bytes(buffer[:end]))
        if head is None or hands_over(head):
            self.hand_over()
            return
        del buffer[: end + len(HEAD_END)]
        self.exchange = Exchange(self, head)
        self.exchange.start()

    def start_from(self, data: bytes) -> None:
        """``start_next`` for the usual case, a whole request in one read on an idle
        connection: parsed from ``data`` itself, without copying through the buffer."""
        end = data.find(HEAD_END)
        if end < 0 or self.context.draining:
            self.buffer += data
            self.start_next()
            return
        head = parse_request_head(data[:end])
        if head is None or hands_over(head):
            self.buffer += data
            self.hand_over()
            return
        self.exchange = Exchange(self, head)
        self.exchange.start(data[end + len(HEAD_END) :])

    def hand_over(self) -> None:
        """Give the connection, and every byte read so far, to aiohttp's handler."""
        transport = self.transport
        assert transport is not None
        self.server.untrack(self)
        handler = LastRequestGuard(self.server.inner())
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._read_pauses:
            self._read_pauses.clear()
            transport.resume_reading()
        data = bytes(self.buffer)
        self.buffer.clear()
        if data:
            handler.data_received(data)

    # Ending an exchange

    def exchange_done(self, keep_alive: bool) -> None:
        """The answer is written: wait for the next request or close."""
        self.exchange = None
        if self.closed:
            return
        if not keep_alive or self.context.draining:
            self.close()
            return
        self.idle_since = self.loop.time()
        self.resume_reading(_PAUSE_BUFFER)
        if self.buffer:
            self.start_next()

    def close(self) -> None:
        """Close after what is written has been sent."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once: a truncated answer must never look complete."""
        if self.transport is not None:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        """Write to the client unless it has gone."""
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def check_timeouts(self, now: float) -> None:
        """Called by the sweep: close idle connections, time out stalled exchanges."""
        exchange = self.exchange
        if exchange is None:
            if now - self.idle_since > self.context.client_idle_timeout:
                self.close()
            return
        exchange.check_timeouts(now)

    def internal_error(self) -> None:
        """A bug on the lean path: log it, answer 502 if nothing was sent, close."""
        _log.exception("relay_internal_error")
        exchange = self.exchange
        if exchange is not None:
            exchange.internal_error()
        else:
            self.abort()


class Exchange:
    """One request on the lean path: forwarded to the runner, its answer relayed back.

    ``stage`` is where it is (``Stage``; every move goes through ``_transition``). Beside
    it, a few facts that are not stages: ``keep_alive`` (the client connection stays
    open after this answer), ``upstream_reusable`` (the runner connection is in step: its
    answer framing held so far), ``upstream_paused`` (reading the runner is paused
    because the client is slow), ``reused`` (the runner connection came from the pool)
    and ``retried`` (the request was already resent once). When it ends,
    ``runner_connection_fate`` decides what becomes of the runner connection.
    """

    __slots__ = (
        "body_remaining",
        "chunks",
        "client",
        "connect_task",
        "head",
        "keep_alive",
        "pending",
        "request_id",
        "resend",
        "response",
        "response_buffer",
        "response_remaining",
        "retried",
        "reused",
        "route",
        "stage",
        "started",
        "stats",
        "status",
        "upstream",
        "upstream_paused",
        "upstream_progress",
        "upstream_reusable",
    )

    def __init__(self, client: ClientConnection, head: RequestHead) -> None:
        self.client = client
        self.head = head
        self.started = client.loop.time()
        self.route = route_label(head.method, head.target)
        self.body_remaining = head.content_length
        self.status = CLIENT_CLOSED_REQUEST
        self.upstream: UpstreamConnection | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.pending: list[bytes] | None = None
        self.response: ResponseHead | None = None
        self.response_buffer: bytearray | None = bytearray()
        self.response_remaining = 0
        self.chunks: ChunkedScanner | None = None
        self.stage = _CONNECTING
        self.resend: bytes | bytearray | None = None
        self.reused = False
        self.retried = False
        self.keep_alive = head.keep_alive
        self.upstream_paused = False
        self.upstream_reusable = False
        self.upstream_progress = self.started
        self.stats = RequestStats(client_ip=client.peer_ip)
        self.request_id = ""

    def _transition(self, new: Stage) -> None:
        """Move to ``new``; a move ``TRANSITIONS`` does not allow raises StageError (the
        protocol callbacks turn it into a logged 502 or an abort, never a hang)."""
        if new not in TRANSITIONS[self.stage]:  # inline: three moves per request
            check_transition(self.stage, new)
        self.stage = new

    @property
    def request_sent(self) -> bool:
        """The whole request is on the runner connection (none of it is while connecting;
        at DONE, read only where a runner connection was attached)."""
        return self.body_remaining == 0 and self.stage is not _CONNECTING

    # Sending the request

    def _upstream_fields(self) -> tuple[list[tuple[str, str]], str | None]:
        """The header rules of ``forwarding``, as on the aiohttp path."""
        context = self.client.context
        incoming = CIMultiDict(self.head.fields)
        if not self.request_id:
            self.request_id = accept_request_id(incoming, new_request_id)
        facts = ForwardedFacts(self.client.peer_ip, self.client.scheme, self.request_id)
        fields, origin = upstream_fields(
            incoming, facts, context.config.upstream_url, context.policy
        )
        return fields, origin.client_ip

    def start(self, rest: bytes = b"") -> None:
        """Build the upstream head, then send on a pooled connection or open one.

        ``rest`` is what followed the head in the same read, when it was not buffered.
        """
        context = self.client.context
        context.metrics.inflight.inc()  # first: finish() always decrements
        headers, self.stats.client_ip = self._upstream_fields()
        if rest:  # bytes that came with the head: body first, then the next request
            body = rest[: self.body_remaining]
            if len(rest) > len(body):
                self.client.buffer += rest[len(body) :]
        else:
            body = self.client.take_body(self.body_remaining)
        self.body_remaining -= len(body)
        self.stats.bytes_in += len(body)
        self.pending = [serialize_request_head(self.head.method, self.head.target, headers), body]
        conn = context.pool.acquire()
        if conn is not None:
            self.attach(conn, reused=True)
        else:
            self.connect()

    def connect(self) -> None:
        """Open a new runner connection in a task (the only task on this path)."""
        self.connect_task = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        pool = self.client.context.pool
        try:
            conn = await pool.connect()
        except UpstreamError as exc:
            self.connect_task = None
            if self.stage is not _DONE:
                self.fail(exc)
            return
        self.connect_task = None
        if self.stage is _DONE:
            pool.release(conn, self.client.loop.time())
            return
        self.attach(conn, reused=False)

    def attach(self, conn: UpstreamConnection, *, reused: bool) -> None:
        """Send what is pending on ``conn``; the rest of the body follows as it arrives."""
        self.upstream = conn
        self.reused = reused
        conn.exchange = self
        assert conn.transport is not None
        assert self.pending is not None
        data = b"".join(self.pending)
        conn.transport.write(data)
        self.pending = None
        # A copy of the request, for one resend should the pooled connection be stale;
        # body bytes still to come are added as they are forwarded.
        if reused and worth_holding(self.head.method, self.head.content_length, COALESCE_LIMIT):
            self.resend = data if self.body_remaining == 0 else bytearray(data)
        else:
            self.resend = None
        self.upstream_progress = self.client.loop.time()
        self._transition(_WAITING if self.body_remaining == 0 else _SENDING)
        if self.client.write_paused:
            self.pause_upstream_reading()
        self.client.resume_reading(_PAUSE_PENDING)

    def client_body(self, data: bytes) -> bytes:
        """Forward body bytes; return what lies beyond this request's body."""
        remaining = self.body_remaining
        if len(data) <= remaining:
            part, rest = data, b""
        else:
            part, rest = data[:remaining], data[remaining:]
        self.body_remaining = remaining - len(part)
        self.stats.bytes_in += len(part)
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(part)
            if self.resend is not None:
                self.resend += part
        elif self.pending is not None:
            self.pending.append(part)
            if sum(map(len, self.pending)) > CLIENT_BUFFER_LIMIT:
                self.client.pause_reading(_PAUSE_PENDING)
        if self.body_remaining == 0:
            if self.stage is _SENDING:
                self._transition(_WAITING)
            self.upstream_progress = self.client.loop.time()
        return rest

    # Relaying the answer

    def upstream_data(self, data: bytes) -> None:
        """Bytes from the runner: the head first, then the body."""
        try:
            self.upstream_progress = self.client.loop.time()
            if self.response is None:
                self._read_head(data)
            else:
                self._relay_body(data)
        except Exception:
            self.client.internal_error()

    def _read_head(self, data: bytes) -> None:
        buffer = self.response_buffer
        assert buffer is not None
        buffer += data
        end = buffer.find(HEAD_END)
        if end < 0 or end > MAX_RESPONSE_HEAD:  # the cap holds however the bytes arrived
            if len(buffer) > MAX_RESPONSE_HEAD:
                self.fail(
                    UpstreamError(ProxyStatus.HTTP_RESPONSE_HEADER_SECTION_SIZE, "HeadTooLarge")
                )
            return
        try:
            response = parse_response_head(bytes(buffer[:end]), self.head.method)
        except ResponseHeadError as exc:
            self.fail(UpstreamError(ProxyStatus.HTTP_PROTOCOL_ERROR, str(exc)))
            return
        rest = bytes(buffer[end + len(HEAD_END) :])
        if response.status < 200:  # interim answers (100, 103) are not relayed
            if response.status == 101:
                self.fail(UpstreamError(ProxyStatus.HTTP_PROTOCOL_ERROR, "unasked 101"))
                return
            buffer.clear()
            if rest:
                self._read_head(rest)
            return
        self.response_buffer = None
        self._start_response(response, rest)

    def _start_response(self, response: ResponseHead, rest: bytes) -> None:
        self._transition(_RELAYING)
        self.response = response
        self.status = response.status
        stats = self.stats
        stats.upstream_ms = (self.client.loop.time() - self.started) * 1000
        stats.upstream_status = response.status
        self.upstream_reusable = response.reusable
        self.keep_alive = (
            self.keep_alive and self.body_remaining == 0 and not self.client.context.draining
        )
        framing = response.framing
        added: list[tuple[str, str]] = [("X-Request-ID", self.request_id)]
        if framing is _CHUNKED or framing is _CLOSE:
            added.append(("Transfer-Encoding", "chunked"))
        if not self.keep_alive:
            added.append(("Connection", "close"))
        head = relayed_response_head(response, _dropped(framing, response.nominated), added)
        if framing is _NONE:
            self.upstream_reusable = self.upstream_reusable and not rest
            self.client.write(head)
            self.finish()
        elif framing is _LENGTH:
            self.response_remaining = response.content_length
            self._relay_length(rest, head)
        elif framing is _CHUNKED:
            self.chunks = ChunkedScanner()
            self._relay_chunked(rest, head)
        else:
            self.client.write(head + rechunk(rest) if rest else head)
            self.stats.bytes_out += len(rest)

    def _relay_body(self, data: bytes) -> None:
        response = self.response
        assert response is not None
        framing = response.framing
        if framing is _LENGTH:
            self._relay_length(data, b"")
        elif framing is _CHUNKED:
            self._relay_chunked(data, b"")
        elif framing is _CLOSE:
            self.client.write(rechunk(data))
            self.stats.bytes_out += len(data)
        else:  # bytes after a body-less answer: the connection is out of step
            self.upstream_reusable = False

    def _relay_length(self, data: bytes, head: bytes) -> None:
        remaining = self.response_remaining
        if len(data) >= remaining:
            part = data[:remaining] if len(data) > remaining else data
            self.upstream_reusable = self.upstream_reusable and len(data) == remaining
            self.response_remaining = 0
            self.stats.bytes_out += len(part)
            self.client.write(head + part if head else part)
            self.finish()
            return
        self.response_remaining = remaining - len(data)
        self.stats.bytes_out += len(data)
        self.client.write(head + data if head else data)

    def _relay_chunked(self, data: bytes, head: bytes) -> None:
        assert self.chunks is not None
        try:
            end = self.chunks.feed(data)
        except ChunkedError as exc:
            if head:
                self.client.write(head)
            self.abort_mid_body(UpstreamError(ProxyStatus.HTTP_RESPONSE_INCOMPLETE, str(exc)))
            return
        if end < 0:
            self.stats.bytes_out += len(data)
            self.client.write(head + data if head else data)
            return
        self.upstream_reusable = self.upstream_reusable and end == len(data)
        part = data[:end]
        self.stats.bytes_out += len(part)
        self.client.write(head + part if head else part)
        self.finish()

    def upstream_lost(self, exc: BaseException | None) -> None:
        """The runner connection closed while this exchange owned it."""
        self.upstream = None
        if self.stage is _DONE:
            return
        response = self.response
        detail = type(exc).__name__ if exc is not None else "ServerDisconnected"
        if response is None:
            failure = UpstreamError(ProxyStatus.CONNECTION_TERMINATED, detail)
            resend = self.resend
            if resend is not None and may_resend(
                self.head.method,
                body_held=self.body_remaining == 0,  # else the client is still sending it
                reused=self.reused,
                failure=failure.proxy_status,
                answer_started=bool(self.response_buffer),
                resent=self.retried,
            ):
                self.retried = True
                _log.info(
                    "stale_connection_retry",
                    method=self.head.method,
                    error=detail,
                    request_id=self.request_id,
                )
                self.pending = [bytes(resend)]
                self.response_buffer = bytearray()
                self._transition(_CONNECTING)
                self.connect()
                return
            self.fail(failure)
        elif response.framing is _CLOSE:
            self.upstream_reusable = False
            self.client.write(LAST_CHUNK)
            self.finish()
        else:
            self.abort_mid_body(UpstreamError(ProxyStatus.HTTP_RESPONSE_INCOMPLETE, detail))

    # Flow control from the client side

    def pause_upstream_reading(self) -> None:
        """The client is not keeping up: stop reading the runner."""
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None and not self.upstream_paused:
            upstream.transport.pause_reading()
            self.upstream_paused = True

    def resume_upstream_reading(self) -> None:
        """The client drained: read the runner again."""
        upstream = self.upstream
        self.upstream_progress = self.client.loop.time()
        if upstream is not None and upstream.transport is not None and self.upstream_paused:
            self.upstream_paused = False
            upstream.transport.resume_reading()

    # Failures

    def fail(self, exc: UpstreamError) -> None:
        """No answer head was relayed: answer 502/504 ourselves."""
        self.stats.upstream_error = exc.kind
        _log.warning("upstream_failed", kind=exc.kind, error=exc.detail, request_id=self.request_id)
        self.upstream_reusable = False
        self.keep_alive = self.keep_alive and self.body_remaining == 0
        self.answer(upstream_error_answer(exc))
        self.finish()

    def answer(self, answer: AdapterAnswer) -> None:
        """Write one of the adapter's own answers (nothing of the runner's was relayed)."""
        headers, body = answer.render(self.request_id)
        fields = [*headers.items(), ("Content-Length", str(len(body)))]
        if not self.keep_alive:
            fields.append(("Connection", "close"))
        self.status = answer.status
        self.stats.bytes_out += len(body)
        self.client.write(serialize_response_head(answer.status, answer.reason, fields) + body)

    def abort_mid_body(self, exc: UpstreamError) -> None:
        """The runner failed after the head went out: abort the client connection."""
        self.stats.upstream_error = exc.kind
        self.stats.aborted = "upstream"
        self.upstream_reusable = False
        self.keep_alive = False
        _log.warning(
            "upstream_failed_mid_body",
            kind=exc.kind,
            error=exc.detail,
            request_id=self.request_id,
        )
        self.client.abort()
        self.finish()

    def client_lost(self) -> None:
        """The client went away: abandon the runner connection so it sees the abort."""
        if self.stage is _DONE:
            return
        self.stats.aborted = self.stats.aborted or "client"
        self.status = CLIENT_CLOSED_REQUEST
        self.upstream_reusable = False
        _log.info("client_disconnected", request_id=self.request_id)
        self.finish()

    def check_timeouts(self, now: float) -> None:
        """The sweep's check: a stalled client or a silent runner ends the exchange."""
        client = self.client
        idle_limit = client.context.client_idle_timeout
        upstream_limit = client.context.config.upstream_timeout
        # A body the relay itself stopped reading (the runner is slow to take it) is not
        # the client's stall; the runner gets upstream_timeout to take the next bytes.
        body_stalled = self.body_remaining and not client.reading_paused
        if (body_stalled or client.write_paused) and now - client.progress > idle_limit:
            self.stats.aborted = "client_timeout"
            self.keep_alive = False
            self.upstream_reusable = False
            _log.info("client_timeout", request_id=self.request_id)
            if self.response is None and not client.write_paused:
                # A stalled body: answer 408 as the aiohttp path does, then close.
                self.answer(CLIENT_TIMEOUT_ANSWER)
                client.close()
            else:
                client.abort()
            self.finish()
            return
        upload_blocked = self.body_remaining and client.paused_for(_PAUSE_UPSTREAM)
        if (
            (self.request_sent or upload_blocked)
            and self.upstream is not None
            and not self.upstream_paused
            and now - self.upstream_progress > upstream_limit
        ):
            if self.response is None:
                self.fail(UpstreamError(ProxyStatus.HTTP_RESPONSE_TIMEOUT, "ReadTimeout"))
            else:
                self.abort_mid_body(UpstreamError(ProxyStatus.HTTP_RESPONSE_TIMEOUT, "ReadTimeout"))

    def internal_error(self) -> None:
        """A bug: answer 502 if nothing was relayed yet, else abort; never hang."""
        self.upstream_reusable = False
        self.keep_alive = False
        if self.stage is not _RELAYING and self.stage is not _DONE:
            self.answer(ADAPTER_ERROR_ANSWER)
        else:
            self.client.abort()
        self.finish()

    # The end

    def finish(self) -> None:
        """Record the request, return or drop the runner connection, free the client."""
        if self.stage is _DONE:
            return
        self._transition(_DONE)  # first: whatever the closes below set off finds it ended
        client = self.client
        context = client.context
        now = client.loop.time()
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            fate = runner_connection_fate(
                request_sent=self.request_sent,
                in_step=self.upstream_reusable,
                abandoned=self.stats.aborted is not None,
                closed=upstream.closed,
            )
            if fate is _RELEASE:
                if self.upstream_paused:
                    assert upstream.transport is not None
                    upstream.transport.resume_reading()
                context.pool.release(upstream, now)
            elif fate is _ABORT:
                upstream.abort()
            else:
                upstream.close()
        finish_request(
            context.metrics,
            client.log,
            request_id=self.request_id,
            method=self.head.method,
            target=self.head.target,
            route=self.route,
            status=self.status,
            seconds=now - self.started,
            stats=self.stats,
            peer_ip=client.peer_ip,
        )
        client.exchange_done(self.keep_alive)


class RelayServer(ServerStandIn):
    """The proxy port's protocol factory: lean connections, handed to ``inner`` (aiohttp's
    server for the proxy app) when a request is not theirs to relay."""

    def __init__(self, inner: web.Server, context: RelayContext) -> None:
        super().__init__()
        self.inner = inner
        self.context = context
        self._lean: set[ClientConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._interval = sweep_interval(
            context.client_idle_timeout, context.config.upstream_timeout
        )
        self._emptied: asyncio.Event | None = None

    def __call__(self) -> ClientConnection:  # type: ignore[override]
        return ClientConnection(self)

    @property
    def connections(self) -> list[web.RequestHandler]:
        """aiohttp's connections (those handed over)."""
        return self.inner.connections

    def track(self, conn: ClientConnection) -> None:
        """A lean connection opened; start the timeout sweep with the first."""
        self._lean.add(conn)
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._interval, self._sweep, loop)

    def untrack(self, conn: ClientConnection) -> None:
        """A lean connection closed or was handed over."""
        self._lean.discard(conn)
        if not self._lean and self._emptied is not None:
            self._emptied.set()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in list(self._lean):
            try:
                conn.check_timeouts(now)
            except Exception:
                conn.internal_error()
        self.context.pool.sweep(now)
        self._sweeper = loop.call_later(self._interval, self._sweep, loop)

    def pre_shutdown(self) -> None:
        """Draining starts: idle lean connections close, busy ones close after their answer."""
        self.context.draining = True
        for conn in list(self._lean):
            if conn.exchange is None:
                conn.close()
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - Server's signature
        """Wait up to ``timeout`` for lean exchanges and aiohttp's handlers to finish."""
        await asyncio.gather(self._drain(timeout), self.inner.shutdown(timeout))
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _drain(self, grace: float | None) -> None:
        if self._lean:
            self._emptied = asyncio.Event()
            try:
                async with asyncio.timeout(grace):
                    await self._emptied.wait()
            except TimeoutError:
                _log.warning("drain_timeout", open_connections=len(self._lean))
        for conn in list(self._lean):
            conn.abort()


UPSTREAM_POOL: Final = web.AppKey("upstream_pool", UpstreamPool)


__all__ = (
    "POOL_IDLE_TIMEOUT",
    "TRANSITIONS",
    "UPSTREAM_POOL",
    "ClientConnection",
    "Exchange",
    "Fate",
    "ReadPause",
    "RelayContext",
    "RelayServer",
    "Stage",
    "StageError",
    "UpstreamConnection",
    "UpstreamPool",
    "check_transition",
    "hands_over",
    "runner_connection_fate",
    "sweep_interval",
)

"""Pass-through to the runner: one shared upstream session, bodies streamed both ways.

The I/O shell around ``forwarding``: it reads the request, asks the pure functions for
headers, makes exactly one upstream call and streams the answer back. The primitives
(``UpstreamClient``, ``request_body``, ``upstream_headers``, ``relay_response``,
``upstream_error_response``) are reused by the cross-region rewrite, which is installed
under ``JOBS_SUBMIT_HANDLER``.

Request bodies: aiohttp's server inflates ``Content-Encoding``'d request bodies unless
the runner is built with ``auto_decompress=False`` (aiohttp#5957, exposed as a request
handler option in 3.x). The proxy port must run with ``PROXY_SERVER_OPTIONS`` so the
bytes we forward are the bytes the client sent, still matching their Content-Encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from adapter.config import Config
from adapter.http.aiohttp_seams import disable_builtin_retry
from adapter.http.client_pool import IsolatingConnector
from adapter.http.errors import (
    AdapterAnswer,
    ProxyStatus,
    UpstreamError,
    classify_upstream_failure,
    upstream_error_answer,
)
from adapter.http.forwarding import (
    X_REQUEST_ID,
    ClientIpPolicy,
    ForwardedFacts,
    build_upstream_headers,
    strip_hop_by_hop,
)
from adapter.http.http1 import (
    MAX_REQUEST_FIELD,
    MAX_REQUEST_FIELDS,
    MAX_REQUEST_LINE,
    MAX_RESPONSE_FIELDS,
    MAX_RESPONSE_HEAD,
)
from adapter.http.record import RequestStats
from adapter.http.retry import may_resend
from adapter.http.routing import JOBS_SUBMIT_PATH
from adapter.log import get_logger
from adapter.metrics import Metrics

# Options for the proxy port's AppRunner: raw request bodies, a client that goes away
# cancels its handler (and with it the upstream request), and the request limits.
PROXY_SERVER_OPTIONS: Final[Mapping[str, Any]] = {
    "auto_decompress": False,
    "handler_cancellation": True,
    "max_line_size": MAX_REQUEST_LINE,
    "max_field_size": MAX_REQUEST_FIELD,
    "max_headers": MAX_REQUEST_FIELDS,
}
# aiohttp adds these to outgoing requests unless told not to; a transparent proxy must not.
_SKIP_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# Bodies up to this size (by Content-Length) are read whole and sent in one write, both
# ways; larger or chunked ones stream with flat memory.
COALESCE_LIMIT: Final = 64 * 1024
# Largest piece of a streamed request body read at once.
_STREAM_READ: Final = 64 * 1024

_log = get_logger("adapter.proxy")


class ClientBodyTimeout(Exception):
    """The client sent no request-body bytes for ``client_idle_timeout`` seconds: it is
    answered 408 (if nothing was answered yet) and its connection closed."""


async def read_client_body(request: web.Request, size: int = -1) -> bytes:
    """``request.content.read(size)``, but a client that sends nothing for the client
    idle timeout raises ClientBodyTimeout instead of holding the connection forever."""
    try:
        async with asyncio.timeout(request.app[CONFIG].client_idle_timeout):
            return await request.content.read(size)
    except TimeoutError:
        request_stats(request).aborted = "client_timeout"
        raise ClientBodyTimeout from None


@dataclass(slots=True)
class _Attempt:
    """Per-attempt trace state: did the request ride a pooled keep-alive connection?"""

    reused: bool = False


async def _on_connection_reuse(
    session: aiohttp.ClientSession, context: Any, params: object
) -> None:
    # Only send() passes an _Attempt; the WebSocket relay's ws_connect passes nothing.
    if isinstance(context.trace_request_ctx, _Attempt):
        context.trace_request_ctx.reused = True


def _reuse_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_on_connection_reuse)
    return trace


def refuse_unrequested_switch(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    """A 101 answers only an upgrade the client asked for (RFC 9110 §15.2.2), and no
    request sent here asks for one (Upgrade is hop-by-hop; the WebSocket relay has its
    own handshake): the runner connection is closed and the client gets a 502."""
    if response.status == 101:
        response.close()
        raise UpstreamError(ProxyStatus.HTTP_PROTOCOL_ERROR, "unrequested 101")
    return response


class UpstreamClient:
    """The one upstream ClientSession of an app: no cookie jar, no decompression, and
    no retries except a safe request whose pooled connection had gone stale."""

    def __init__(self, origin: URL, session: aiohttp.ClientSession) -> None:
        self._origin = str(origin.origin())
        self.session = session

    @classmethod
    def create(cls, config: Config) -> UpstreamClient:
        """Open the session; call ``close()`` when the app stops."""
        session = aiohttp.ClientSession(
            # A shared jar would hand one client's cookies to the next.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Bytes and Content-Encoding stay in step: decoded bytes under the original
            # Content-Encoding would be decoded twice by the client.
            auto_decompress=False,
            # Connect covers waiting for a pooled connection too; sock_read is "no
            # progress for this long", so a slow but moving download is never cut.
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=config.upstream_connect_timeout,
                sock_read=config.upstream_timeout,
            ),
            # No pool cap: open WebSockets hold connections for hours. A pooled
            # connection is reused only if nothing but its answer arrived on it.
            connector=IsolatingConnector(limit=0, limit_per_host=0),
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            # The relay's response limits (the total is AnswerEnd's to enforce).
            max_line_size=MAX_RESPONSE_HEAD,
            max_field_size=MAX_RESPONSE_HEAD,
            max_headers=MAX_RESPONSE_FIELDS,
            trace_configs=[_reuse_trace()],
        )
        # aiohttp re-sends PUT and DELETE too when a connection drops, whether or not it was
        # a pooled one; the proxy makes that call itself, for safe methods only (send()).
        disable_builtin_retry(session)
        return cls(config.upstream_url, session)

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        await self.session.close()

    def url(self, path_qs: str) -> URL:
        """The upstream URL for a raw path and query, byte for byte (no normalisation)."""
        return URL(self._origin + path_qs, encoded=True)

    async def send(
        self,
        method: str,
        path_qs: str,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> aiohttp.ClientResponse:
        """Send one request and return the response once its headers arrived.

        Raises UpstreamError; the caller owns the response and must release or close it.
        A safe request that failed on a stale pooled connection is sent once more.
        """
        url = self.url(path_qs)
        for last_try in (False, True):
            attempt = _Attempt()
            try:
                response = await self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=None,
                    trace_request_ctx=attempt,
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = classify_upstream_failure(exc)
                if not may_resend(
                    method,
                    body_held=body is None or isinstance(body, bytes),
                    reused=attempt.reused,
                    failure=failure.proxy_status,
                    # aiohttp does not tell a half-read head apart (its own retry
                    # assumes the same); a whole head returns from request().
                    answer_started=False,
                    resent=last_try,
                ):
                    raise failure from exc
                _log.info("stale_connection_retry", method=method, error=failure.detail)
                continue
            return refuse_unrequested_switch(response)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# Typed app and request state. The proxy app owns all of them (created in app.py).
CONFIG: Final = web.AppKey("config", Config)
METRICS: Final = web.AppKey("metrics", Metrics)
UPSTREAM: Final = web.AppKey("upstream", UpstreamClient)
JOBS_SUBMIT_HANDLER: Final[web.AppKey[Callable[[web.Request], Awaitable[web.StreamResponse]]]] = (
    web.AppKey("jobs_submit_handler")
)
REQUEST_ID: Final = web.RequestKey("request_id", str)
REQUEST_STATS: Final = web.RequestKey("request_stats", RequestStats)


def new_request_id() -> str:
    """32 lower-case hex characters, the runner's own format."""
    return secrets.token_hex(16)


def raw_path_qs(request: web.BaseRequest) -> str:
    """The request target exactly as the client sent it (origin form)."""
    raw = request.raw_path
    if raw.startswith("/"):
        return raw
    # Absolute form (GET http://host/path): keep only path and query, still raw.
    return request.rel_url.raw_path_qs


def request_stats(request: web.BaseRequest) -> RequestStats:
    """This request's stats (a throwaway object when the middleware did not set one)."""
    return request.get(REQUEST_STATS) or RequestStats()


def upstream_headers(request: web.BaseRequest, config: Config, request_id: str) -> CIMultiDict[str]:
    """Headers for the upstream request; records the resolved client IP in the stats."""
    policy = ClientIpPolicy(config.trusted_proxy_hops, config.client_ip_header)
    facts = ForwardedFacts(peer_ip=request.remote, scheme=request.scheme, request_id=request_id)
    headers, origin = build_upstream_headers(request.headers, facts, config.upstream_url, policy)
    request_stats(request).client_ip = origin.client_ip
    return headers


def request_body(request: web.Request, prefix: bytes = b"") -> AsyncIterable[bytes] | None:
    """Stream the client body (``prefix`` first: bytes an interceptor already read).

    None when there is no body at all, so no body and no framing is sent upstream.
    """
    if not prefix and not request.body_exists:
        return None
    return _streamed_body(request, prefix)


async def read_small_body(request: web.Request) -> bytes | AsyncIterable[bytes] | None:
    """The client body: None when there is none, all of it when its Content-Length is at
    most ``COALESCE_LIMIT`` (one upstream write, no generator), else a stream."""
    if not request.body_exists:
        return None
    length = request.content_length
    if length is None or length > COALESCE_LIMIT:
        return _streamed_body(request, b"")
    body = await read_client_body(request)
    request_stats(request).bytes_in += len(body)
    return body


def _streamed_body(request: web.Request, prefix: bytes) -> AsyncIterator[bytes]:
    stats = request_stats(request)

    async def chunks() -> AsyncIterator[bytes]:
        if prefix:
            stats.bytes_in += len(prefix)
            yield prefix
        while chunk := await read_client_body(request, _STREAM_READ):
            stats.bytes_in += len(chunk)
            yield chunk

    return chunks()


async def relay_response(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    *,
    extra_headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Stream the upstream response to the client and release the upstream connection.

    Hop-by-hop fields are dropped, repeated fields kept, Content-Length kept when the
    runner sent one (else the answer is chunked), bytes untouched (gzip stays gzip).
    If the runner fails mid-body the client connection is aborted, so a truncated body
    never looks complete.
    """
    stats = request_stats(request)
    stats.upstream_status = upstream.status
    headers = strip_hop_by_hop(upstream.headers)
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        headers[X_REQUEST_ID] = request_id
    for name, value in (extra_headers or {}).items():
        headers[name] = value
    if _is_small_body(request.method, upstream):
        try:
            body = await upstream.content.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            upstream.close()
            # As on the streamed path: the client sees the head, then a broken body.
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=headers
            )
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
            return _abort_mid_body(request, response, stats, exc)
        upstream.release()
        # Head and body leave in one write when aiohttp sends the returned response.
        stats.bytes_out += len(body)
        return web.Response(
            status=upstream.status, reason=upstream.reason, headers=headers, body=body
        )
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    finished = False
    try:
        await response.prepare(request)
        while True:
            # Reads and writes are apart so a failure is blamed on the right side.
            try:
                chunk = await upstream.content.readany()
            except (TimeoutError, aiohttp.ClientError) as exc:
                return _abort_mid_body(request, response, stats, exc)
            if not chunk:
                break
            await response.write(chunk)
            stats.bytes_out += len(chunk)
        finished = True
    except ConnectionError:
        stats.aborted = "client"
        _log.info("client_disconnected", during="response")
        return response
    finally:
        if finished:
            upstream.release()
        else:
            upstream.close()
    await response.write_eof()
    return response


def _is_small_body(method: str, upstream: aiohttp.ClientResponse) -> bool:
    """A body with a Content-Length up to ``COALESCE_LIMIT`` is read whole and sent with
    the head in one write; HEAD, 1xx, 204 and 304 answers carry no body to read."""
    length = upstream.content_length
    return (
        length is not None
        and length <= COALESCE_LIMIT
        and method != "HEAD"
        and upstream.status >= 200
        and upstream.status not in (204, 304)
    )


def _abort_mid_body(
    request: web.BaseRequest, response: web.StreamResponse, stats: RequestStats, exc: BaseException
) -> web.StreamResponse:
    """The runner failed mid-body: record it and abort the client connection, so a
    truncated body never looks complete."""
    failure = classify_upstream_failure(exc)
    stats.upstream_error = failure.kind
    stats.aborted = "upstream"
    _log.warning("upstream_failed_mid_body", kind=failure.kind, error=failure.detail)
    if request.transport is not None:
        request.transport.abort()
    return response


def adapter_response(answer: AdapterAnswer, request_id: str) -> web.Response:
    """``answer`` as an aiohttp response."""
    headers, body = answer.render(request_id)
    return web.Response(status=answer.status, body=body, headers=headers)


async def answer_and_close(request: web.BaseRequest, response: web.Response) -> web.Response:
    """Write one of the adapter's own final answers (408, 400) now and close the
    connection right after it, as the lean relay does. Without this aiohttp would first
    read on for up to ten seconds ("lingering") to drain a body nobody will use; it still
    does so after the runner's answers, so a client mid-upload gets to read them."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def upstream_error_response(request_id: str, exc: UpstreamError) -> web.Response:
    """The 502/504 answer when the runner could not be reached or did not answer in time."""
    return adapter_response(upstream_error_answer(exc), request_id)


async def pass_through(request: web.Request) -> web.StreamResponse:
    """Forward the request unchanged (bar the header rules) and relay the answer."""
    config = request.app[CONFIG]
    request_id = request.get(REQUEST_ID) or new_request_id()
    headers = upstream_headers(request, config, request_id)
    started = asyncio.get_running_loop().time()
    body = await read_small_body(request)
    upstream = await request.app[UPSTREAM].send(request.method, raw_path_qs(request), headers, body)
    request_stats(request).upstream_ms = (asyncio.get_running_loop().time() - started) * 1000
    return await relay_response(request, upstream)


__all__ = (
    "CONFIG",
    "JOBS_SUBMIT_HANDLER",
    "JOBS_SUBMIT_PATH",
    "METRICS",
    "PROXY_SERVER_OPTIONS",
    "REQUEST_ID",
    "REQUEST_STATS",
    "UPSTREAM",
    "ClientBodyTimeout",
    "UpstreamClient",
    "adapter_response",
    "answer_and_close",
    "new_request_id",
    "pass_through",
    "raw_path_qs",
    "read_client_body",
    "refuse_unrequested_switch",
    "relay_response",
    "request_body",
    "request_stats",
    "upstream_error_response",
    "upstream_headers",
)

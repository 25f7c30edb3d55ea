"""Wiring: the proxy application (every path belongs to the runner) and its admin app.

``create_app`` builds the proxy app: one catch-all route, one outer middleware that gives
each request its id, log context, metrics and canonical log line, and turns anything
unexpected into a 502 (never a bare 500). The upstream session lives in ``cleanup_ctx``.
Run the proxy app with ``make_proxy_runner`` so request bodies stay raw.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

from adapter import __version__
from adapter.admin import PROXY_APP, READINESS, Readiness, create_admin_app
from adapter.config import Config
from adapter.http.aiohttp_seams import ServerWrappingRunner
from adapter.http.errors import ADAPTER_ERROR_ANSWER, CLIENT_TIMEOUT_ANSWER, UpstreamError
from adapter.http.forwarding import X_REQUEST_ID, ClientIpPolicy, accept_request_id
from adapter.http.last_request import GuardedServer
from adapter.http.proxy import (
    CONFIG,
    JOBS_SUBMIT_HANDLER,
    METRICS,
    PROXY_SERVER_OPTIONS,
    REQUEST_ID,
    REQUEST_STATS,
    UPSTREAM,
    ClientBodyTimeout,
    UpstreamClient,
    adapter_response,
    answer_and_close,
    new_request_id,
    pass_through,
    upstream_error_response,
)
from adapter.http.record import CLIENT_CLOSED_REQUEST, RequestStats, finish_request
from adapter.http.refusals import request_refusal
from adapter.http.relay import UPSTREAM_POOL, RelayContext, RelayServer, UpstreamPool
from adapter.http.routing import is_jobs_submit, route_label
from adapter.http.websocket import (
    OPEN_WEBSOCKETS,
    close_open_websockets,
    is_websocket_upgrade,
    relay_websocket,
)
from adapter.log import get_logger
from adapter.metrics import Metrics
from adapter.replay_store import replay_store_ctx
from adapter.rewrite_guard import REWRITE_GUARD, RewriteGuard
from adapter.submission import handle_jobs_submit

_log = get_logger("adapter.app")


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The one route: the jobs-submit interceptor if installed, WebSocket, or pass-through
    (after the request is checked for what must never be forwarded)."""
    refusal = request_refusal(request.raw_headers, request.raw_path, request.content_length)
    if refusal is not None:
        response = adapter_response(refusal, request.get(REQUEST_ID) or new_request_id())
        return await answer_and_close(request, response)
    if is_jobs_submit(request.method, request.raw_path):
        interceptor = request.app.get(JOBS_SUBMIT_HANDLER)
        if interceptor is not None:
            return await interceptor(request)
    if is_websocket_upgrade(request):
        return await relay_websocket(request)
    return await pass_through(request)


async def _client_timeout_response(request: web.Request, request_id: str) -> web.Response:
    """408 for a client that stopped sending its body; the connection is closed after."""
    return await answer_and_close(request, adapter_response(CLIENT_TIMEOUT_ANSWER, request_id))


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, log context, in-flight gauge, metrics, canonical log line, and the
    catch-all: UpstreamError becomes 502/504, any other exception a logged 502."""
    metrics = request.app[METRICS]
    loop = asyncio.get_running_loop()
    request_id = accept_request_id(request.headers, new_request_id)
    request[REQUEST_ID] = request_id
    stats = RequestStats()
    request[REQUEST_STATS] = stats
    route = route_label(request.method, request.raw_path)
    status = CLIENT_CLOSED_REQUEST
    started = loop.time()
    metrics.inflight.inc()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            try:
                response = await handler(request)
            except ClientBodyTimeout:
                _log.info("client_body_timeout")
                response = await _client_timeout_response(request, request_id)
            except UpstreamError as exc:
                if stats.aborted == "client_timeout":  # the stalled body broke the upload
                    _log.info("client_body_timeout", upstream_error=exc.detail)
                    response = await _client_timeout_response(request, request_id)
                else:
                    stats.upstream_error = exc.kind
                    _log.warning("upstream_failed", kind=exc.kind, error=exc.detail)
                    response = upstream_error_response(request_id, exc)
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                stats.aborted = stats.aborted or "client"
                raise
            except Exception:
                _log.exception("unhandled_error")
                response = adapter_response(ADAPTER_ERROR_ANSWER, request_id)
            status = response.status
            if isinstance(response, web.Response) and response.body_length:
                stats.bytes_out += response.body_length
            return response
        finally:
            finish_request(
                metrics,
                _log.bind(),  # one bind per request, as a plain _log.info would do
                request_id=request_id,
                method=request.method,
                target=request.raw_path,
                route=route,
                status=status,
                seconds=loop.time() - started,
                stats=stats,
                peer_ip=request.remote,
            )


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, whoever built it, carries the request's X-Request-ID."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[X_REQUEST_ID] = request_id


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    client = UpstreamClient.create(app[CONFIG])
    app[UPSTREAM] = client
    pool = UpstreamPool(app[CONFIG])
    app[UPSTREAM_POOL] = pool
    try:
        yield
    finally:
        await pool.close()
        await client.close()


def create_app(
    config: Config,
    *,
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
) -> web.Application:
    """The proxy app, with the cross-region rewrite installed on POST /api/v1/jobs."""
    app = web.Application(middlewares=[observe])
    app[CONFIG] = config
    app[METRICS] = Metrics.create(registry or CollectorRegistry(), __version__)
    app[READINESS] = readiness or Readiness()
    app[OPEN_WEBSOCKETS] = set()
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(replay_store_ctx)
    app[REWRITE_GUARD] = RewriteGuard(config.guard, app[METRICS])
    _warn_about_replay_protection(config)
    app.on_response_prepare.append(_stamp_request_id)
    app.on_shutdown.append(close_open_websockets)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app[JOBS_SUBMIT_HANDLER] = handle_jobs_submit
    app[METRICS].rollout_percent.set(config.rewrite.policy.percent)
    return app


def _warn_about_replay_protection(config: Config) -> None:
    """Say at start-up who guards against replays of rewritten jobs."""
    if config.rewrite.trust_enforce and config.replay.redis_url is None:
        _log.warning(
            "replay_protection_runner_only",
            detail="ADAPTER_TRUST_ENFORCE=true without ADAPTER_REPLAY_REDIS_URL: rewritten "
            "jobs skip the runner's nonce check; replay protection is the standard route's alone",
        )
    elif not config.rewrite.trust_enforce and config.replay.redis_url is not None:
        _log.info(
            "replay_check_off",
            detail="ADAPTER_REPLAY_REDIS_URL is set but ADAPTER_TRUST_ENFORCE is false: "
            "the runner checks nonces only with enforcement on, so the adapter does not either",
        )


class ProxyRunner(ServerWrappingRunner):
    """The proxy app's runner: plain requests go through ``adapter.http.relay``, the rest (and
    every request when ``lean_relay`` is off) through aiohttp's server."""

    def __init__(self, app: web.Application, *, client_idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=client_idle_timeout, **kwargs)
        self._client_idle_timeout = client_idle_timeout

    def wrap_server(self, inner: web.Server) -> web.Server:
        config = self.app[CONFIG]
        if not config.lean_relay:
            return GuardedServer(inner)
        context = RelayContext(
            config=config,
            metrics=self.app[METRICS],
            pool=self.app[UPSTREAM_POOL],
            policy=ClientIpPolicy(config.trusted_proxy_hops, config.client_ip_header),
            client_idle_timeout=self._client_idle_timeout,
        )
        return RelayServer(inner, context)


def make_proxy_runner(
    app: web.Application, *, client_idle_timeout: float | None = None
) -> web.AppRunner:
    """The runner the proxy app must run under: the lean relay in front, raw request
    bodies, handler cancellation on client disconnect, shutdown grace from the config,
    no access log (the canonical line replaces it), idle client connections closed."""
    config = app[CONFIG]
    return ProxyRunner(
        app,
        client_idle_timeout=client_idle_timeout or config.client_idle_timeout,
        access_log=None,
        shutdown_timeout=config.shutdown_grace,
        **PROXY_SERVER_OPTIONS,
    )


def make_admin_runner(admin_app: web.Application) -> web.AppRunner:
    """The AppRunner for the admin app."""
    return web.AppRunner(
        admin_app, access_log=None, shutdown_timeout=admin_app[PROXY_APP][CONFIG].shutdown_grace
    )


__all__ = (
    "ProxyRunner",
    "create_admin_app",
    "create_app",
    "dispatch",
    "make_admin_runner",
    "make_proxy_runner",
    "observe",
)

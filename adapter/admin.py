"""The admin port: liveness, readiness, metrics and job lookups, apart from the proxy port.

The proxy port belongs to the runner (its own /health and /metrics pass through), so the
adapter's own endpoints live here. Readiness follows a background probe of the runner's
``GET /health`` and turns 503 as soon as the process starts draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.aiohttp import make_aiohttp_handler

from adapter.backfill import (
    OUTCOME_CANDIDATE,
    OUTCOME_FAILED,
    OUTCOME_WRITTEN,
    RunnerDatabase,
    SchemaBlocked,
    backfill_job,
    ensure_schema,
    job_status,
    open_database,
)
from adapter.http.errors import UpstreamError, classify_upstream_failure, upstream_error_answer
from adapter.http.proxy import CONFIG, METRICS, UPSTREAM, UpstreamClient, new_request_id
from adapter.jobs.workflow import RunnerAnswer, Workflow, classify, needs_job_lookup
from adapter.log import get_logger
from adapter.runnerdb import DatabaseError, Timeouts
from adapter.submission import rewrite_status

DEFAULT_PROBE_INTERVAL: Final = 5.0
# Readiness survives this many missed probes before turning 503.
PROBE_GRACE_INTERVALS: Final = 3
HEALTH_PATH: Final = "/health"

_log = get_logger("adapter.admin")


@dataclass(slots=True)
class Readiness:
    """Mutable readiness state shared by the probe, the drain and /readyz."""

    probe_interval: float = DEFAULT_PROBE_INTERVAL
    last_ok: float | None = None
    last_failure: str | None = "upstream not probed yet"
    draining: bool = False

    def verdict(self, now: float) -> tuple[bool, str]:
        """(ready, reason): ready when not draining and /health was 2xx recently."""
        if self.draining:
            return False, "draining"
        if self.last_ok is None:
            return False, self.last_failure or "upstream not probed yet"
        age = now - self.last_ok
        if age > self.probe_interval * PROBE_GRACE_INTERVALS:
            return False, f"upstream /health not ok for {age:.1f}s: {self.last_failure}"
        return True, "upstream healthy"


READINESS: Final = web.AppKey("readiness", Readiness)
PROXY_APP: Final = web.AppKey("proxy_app", web.Application)


async def probe_once(session: aiohttp.ClientSession, url: str, readiness: Readiness) -> None:
    """One GET /health; a 2xx marks the runner healthy, anything else records why not."""
    loop = asyncio.get_running_loop()
    try:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            if 200 <= response.status < 300:
                readiness.last_ok = loop.time()
                readiness.last_failure = None
                return
            readiness.last_failure = f"upstream /health answered {response.status}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        failure = classify_upstream_failure(exc)
        readiness.last_failure = f"upstream /health failed: {failure.proxy_status}"
    _log.debug("readiness_probe_failed", reason=readiness.last_failure)


async def _probe_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the readiness probe for the admin app's lifetime, with its own small session."""
    proxy_app = app[PROXY_APP]
    config = proxy_app[CONFIG]
    readiness = proxy_app[READINESS]
    url = str(config.upstream_url.with_path(HEALTH_PATH))
    timeout = aiohttp.ClientTimeout(
        total=config.upstream_connect_timeout + readiness.probe_interval,
        connect=config.upstream_connect_timeout,
    )
    session = aiohttp.ClientSession(
        timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )

    async def loop() -> None:
        while True:
            await probe_once(session, url, readiness)
            await asyncio.sleep(readiness.probe_interval)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await session.close()


async def job_workflow(request: web.Request) -> web.Response:
    """Which workflow job {job_id} took, from the runner's own answers (see ``workflow``)."""
    job_id = request.match_info["job_id"]
    upstream = request.app[PROXY_APP][UPSTREAM]
    quoted = quote(job_id, safe="")
    try:
        bias_analysis = await _ask_runner(upstream, f"/api/v2/jobs/{quoted}/bias-analysis")
        job = (
            await _ask_runner(upstream, f"/api/v1/jobs/{quoted}")
            if needs_job_lookup(bias_analysis)
            else None
        )
    except UpstreamError as exc:
        code = upstream_error_answer(exc).code
        return web.json_response(
            {"job_id": job_id, "error": f"runner did not answer: {exc.detail}", "error_code": code},
            status=exc.status,
        )
    workflow = classify(bias_analysis, job)
    return web.json_response(
        {
            "job_id": job_id,
            "workflow": workflow,
            "analysis_available": workflow is Workflow.CROSS_REGION_ANALYSED,
            "runner": {
                "bias_analysis": {"status": bias_analysis.status, "body": bias_analysis.body},
                "job": None if job is None else {"status": job.status, "body": job.body},
            },
        }
    )


async def _ask_runner(upstream: UpstreamClient, path: str) -> RunnerAnswer:
    headers = CIMultiDict({"Accept": "application/json", "X-Request-ID": new_request_id()})
    async with await upstream.send("GET", path, headers, None) as response:
        raw = await response.read()
    try:
        body: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = raw.decode("utf-8", "replace")[:1000]
    return RunnerAnswer(response.status, body)


async def rewrite_status_view(request: web.Request) -> web.Response:
    """``GET /admin/rewrite``: rollout settings, guard state, replay check, signer key id.

    No token: it shows no secret (like /metrics beside it, which carries the same guard
    state), and the admin port is private (Fly exposes only the proxy port).
    """
    return web.json_response(rewrite_status(request.app[PROXY_APP]))


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the runner's /health was 2xx recently, else 503 with the reason."""
    readiness = request.app[PROXY_APP][READINESS]
    ready, reason = readiness.verdict(asyncio.get_running_loop().time())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "reason": reason},
        status=200 if ready else 503,
    )


# -- Bias-analysis backfill (docs/runner-contract.md §B7; the same code as `backfill apply`) --

# Margin over the database's own timeouts before the endpoint gives up on the worker thread.
_DB_GRACE_S: Final = 2.0


def _authorised(request: web.Request, token: str | None) -> bool:
    """``Authorization: Bearer <ADAPTER_ADMIN_TOKEN>``, compared in constant time."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def _with_database(
    request: web.Request, action: str, work: Callable[[RunnerDatabase], dict[str, object]]
) -> web.Response:
    """Auth, then ``work`` on a fresh connection in a thread, bounded by the timeouts."""
    config = request.app[PROXY_APP][CONFIG]
    if not _authorised(request, config.admin_token):
        return web.json_response(
            {"error": "unauthorized", "reason": "needs Authorization: Bearer <admin token>"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if config.database_url is None:
        reason = "ADAPTER_DATABASE_URL is not set"
        return web.json_response({"error": "database_unavailable", "reason": reason}, status=503)
    url, limit = config.database_url, config.database_timeout
    timeouts = Timeouts(connect=limit, statement=limit)

    def run() -> dict[str, object]:
        db = open_database(url, timeouts, read_only=action == "can_analyze")
        try:
            ensure_schema(db)
            return work(db)
        finally:
            db.close()

    try:
        body = await asyncio.wait_for(asyncio.to_thread(run), timeout=3 * limit + _DB_GRACE_S)
    except SchemaBlocked as exc:
        reason = "; ".join(b.message for b in exc.blockers)
        return web.json_response({"error": "schema_blocked", "reason": reason}, status=503)
    except (DatabaseError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {3 * limit + _DB_GRACE_S:g}s"
        _log.warning("backfill_database_unavailable", action=action, reason=reason)
        return web.json_response({"error": "database_unavailable", "reason": reason}, status=503)
    status = body.pop("http_status", 200)
    assert isinstance(status, int)
    metrics = request.app[PROXY_APP][METRICS]
    metrics.backfill_jobs.labels(
        action, str(body.get("outcome", "")), str(body.get("reason", ""))
    ).inc()
    return web.json_response(body, status=status)


async def can_analyze(request: web.Request) -> web.Response:
    """``GET /admin/jobs/{id}/can-analyze``: cross-region row, analysis, candidate or why not."""
    job_id = request.match_info["job_id"]

    def work(db: RunnerDatabase) -> dict[str, object]:
        body = job_status(db, job_id)
        body["outcome"] = "candidate" if body["candidate"] else "skipped"
        body["http_status"] = 200 if body["found"] else 404
        return body

    return await _with_database(request, "can_analyze", work)


async def backfill_analysis(request: web.Request) -> web.Response:
    """``POST /admin/jobs/{id}/backfill-analysis[?dry_run=true]``: ``backfill apply --job ID``."""
    job_id = request.match_info["job_id"]
    dry_run = request.query.get("dry_run", "").lower() in ("1", "true", "yes")

    def work(db: RunnerDatabase) -> dict[str, object]:
        report = backfill_job(db, job_id, dry_run=dry_run)
        body: dict[str, object] = {**report.to_json(), "dry_run": dry_run}
        body["http_status"] = {
            OUTCOME_WRITTEN: 200,
            OUTCOME_CANDIDATE: 200,
            OUTCOME_FAILED: 503,
        }.get(report.outcome, 404 if report.reason == "not_found" else 409)
        return body

    return await _with_database(request, "dry_run" if dry_run else "apply", work)


def create_admin_app(
    proxy_app: web.Application,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """The admin app for ``proxy_app``: /healthz, /readyz, /metrics,
    /admin/jobs/{job_id}/workflow, plus ``extra_routes``.

    Handlers in ``extra_routes`` reach the proxy's state via ``request.app[PROXY_APP]``.
    """
    app = web.Application()
    app[PROXY_APP] = proxy_app
    metrics_handler = make_aiohttp_handler(proxy_app[METRICS].registry)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/admin/jobs/{job_id}/workflow", job_workflow)
    app.router.add_get("/admin/rewrite", rewrite_status_view)
    app.router.add_get("/admin/jobs/{job_id}/can-analyze", can_analyze)
    app.router.add_post("/admin/jobs/{job_id}/backfill-analysis", backfill_analysis)
    app.router.add_routes(list(extra_routes))
    app.cleanup_ctx.append(_probe_ctx)
    return app


__all__ = (
    "PROXY_APP",
    "READINESS",
    "Readiness",
    "create_admin_app",
    "probe_once",
)

"""POST /api/v1/jobs: read the submission, decide, and send it where the decision says.

The I/O shell around ``adapter.jobs.rewrite.decide``. It reads at most the configured cap
(the runner's own 1 MiB by default), so an oversized body passes through streamed with
the bytes already read in front. A rewritten job goes to the cross-region route unless
the rewrite guard is open (``adapter.rewrite_guard``) or, with trust enforcement, its
nonce is already recorded in the runner's Redis (``adapter.replay_store``). If the
cross-region route is not deployed (404/405) or refuses the job before writing anything
(400: bind, signature, ``Validate()``; docs/runner-contract.md §6) the original bytes go
to the standard route instead, after releasing the nonce the adapter claimed. No other
answer triggers a resend: a job must never be created twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from adapter.http.errors import UpstreamError
from adapter.http.forwarding import strip_hop_by_hop
from adapter.http.proxy import (
    CONFIG,
    METRICS,
    REQUEST_ID,
    UPSTREAM,
    raw_path_qs,
    read_client_body,
    relay_response,
    request_body,
    request_stats,
    upstream_error_response,
    upstream_headers,
)
from adapter.jobs.guard import Admission, Failure
from adapter.jobs.replay import describe_redis_url
from adapter.jobs.rewrite import (
    CROSS_REGION_PATH,
    Decision,
    Reason,
    RewriteSettings,
    Verdict,
    decide as decide_rewrite,
    describe_trusted_keys,
    is_json_media_type,
    rejection_label,
)
from adapter.jobs.rollout import DEFAULT_SALT
from adapter.log import get_logger
from adapter.replay_store import REPLAY_STORE, Claim
from adapter.rewrite_guard import REWRITE_GUARD

DECISION_HEADER: Final = "X-Adapter-Decision"
# The cross-region route answers 404/405 only when it is not registered (runner without DB).
_ROUTE_MISSING: Final = frozenset({404, 405})
# What the cross-region route says when the job id already exists (a plain INSERT,
# docs/runner-contract.md §6 step 6).
_DUPLICATE_JOB_ERROR: Final = "Failed to create job record"
_MAX_ERROR_BODY: Final = 65_536
# The cross-region route's refusals before its first INSERT (§6 steps 1-3): safe to resend.
_REJECTED_BEFORE_INSERT: Final = 400
# How much of a rejection's body goes into the error log line.
_LOGGED_ERROR_BODY: Final = 2_000
_REPLAY_REASONS: Final = {
    Claim.REPLAYED: Reason.REPLAYED_NONCE,
    Claim.UNAVAILABLE: Reason.REPLAY_CHECK_UNAVAILABLE,
}

_log = get_logger("adapter.submission")


async def handle_jobs_submit(request: web.Request) -> web.StreamResponse:
    """Decide on one submission and answer with the runner's reply plus the decision."""
    settings = request.app[CONFIG].rewrite
    body, complete = await _read_for_decision(request, settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = _verdict(settings, request, body, complete)
    decide_ms = (loop.time() - started) * 1000
    guard = request.app[REWRITE_GUARD]
    if verdict.reason is Reason.SELF_CHECK_FAILED:  # selected, but our signature failed
        guard.record(Failure.SELF_CHECK_FAILED, probe=False)
    attempt = _Attempt()
    if verdict.rewrite is not None:
        attempt.admission = guard.admit()
        if attempt.admission is Admission.REFUSE:
            verdict = _passed_through(verdict, Reason.GUARD_OPEN)
    if verdict.rewrite is not None and verdict.replay_key is not None:
        verdict = await _claim_nonce(request, verdict, attempt)
        if verdict.rewrite is None:
            guard.abandon(probe=attempt.probe)
    _record_decision(request, settings, verdict, decide_ms)
    try:
        if verdict.rewrite is None:
            response = await _send_original(request, body, complete, verdict.header)
        else:
            response = await _send_rewrite(request, body, verdict, attempt)
    except UpstreamError as exc:
        if verdict.rewrite is not None and not attempt.judged and _is_response_timeout(exc):
            attempt.judge(Failure.TIMEOUT)
        if exc.kind == "connect":  # nothing reached the runner: a retry is no replay
            await _release_claim(request, attempt)
        response = _upstream_failure(request, exc, verdict.header)
    finally:
        if verdict.rewrite is not None:
            _report_to_guard(request, attempt)
    # The final decision (a rewrite may have fallen back) is the first word of the header.
    final = response.headers[DECISION_HEADER].split(";", 1)[0]
    request.app[METRICS].submission_responses.labels(
        decision=final, code=str(response.status)
    ).inc()
    return response


@dataclass(slots=True)
class _Attempt:
    """What one rewrite attempt tells the guard, and the nonce it holds in Redis."""

    admission: Admission = Admission.REWRITE
    # Set once the runner's answer says something about the rewrite.
    judged: bool = False
    failure: Failure | None = None
    claimed_key: str | None = None

    @property
    def probe(self) -> bool:
        return self.admission is Admission.PROBE

    def judge(self, failure: Failure | None) -> None:
        self.judged, self.failure = True, failure


def _report_to_guard(request: web.Request, attempt: _Attempt) -> None:
    guard = request.app[REWRITE_GUARD]
    if attempt.judged:
        guard.record(attempt.failure, probe=attempt.probe)
    else:  # route missing, runner unreachable, client gone: nothing about the rewrite
        guard.abandon(probe=attempt.probe)


def _passed_through(verdict: Verdict, reason: Reason) -> Verdict:
    """The verdict once the shell decided against sending the rewrite after all."""
    return replace(
        verdict, decision=Decision.PASSTHROUGH, reason=reason, rewrite=None, replay_key=None
    )


async def _claim_nonce(request: web.Request, verdict: Verdict, attempt: _Attempt) -> Verdict:
    """Claim the runner's replay key; a replay or an unreachable Redis passes through."""
    store = request.app.get(REPLAY_STORE)
    if store is None or verdict.replay_key is None:
        return verdict  # no Redis configured: replay protection is the runner's alone
    claim = await store.claim(verdict.replay_key)
    if claim is Claim.CLAIMED:
        attempt.claimed_key = verdict.replay_key
        return verdict
    return _passed_through(verdict, _REPLAY_REASONS[claim])


async def _release_claim(request: web.Request, attempt: _Attempt) -> None:
    """Give back the nonce this attempt claimed: the runner never saw it on any route yet."""
    store = request.app.get(REPLAY_STORE)
    if attempt.claimed_key is not None and store is not None:
        await store.release(attempt.claimed_key)
        attempt.claimed_key = None


def _is_response_timeout(exc: UpstreamError) -> bool:
    # A connect timeout says the runner is unreachable, not that the rewrite is wrong.
    return exc.kind == "timeout" and exc.proxy_status == "http_response_timeout"


def _verdict(
    settings: RewriteSettings, request: web.Request, body: bytes, complete: bool
) -> Verdict:
    content_type = request.headers.get(hdrs.CONTENT_TYPE)
    if not is_json_media_type(content_type):
        return Verdict(Decision.PASSTHROUGH, Reason.NOT_JSON)
    if not complete:
        return Verdict(Decision.PASSTHROUGH, Reason.TOO_LARGE)
    return decide_rewrite(
        settings,
        body,
        content_type=content_type,
        content_encoding=request.headers.get(hdrs.CONTENT_ENCODING),
        now=datetime.now(UTC),
        id_suffix=secrets.token_hex(4),
    )


async def _read_for_decision(request: web.Request, settings: RewriteSettings) -> tuple[bytes, bool]:
    """Read up to the cap: (bytes read, whether that is the whole body).

    Nothing is read when the answer is already known: not JSON, or a declared length
    above the cap. Then the body streams through untouched.
    """
    if not is_json_media_type(request.headers.get(hdrs.CONTENT_TYPE)):
        return b"", False
    declared = request.content_length
    if declared is not None and declared > settings.max_body_bytes:
        return b"", False
    limit = settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await read_client_body(request, limit + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _original_body(
    request: web.Request, body: bytes, complete: bool
) -> bytes | AsyncIterable[bytes] | None:
    if complete:
        request_stats(request).bytes_in += len(body)
        return body if body or request.body_exists else None
    return request_body(request, body)


async def _send_original(
    request: web.Request, body: bytes, complete: bool, decision: str
) -> web.StreamResponse:
    """Forward the submission as the client sent it, to the route it asked for."""
    headers = upstream_headers(request, request.app[CONFIG], request[REQUEST_ID])
    upstream = await _timed_send(
        request, raw_path_qs(request), headers, _original_body(request, body, complete)
    )
    return await relay_response(request, upstream, extra_headers={DECISION_HEADER: decision})


async def _send_rewrite(
    request: web.Request, body: bytes, verdict: Verdict, attempt: _Attempt
) -> web.StreamResponse:
    assert verdict.rewrite is not None
    headers = upstream_headers(request, request.app[CONFIG], request[REQUEST_ID])
    for name in (hdrs.CONTENT_LENGTH, hdrs.CONTENT_ENCODING, hdrs.CONTENT_TYPE):
        headers.popall(name, None)
    headers[hdrs.CONTENT_TYPE] = "application/json"
    query = request.raw_path.partition("?")[2]
    path = CROSS_REGION_PATH + (f"?{query}" if query else "")
    upstream = await _timed_send(request, path, headers, verdict.rewrite.body)
    if upstream.status in _ROUTE_MISSING:
        upstream.release()
        _log.warning("cross_region_route_missing", job_id=verdict.job_id)
        return await _fall_back(request, body, verdict, Reason.CROSS_REGION_MISSING, attempt)
    if upstream.status == _REJECTED_BEFORE_INSERT:
        attempt.judge(Failure.CROSS_REGION_REJECTED)
        await _log_rejection(request, upstream, verdict)
        return await _fall_back(request, body, verdict, Reason.CROSS_REGION_REJECTED, attempt)
    if upstream.status == 500 and verdict.job_id:
        duplicate = await _duplicate_answer(request, upstream, verdict)
        if duplicate is not None:
            repeat = Reason.IDEMPOTENT_REPEAT in duplicate.headers[DECISION_HEADER]
            attempt.judge(None if repeat else Failure.UPSTREAM_5XX)
            return duplicate
    attempt.judge(Failure.UPSTREAM_5XX if upstream.status >= 500 else None)
    return await relay_response(request, upstream, extra_headers={DECISION_HEADER: verdict.header})


async def _log_rejection(
    request: web.Request, upstream: aiohttp.ClientResponse, verdict: Verdict
) -> None:
    """Count a cross-region 400 by the runner's ``error`` and log its body at error level."""
    error_body = b""
    try:
        async for chunk in upstream.content.iter_chunked(8192):
            error_body += chunk
            if len(error_body) >= _MAX_ERROR_BODY:
                break
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        _log.info("cross_region_rejection_body_unread", error=type(exc).__name__)
    finally:
        upstream.release()
    error = _error_of(error_body)
    label = rejection_label(error)
    request.app[METRICS].cross_region_rejections.labels(error=label).inc()
    _log.error(
        "cross_region_rejected",
        job_id=verdict.job_id,
        status=upstream.status,
        error=label,
        body=error_body[:_LOGGED_ERROR_BODY].decode("utf-8", "replace"),
    )


async def _fall_back(
    request: web.Request, body: bytes, verdict: Verdict, reason: Reason, attempt: _Attempt
) -> web.StreamResponse:
    """Nothing was written by the cross-region route: send the original to the standard
    route, after releasing our nonce claim so the runner records the nonce itself."""
    metrics = request.app[METRICS]
    metrics.fallbacks.inc()
    metrics.rewrite_decisions.labels(decision=Decision.FALLBACK, reason=reason).inc()
    await _release_claim(request, attempt)
    header = f"{Decision.FALLBACK}; reason={reason}"
    try:
        return await _send_original(request, body, True, header)
    except UpstreamError as exc:
        # The standard route failed: the answer must still say the job took the fallback.
        return _upstream_failure(request, exc, header)


def _upstream_failure(request: web.Request, exc: UpstreamError, decision: str) -> web.Response:
    """The 502/504 answer, made here rather than by the middleware so it carries the decision."""
    request_stats(request).upstream_error = exc.kind
    _log.warning("upstream_failed", kind=exc.kind, error=exc.detail)
    response = upstream_error_response(request[REQUEST_ID], exc)
    response.headers[DECISION_HEADER] = decision
    return response


async def _duplicate_answer(
    request: web.Request, upstream: aiohttp.ClientResponse, verdict: Verdict
) -> web.StreamResponse | None:
    """A 500 for an id that already exists becomes the standard route's idempotent 200.

    Returns None when the 500 is something else; the caller then relays it as it is.
    """
    assert verdict.job_id is not None
    length = upstream.content_length
    if length is None or length > _MAX_ERROR_BODY:
        return None  # not the runner's small JSON error; relay it streamed
    error_body = await upstream.read()
    headers = strip_hop_by_hop(upstream.headers)
    upstream.release()
    if _error_of(error_body) == _DUPLICATE_JOB_ERROR and await _job_exists(request, verdict.job_id):
        _log.info("duplicate_job_id", job_id=verdict.job_id)
        header = f"{Decision.REWRITTEN}; reason={Reason.IDEMPOTENT_REPEAT}"
        return web.Response(
            status=200,
            body=orjson.dumps({"id": verdict.job_id, "idempotent": True}),
            content_type="application/json",
            headers={DECISION_HEADER: header},
        )
    headers.popall(hdrs.CONTENT_LENGTH, None)
    headers[DECISION_HEADER] = verdict.header
    return web.Response(status=upstream.status, body=error_body, headers=headers)


async def _job_exists(request: web.Request, job_id: str) -> bool:
    headers = upstream_headers(request, request.app[CONFIG], request[REQUEST_ID])
    for name in (hdrs.CONTENT_LENGTH, hdrs.CONTENT_TYPE, hdrs.CONTENT_ENCODING):
        headers.popall(name, None)
    path = f"/api/v1/jobs/{quote(job_id, safe='')}"
    async with await request.app[UPSTREAM].send("GET", path, headers, None) as answer:
        await answer.read()
        return answer.status == 200


async def _timed_send(
    request: web.Request,
    path_qs: str,
    headers: CIMultiDict[str],
    body: bytes | AsyncIterable[bytes] | None,
) -> aiohttp.ClientResponse:
    loop = asyncio.get_running_loop()
    started = loop.time()
    upstream = await request.app[UPSTREAM].send("POST", path_qs, headers, body)
    request_stats(request).upstream_ms = (loop.time() - started) * 1000
    return upstream


def _record_decision(
    request: web.Request, settings: RewriteSettings, verdict: Verdict, decide_ms: float
) -> None:
    """Count the decision and write its log line: everything needed to explain it."""
    metrics = request.app[METRICS]
    metrics.rewrite_decisions.labels(decision=verdict.decision, reason=verdict.reason).inc()
    if verdict.scheme is not None:
        metrics.signature_checks.labels(scheme=verdict.scheme, result="verified").inc()
    elif verdict.reason is Reason.BAD_SIGNATURE or verdict.shadow is Reason.BAD_SIGNATURE:
        metrics.signature_checks.labels(scheme="none", result="failed").inc()
    if verdict.shadow is not None:
        metrics.shadow.labels(outcome=verdict.shadow).inc()
    failed_self_check = Reason.SELF_CHECK_FAILED in (verdict.reason, verdict.shadow)
    log = _log.error if failed_self_check else _log.info
    log(
        "rewrite_decision",
        job_id=verdict.job_id,
        decision=verdict.decision,
        reason=verdict.reason,
        shadow=verdict.shadow,
        bucket=verdict.bucket,
        percent=settings.policy.percent,
        signer=_signer_id(settings, verdict.signer),
        scheme=verdict.scheme,
        decide_ms=round(decide_ms, 3),
    )


def rewrite_status(app: web.Application) -> dict[str, object]:
    """What ``GET /admin/rewrite`` shows: the rollout as configured (no secret, no list
    contents), the guard's state and recent failures, the replay check, the signer."""
    config = app[CONFIG]
    settings = config.rewrite
    policy = settings.policy
    service_key = settings.service_key
    replay = config.replay
    return {
        "rollout": {
            "percent": policy.percent,
            "shadow": policy.shadow,
            "allowlist_size": len(policy.allowlist),
            "denylist_size": len(policy.denylist),
            "custom_salt": policy.salt != DEFAULT_SALT,
            "max_body_bytes": settings.max_body_bytes,
        },
        "trust_enforce": settings.trust_enforce,
        "trusted_keys": describe_trusted_keys(settings.trusted_keys),
        "signer": None
        if service_key is None
        else {
            "key_id": _signer_id(settings, service_key.public_key_b64),
            "public_key": service_key.public_key_b64,
        },
        "guard": app[REWRITE_GUARD].snapshot(),
        "replay_check": {
            "active": settings.trust_enforce and REPLAY_STORE in app,
            "redis": describe_redis_url(replay.redis_url),
            "ttl_seconds": replay.ttl_seconds,
            "timeout_seconds": replay.timeout_seconds,
        },
    }


def _signer_id(settings: RewriteSettings, public_key: str | None) -> str | None:
    """The signer's kid from the trusted keys file, else a short fingerprint of its key."""
    if not public_key:
        return None
    kid = None if settings.trusted_keys is None else settings.trusted_keys.kid_for(public_key)
    return kid or "sha256:" + hashlib.sha256(public_key.encode()).hexdigest()[:16]


def _error_of(body: bytes) -> object:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed.get("error") if isinstance(parsed, dict) else None

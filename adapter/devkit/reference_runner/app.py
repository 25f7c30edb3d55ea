"""The reference runner's aiohttp application: routes, middleware and thin handlers.

Each handler reproduces one runner route from docs/runner-contract.md (§3 middleware, §4 the
standard submit, §6 the cross-region submit, §7 bias analysis, §10 health, metrics and
``/ws``), down to status codes and the bytes of gin's JSON bodies. The pure parts live
beside it: ``validation`` (``Validate()``), ``execution`` (the deterministic fake
executor), ``ginjson`` (response encoding) and ``store`` (the SQLite tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, hdrs, web

from adapter.devkit.reference_runner import ginjson, runner_canonical
from adapter.devkit.reference_runner.execution import run_cross_region, run_standard
from adapter.devkit.reference_runner.faults import (
    CROSS_REGION_PATH,
    STANDARD_PATH,
    ReferenceRunnerFaults,
)
from adapter.devkit.reference_runner.gotime import rfc3339_nano
from adapter.devkit.reference_runner.ratelimit import TokenBuckets, client_ip
from adapter.devkit.reference_runner.security import (
    DEFAULT_NONCE_TTL_SECONDS,
    ReplayGuard,
    trust_and_timestamp_refusal,
)
from adapter.devkit.reference_runner.store import DuplicateJobError, ReferenceStore
from adapter.devkit.reference_runner.validation import (
    DEFAULT_MIN_SUCCESS_RATE,
    JobSpecInvalid,
    normalize_models_from_metadata,
    validate,
)
from adapter.jobs import gojson
from adapter.jobs.gojson import GoDecodeError, GoMarshalError
from adapter.jobs.jobspec import ZERO_TIME, decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.signing import verify_b64
from adapter.jobs.trust import TrustedKeys

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The standard route's ValidateJobSpec middleware reads at most 1 MB
# (docs/runner-contract.md §4).
STANDARD_BODY_CAP: Final = 1 << 20
# The cross-region route has no cap in the runner; keep a generous one against accidents.
CLIENT_MAX_SIZE: Final = 64 << 20
DEFAULT_CROSS_REGION_MIN_REGIONS: Final = 3
REQUEST_ID_MAX: Final = 128
NOT_FOUND_BODY: Final = b"404 page not found"

CORS_ALLOWED_ORIGINS: Final = frozenset(
    {
        "http://localhost:3000",
        "http://localhost:8080",
        "http://127.0.0.1:3000",
        "http://127.0.0.1:8080",
        "https://projectbeacon.netlify.app",
    }
)
CORS_HEADERS: Final = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Origin, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, "
        "Authorization, X-Request-ID, Idempotency-Key"
    ),
    "Access-Control-Expose-Headers": "X-Request-ID, X-Response-Time",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Max-Age": "86400",
}
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "1; mode=block",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' 'unsafe-inline'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: https:",
            "connect-src 'self' ws: wss:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        ]
    ),
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HEALTH_SERVICES: Final = [
    {"name": "database", "status": "healthy", "message": "reference runner (sqlite)"},
]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request exactly as it reached the runner (headers in order, body bytes)."""

    method: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    request_id: str

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively, or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class ReceivedLog:
    """The most recent requests the runner received, oldest first, bounded in count."""

    def __init__(self, limit: int) -> None:
        self._items: deque[ReceivedRequest] = deque(maxlen=limit)

    def append(self, item: ReceivedRequest) -> None:
        """Record one request (the oldest falls off when full)."""
        self._items.append(item)

    def __iter__(self) -> Iterator[ReceivedRequest]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def to(self, path: str, method: str | None = None) -> list[ReceivedRequest]:
        """The recorded requests for one path (and method), oldest first."""
        return [r for r in self._items if r.path == path and method in (None, r.method)]

    def last(self, path: str | None = None) -> ReceivedRequest:
        """The newest request (for ``path``); raises LookupError when there is none."""
        for item in reversed(self._items):
            if path is None or item.path == path:
                return item
        raise LookupError(f"no request received for {path or 'any path'}")

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._items.clear()


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """How this runner instance behaves (see ``create_reference_runner``)."""

    execute: bool
    cross_region_enabled: bool
    standard_signature_bypass: bool
    clock_ns: Callable[[], int]
    rate_limit: TokenBuckets | None
    # TRUST_ENFORCE=true on the standard route: trust, timestamp and replay (``security``).
    trust_enforce: bool = False
    trusted_keys: TrustedKeys | None = None


@dataclass(slots=True)
class RunnerCounters:
    """Totals exposed on ``/metrics``."""

    jobs_enqueued: int = 0
    cross_region_submitted: int = 0
    requests: int = 0


STORE: Final = web.AppKey("reference_runner_store", ReferenceStore)
RECEIVED: Final = web.AppKey("reference_runner_received", ReceivedLog)
FAULTS: Final = web.AppKey("reference_runner_faults", ReferenceRunnerFaults)
SETTINGS: Final = web.AppKey("reference_runner_settings", RunnerSettings)
COUNTERS: Final = web.AppKey("reference_runner_counters", RunnerCounters)
REPLAY: Final = web.AppKey("reference_runner_replay", ReplayGuard)
WEBSOCKETS: Final = web.AppKey("reference_runner_websockets", set[web.WebSocketResponse])
REQUEST_ID: Final = web.RequestKey("reference_runner_request_id", str)


def gin_json(status: int, value: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response with gin's compact JSON body and content type."""
    response = web.Response(status=status, body=ginjson.encode(value))
    response.headers[hdrs.CONTENT_TYPE] = ginjson.CONTENT_TYPE
    if headers:
        response.headers.update(headers)
    return response


def _now(request: web.Request) -> str:
    return rfc3339_nano(request.app[SETTINGS].clock_ns())


def _not_found() -> web.Response:
    return web.Response(status=404, body=NOT_FOUND_BODY, headers={hdrs.CONTENT_TYPE: "text/plain"})


# -- middleware (outermost first: record, RequestID, ValidateJSON, CORS, SecurityHeaders,
# rate limit, gin's 404) --


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep a copy of what arrived, before any other layer can answer."""
    body = await request.read() if request.body_exists else b""
    header_value = request.headers.get("X-Request-ID", "")
    request_id = header_value if 1 <= len(header_value) <= REQUEST_ID_MAX else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    request.app[COUNTERS].requests += 1
    request.app[RECEIVED].append(
        ReceivedRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=tuple(request.headers.items()),
            body=body,
            request_id=request_id,
        )
    )
    return await handler(request)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo an X-Request-ID of 1-128 characters, else a new 32-hex one (runner contract §3)."""
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-ID"] = request[REQUEST_ID]
    return response


@web.middleware
async def validate_json_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """POST and PUT need a Content-Type containing application/json (runner contract §3)."""
    if request.method in {"POST", "PUT"} and "application/json" not in request.headers.get(
        hdrs.CONTENT_TYPE, ""
    ):
        return gin_json(
            400,
            {
                "error": "invalid_content_type",
                "message": "Content-Type must be application/json",
            },
        )
    return await handler(request)


def _cors_headers(origin: str) -> dict[str, str]:
    headers = dict(CORS_HEADERS)
    if origin in CORS_ALLOWED_ORIGINS or origin.endswith(".netlify.app"):
        headers["Access-Control-Allow-Origin"] = origin
    return headers


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS headers on every answer; OPTIONS preflights end here, 204 (runner contract §3)."""
    headers = _cors_headers(request.headers.get(hdrs.ORIGIN, ""))
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=headers)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(headers)
    return response


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The runner's fixed security headers (preflights never reach this layer)."""
    response = await handler(request)
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def not_found_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """gin answers unknown routes and wrong methods alike with a plain-text 404; made here,
    innermost, so every outer layer adds its headers to it like to any answer."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return _not_found()


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """N requests per minute per client IP, when enabled; 429 with gin's nested error body."""
    settings = request.app[SETTINGS]
    if settings.rate_limit is None:
        return await handler(request)
    now_ns = settings.clock_ns()
    key = client_ip(request.headers, request.remote)
    admission = settings.rate_limit.take(key, now_ns / 1e9)
    limit_headers = {
        "X-RateLimit-Limit": str(settings.rate_limit.per_minute),
        "X-RateLimit-Remaining": str(admission.remaining),
    }
    if not admission.allowed:
        reset = rfc3339_nano((now_ns // 1_000_000_000 + admission.retry_after) * 1_000_000_000)
        return gin_json(
            429,
            {
                "error": {
                    "type": "rate_limited",
                    "message": "Too many requests. Please slow down.",
                    "code": "RATE_LIMIT_EXCEEDED",
                },
                "request_id": request[REQUEST_ID],
            },
            {**limit_headers, "X-RateLimit-Reset": reset},
        )
    response = await handler(request)
    if not response.prepared:
        response.headers.update(limit_headers)
    return response


# -- POST /api/v1/jobs ---------------------------------------------------------------------


async def create_job(request: web.Request) -> web.StreamResponse:
    """The standard submit: ValidateJobSpec, processor, security, Idempotency-Key (§4)."""
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    early = await _apply_faults_before(request)
    if early is not None:
        return early
    body = (await request.read())[:STANDARD_BODY_CAP]
    if not body:
        return gin_json(400, {"error": "invalid_body", "message": "Request body cannot be empty"})
    try:
        _refuse_beyond_plain_depth(body)
        decoded = decode_jobspec(body)
    except GoDecodeError:
        return gin_json(400, {"error": "invalid_json", "message": "Malformed JSON in body"})
    now_unix = settings.clock_ns() // 1_000_000_000
    try:
        spec = validate(decoded, now_unix=now_unix)
    except JobSpecInvalid as exc:
        return gin_json(400, {"error": "validation_error", "message": str(exc)})
    spec = project(normalize_models_from_metadata(spec))
    if settings.trust_enforce:
        refusal_status = trust_and_timestamp_refusal(
            spec, settings.trusted_keys, settings.clock_ns()
        ) or await request.app[REPLAY].refusal(spec)
        if refusal_status is not None:
            return gin_json(*refusal_status)
    if not settings.standard_signature_bypass:
        refusal = _standard_signature_refusal(spec, body)
        if refusal is not None:
            return gin_json(400, refusal)

    job_id = str(spec["id"])
    now = _now(request)
    idempotency_key = request.headers.get("Idempotency-Key", "").strip()
    if idempotency_key:
        existing = store.job_for_idempotency_key(idempotency_key)
        if existing is not None:
            return gin_json(200, {"id": existing, "idempotent": True})
    store.upsert_job(job_id, spec, "created", now)
    if idempotency_key:
        store.remember_idempotency_key(idempotency_key, job_id, now)
    request.app[COUNTERS].jobs_enqueued += 1
    if settings.execute:
        status, regions = run_standard(job_id, spec)
        store.record_standard_executions(job_id, regions, now)
        store.update_job_status(job_id, status, now)
    return await _answer_after_record(request, gin_json(202, {"id": job_id, "status": "enqueued"}))


def _refuse_beyond_plain_depth(body: bytes) -> None:
    """The stand-in's one deliberate difference from the runner: its plain, recursive code
    (runner_canonical, validation) reads ``PLAIN_MAX_DEPTH`` levels where Go reads 10,000,
    so a deeper body is refused as undecodable instead of crashing the handler."""
    if gojson.exceeds_max_depth(body, runner_canonical.PLAIN_MAX_DEPTH):
        raise GoDecodeError("", "exceeded the reference runner's depth")


def project(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Re-project a mutated spec onto the Go structs (field order, zero values, omitempty)."""
    return decode_jobspec(marshal_go(spec))


def _standard_signature_refusal(spec: Mapping[str, Any], body: bytes) -> dict[str, str] | None:
    """The security pipeline's signature step in ``SIGN_CANON_MODE=auto`` (§2b, §4).

    The struct check runs on the spec *after* ``Validate()`` defaults and model
    normalisation, which is why current portal specs fail here; the raw-body check is the
    fallback for a mismatch.
    """
    signature = str(spec.get("signature") or "")
    public_key = str(spec.get("public_key") or "")
    if not signature:
        return {"error": "signature is required", "error_code": "missing_field:signature"}
    if not public_key:
        return {"error": "public key is required", "error_code": "missing_field:public_key"}
    # Bytes from the reference runner's own plain canonicalisation (runner_canonical).
    try:
        canonical = runner_canonical.canonical_of_projected(spec)
    except RecursionError:  # deeper than the plain code reads: only the raw check is left
        canonical = b""
    if canonical and verify_b64(public_key, signature, canonical):
        return None
    raw = runner_canonical.raw_body_canonical(body)
    if raw is not None and verify_b64(public_key, signature, raw):
        return None
    return {"error": "signature verification failed", "error_code": "signature_mismatch"}


# -- POST /api/v1/jobs/cross-region --------------------------------------------------------


_REQUIRED_FIELDS: Final = {"jobspec": "JobSpec", "target_regions": "TargetRegions"}


def bind_error_details(exc: GoDecodeError) -> str:
    """The ``details`` gin reports: validator wording for a missing required field."""
    field = _REQUIRED_FIELDS.get(exc.field)
    if field is None or "required" not in exc.reason:
        return str(exc)
    return (
        f"Key: 'CrossRegionJobRequest.{field}' Error:Field validation for '{field}' "
        "failed on the 'required' tag"
    )


def _signature_error(body: bytes) -> str | None:
    """V1 verification as ``JobSpec.VerifySignature`` reports it, or None when it verifies.

    The bytes come from ``runner_canonical``, the reference runner's own plain reading of
    docs/runner-contract.md §1 and §2a, never from the adapter's canonicalisation: a
    regression there must fail here, not be signed and verified alike.
    """
    try:
        signable = runner_canonical.request_signable(body)
    except runner_canonical.RunnerCanonicalError as exc:
        return f"failed to canonicalize jobspec: {exc}"
    except (runner_canonical.RunnerDecodeError, runner_canonical.TooDeep) as exc:
        return f"reference runner cannot canonicalise this jobspec: {exc}"
    canonical = signable.canonical
    if verify_b64(signable.public_key, signable.signature, canonical):
        return None
    text = canonical.decode("utf-8", "replace")
    return (
        f"signature verification failed (canonical length: {len(canonical)}, "
        f"first 200 chars: {text[:200]})"
    )


def _marshal_failure_is_signed(body: bytes) -> bool:
    """Whether a spec that cannot be marshalled carries both signature and public_key."""
    try:
        node = gojson.parse(body, allow_trailing=True)
    except GoDecodeError:
        return False
    request = gojson.to_interface(node, lambda error: None, "")
    jobspec = request.get("jobspec") if isinstance(request, dict) else None
    return isinstance(jobspec, dict) and bool(
        jobspec.get("signature") and jobspec.get("public_key")
    )


async def create_cross_region_job(request: web.Request) -> web.StreamResponse:
    """``SubmitCrossRegionJob``: bind, verify, Validate, defaults, insert, execute (§6)."""
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    early = await _apply_faults_before(request)
    if early is not None:
        return early
    body = await request.read()
    try:
        _refuse_beyond_plain_depth(body)
        wrapper = decode_cross_region_request(body)
    except GoMarshalError:
        # Bound, but json.Marshal of the spec fails (§2a): canonicalisation fails when it
        # is signed, the job record cannot be stored when it is not.
        if not _marshal_failure_is_signed(body):
            return gin_json(500, {"error": "Failed to create job record"})
        details = _signature_error(body) or "failed to canonicalize jobspec"
        return gin_json(400, {"error": "Invalid JobSpec signature", "details": details})
    except GoDecodeError as exc:
        details = bind_error_details(exc)
        return gin_json(400, {"error": "Invalid request format", "details": details})
    decoded: dict[str, Any] = dict(wrapper["jobspec"])
    target_regions = [str(region) for region in wrapper["target_regions"]]

    if decoded.get("signature") and decoded.get("public_key"):
        problem = _signature_error(body)
        if problem is not None:
            return gin_json(400, {"error": "Invalid JobSpec signature", "details": problem})
    try:
        spec = validate(decoded, now_unix=settings.clock_ns() // 1_000_000_000)
    except JobSpecInvalid as exc:
        return gin_json(400, {"error": "Invalid JobSpec", "details": str(exc)})

    min_regions = int(wrapper.get("min_regions") or 0) or DEFAULT_CROSS_REGION_MIN_REGIONS
    min_success_rate = float(wrapper.get("min_success_rate") or 0) or DEFAULT_MIN_SUCCESS_RATE
    constraints = spec["constraints"]
    constraints["regions"] = target_regions
    constraints["min_regions"] = min_regions
    constraints["min_success_rate"] = min_success_rate
    spec = project(spec)

    job_id = str(spec["id"])
    created_at = spec.get("created_at")
    job_created_at = created_at if isinstance(created_at, str) and created_at else ZERO_TIME
    try:
        store.insert_job(job_id, spec, "queued", job_created_at)
    except DuplicateJobError as exc:
        return gin_json(500, {"error": "Failed to create job record", "details": str(exc)})
    now = _now(request)
    execution = store.create_cross_region_execution(
        job_id, len(target_regions), min_regions, min_success_rate, now
    )
    request.app[COUNTERS].cross_region_submitted += 1
    if settings.execute:
        outcome = run_cross_region(job_id, spec, target_regions, min_regions, min_success_rate)
        finished = _now(request)
        store.record_outcome(
            execution,
            outcome,
            save_analysis=bool(wrapper.get("enable_analysis")),
            now=finished,
        )
        if outcome.error is None:
            job_status = {"completed": "completed", "failed": "failed"}.get(
                outcome.status, "running"
            )
            store.update_job_status(job_id, job_status, finished)
    response = gin_json(
        202,
        {
            "id": job_id,
            "job_id": job_id,
            "cross_region_execution_id": execution.id,
            "jobspec_id": job_id,
            "total_regions": len(target_regions),
            "min_regions": min_regions,
            "status": "submitted",
            "submitted_at": execution.created_at,
            "estimated_duration": "2-5 minutes",
        },
    )
    return await _answer_after_record(request, response)


# -- faults ----------------------------------------------------------------------------------


async def _apply_faults_before(request: web.Request) -> web.StreamResponse | None:
    faults = request.app[FAULTS]
    if not faults.applies_to(request.method, request.path):
        return None
    if faults.delay_before_record > 0:
        await asyncio.sleep(faults.delay_before_record)
    failure = faults.take_failure()
    if failure is None:
        return None
    return gin_json(failure.status, failure.body)


async def _answer_after_record(
    request: web.Request, response: web.StreamResponse
) -> web.StreamResponse:
    faults = request.app[FAULTS]
    if not faults.applies_to(request.method, request.path):
        return response
    if faults.delay_after_record > 0:
        await asyncio.sleep(faults.delay_after_record)
    if faults.take_reset():
        _reset_connection(request)
    return response


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), so the client sees a reset."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# -- GET jobs --------------------------------------------------------------------------------


async def get_job(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/jobs/{id}``: the stored spec and status, or the runner's 404."""
    job = request.app[STORE].get_job(request.match_info["id"])
    if job is None:
        return gin_json(404, {"error": "job not found"})
    return gin_json(200, {"job": ginjson.RawJSON(marshal_go(job.spec)), "status": job.status})


async def list_jobs(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/jobs?limit=``: newest first; default 50, accepted 1..200."""
    limit = 50
    raw = request.query.get("limit", "")
    if raw.isdigit() and 0 < int(raw) <= 200:
        limit = int(raw)
    jobs = request.app[STORE].list_jobs(limit)
    items = [{"id": j.jobspec_id, "status": j.status, "created_at": j.created_at} for j in jobs]
    # A nil Go slice marshals as null.
    return gin_json(200, {"jobs": items or None})


async def get_bias_analysis(request: web.Request) -> web.StreamResponse:
    """``GET /api/v2/jobs/{jobId}/bias-analysis`` with the two 404 shapes of §7."""
    store = request.app[STORE]
    job_id = request.match_info["job_id"]
    execution = store.cross_region_execution_for(job_id)
    if execution is None:
        return gin_json(
            404,
            {
                "error": "Job not found or analysis not available",
                "details": f"cross-region execution not found for jobspec_id: {job_id}",
            },
        )
    analysis = store.analysis_for(execution.id)
    if analysis is None:
        return gin_json(
            404,
            {
                "error": "Bias analysis not found for this job",
                "details": f"analysis not found for execution_id: {execution.id}",
            },
        )
    region_scores = store.execution_bias_scores(job_id) or {
        result.region: result.scoring
        for result in store.region_results_for(execution.id)
        if result.scoring is not None
    }
    body: dict[str, Any] = {
        "job_id": job_id,
        "cross_region_execution_id": execution.id,
        "analysis": analysis.to_json(),
        "region_scores": region_scores,
        "created_at": analysis.created_at,
    }
    job = store.get_job(job_id)
    if job is not None:
        body["job_metadata"] = _job_metadata(job.spec, job.status)
    return gin_json(200, body)


def _job_metadata(spec: Mapping[str, Any], status: str) -> dict[str, Any]:
    info: dict[str, Any] = {"status": status, "questions": spec.get("questions") or None}
    benchmark = spec.get("benchmark")
    if isinstance(benchmark, Mapping) and (benchmark.get("name") or benchmark.get("description")):
        info["benchmark"] = {
            "name": benchmark.get("name", ""),
            "description": benchmark.get("description", ""),
        }
    if spec.get("models"):
        info["models"] = ginjson.RawJSON(marshal_go(spec["models"]))
    if spec.get("metadata"):
        info["metadata"] = spec["metadata"]
    return info


# -- health, metrics, websocket ---------------------------------------------------------------


async def health(_: web.Request) -> web.StreamResponse:
    """``/health``: overall status and the (single, local) service list."""
    return gin_json(200, {"status": "healthy", "services": HEALTH_SERVICES})


async def health_live(_: web.Request) -> web.StreamResponse:
    """``/health/live``."""
    return gin_json(200, {"status": "alive"})


async def health_ready(_: web.Request) -> web.StreamResponse:
    """``/health/ready``."""
    return gin_json(200, {"ready": True, "services": HEALTH_SERVICES})


async def metrics(request: web.Request) -> web.StreamResponse:
    """A small Prometheus text exposition (GET and HEAD)."""
    counters = request.app[COUNTERS]
    lines = [
        "# HELP runner_jobs_enqueued_total Jobs accepted by POST /api/v1/jobs.",
        "# TYPE runner_jobs_enqueued_total counter",
        f"runner_jobs_enqueued_total {counters.jobs_enqueued}",
        "# HELP runner_cross_region_jobs_submitted_total Jobs accepted by the cross-region route.",
        "# TYPE runner_cross_region_jobs_submitted_total counter",
        f"runner_cross_region_jobs_submitted_total {counters.cross_region_submitted}",
        "# HELP runner_http_requests_total Requests received.",
        "# TYPE runner_http_requests_total counter",
        f"runner_http_requests_total {counters.requests}",
    ]
    return web.Response(
        body=("\n".join(lines) + "\n").encode(),
        headers={hdrs.CONTENT_TYPE: "text/plain; version=0.0.4; charset=utf-8"},
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    """``/ws``: a hello carrying the captured X-Request-ID, then echo until closed."""
    ws = web.WebSocketResponse(autoping=True)
    ws.headers["X-Request-ID"] = request[REQUEST_ID]
    await ws.prepare(request)
    hello = {"type": "connected", "request_id": request[REQUEST_ID], "server": "reference-runner"}
    request.app[WEBSOCKETS].add(ws)
    try:
        await ws.send_str(ginjson.encode(hello).decode())
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
    finally:
        request.app[WEBSOCKETS].discard(ws)
    return ws


async def _close_websockets(app: web.Application) -> None:
    open_sockets = app[WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=1001, message=b"server shutdown")


async def _close_store(app: web.Application) -> None:
    app[STORE].close()
    await app[REPLAY].close()


# -- factory ---------------------------------------------------------------------------------


def create_reference_runner(
    db_path: str | Path = ":memory:",
    *,
    execute: bool = True,
    cross_region_enabled: bool = True,
    standard_signature_bypass: bool = True,
    faults: ReferenceRunnerFaults | None = None,
    received_limit: int = 1000,
    clock_ns: Callable[[], int] = time.time_ns,
    rate_limit_per_minute: int | None = None,
    trust_enforce: bool = False,
    trusted_keys: TrustedKeys | None = None,
    replay_redis_url: str | None = None,
    nonce_ttl_seconds: int = DEFAULT_NONCE_TTL_SECONDS,
) -> web.Application:
    """Build the reference runner app (see the package docstring for every option)."""
    app = web.Application(
        middlewares=[
            record_middleware,
            request_id_middleware,
            validate_json_middleware,
            cors_middleware,
            security_headers_middleware,
            rate_limit_middleware,
            not_found_middleware,
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[STORE] = ReferenceStore(db_path)
    app[RECEIVED] = ReceivedLog(received_limit)
    app[FAULTS] = faults if faults is not None else ReferenceRunnerFaults()
    app[SETTINGS] = RunnerSettings(
        execute=execute,
        cross_region_enabled=cross_region_enabled,
        standard_signature_bypass=standard_signature_bypass,
        clock_ns=clock_ns,
        rate_limit=None if rate_limit_per_minute is None else TokenBuckets(rate_limit_per_minute),
        trust_enforce=trust_enforce,
        trusted_keys=trusted_keys,
    )
    app[REPLAY] = ReplayGuard(replay_redis_url, nonce_ttl_seconds)
    app[COUNTERS] = RunnerCounters()
    open_sockets: set[web.WebSocketResponse] = set()
    app[WEBSOCKETS] = open_sockets

    router = app.router
    for prefix in ("", "/api/v1"):
        router.add_get(f"{prefix}/health", health, allow_head=False)
        router.add_get(f"{prefix}/health/live", health_live, allow_head=False)
        router.add_get(f"{prefix}/health/ready", health_ready, allow_head=False)
        router.add_get(f"{prefix}/metrics", metrics, allow_head=True)
    router.add_post(STANDARD_PATH, create_job)
    router.add_get(STANDARD_PATH, list_jobs, allow_head=False)
    if cross_region_enabled:
        router.add_post(CROSS_REGION_PATH, create_cross_region_job)
    router.add_get("/api/v1/jobs/{id}", get_job, allow_head=False)
    router.add_get("/api/v2/jobs/{job_id}/bias-analysis", get_bias_analysis, allow_head=False)
    router.add_get("/ws", websocket, allow_head=False)
    app.on_shutdown.append(_close_websockets)
    app.on_cleanup.append(_close_store)
    return app

"""An in-process stand-in for the Project Beacon runner (Go), for tests and ``make demo``.

``create_reference_runner(db_path=":memory:", *, ...)`` returns an aiohttp application
that answers like the real runner on the routes the adapter cares about
(docs/runner-contract.md §3-§7, §10), byte for byte where clients compare bytes:

- global middleware: X-Request-ID echo (1-128 chars) or 32 fresh hex; POST/PUT without an
  ``application/json`` Content-Type get 400 ``invalid_content_type``; CORS headers and
  204 for every OPTIONS; the runner's security headers; an optional per-IP rate limit;
  gin's compact sorted JSON and plain-text ``404 page not found``;
- ``POST /api/v1/jobs``: 1 MB read cap, ``invalid_body`` / ``invalid_json`` /
  ``validation_error``, ``Validate()`` defaults, Idempotency-Key (200 ``idempotent`` on a
  known key), upsert into ``jobs``, 202 ``{"id","status":"enqueued"}``;
- ``POST /api/v1/jobs/cross-region``: Go bind, V1 verification only when signature and
  public key are both set, ``Validate()``, wrapper defaults (min_regions 0 -> 3,
  min_success_rate 0 -> 0.67), plain INSERT (a reused id -> 500), the nine-key 202;
- ``GET /api/v1/jobs``, ``GET /api/v1/jobs/{id}``, ``GET /api/v2/jobs/{id}/bias-analysis``
  (both 404 bodies and the 200 shape), the six health routes, GET/HEAD ``/metrics``, and a
  ``/ws`` WebSocket that greets with the captured X-Request-ID and echoes.

Execution is instant and deterministic (``execution``): it runs inside the submit handler,
before the answer, so a test can ask for the analysis right after the 202. A region whose
upper-cased name starts with ``FAIL`` always fails; all others succeed. Data lives in
SQLite (``store``) in the runner's table layout.

Options of ``create_reference_runner``:

- ``execute=False``: record submissions but never run them (jobs stay ``queued``, the
  cross-region execution stays ``running``, bias analysis answers the second 404);
- ``cross_region_enabled=False``: do not register the cross-region route, like a runner
  without a database or an older build; it then answers gin's plain-text 404;
- ``standard_signature_bypass`` (default True, like ``RUNNER_SIG_BYPASS=true`` in
  production): when False, ``POST /api/v1/jobs`` verifies the signature as the runner's
  security pipeline does in ``SIGN_CANON_MODE=auto`` (V1 over the spec *after*
  ``Validate()`` defaults and model normalisation, then the raw-body fallback) and answers
  400 ``{"error", "error_code": "signature_mismatch"}``; this is what makes current portal
  specs fail on the standard route;
- ``faults``: a ``ReferenceRunnerFaults`` to inject failures, delays and connection resets
  on submissions (see ``faults``); also reachable as ``app[FAULTS]``;
- ``received_limit``: how many requests ``app[RECEIVED]`` keeps (method, path, query,
  headers, body bytes, request id), so tests can assert what reached the runner;
- ``clock_ns``: the clock, for timestamps, generated ids and the rate limit;
- ``rate_limit_per_minute`` (default None = off; the runner uses 60): the runner's token
  bucket per client IP, keyed like gin's ``ClientIP()`` on the leftmost
  X-Forwarded-For, answering 429 ``RATE_LIMIT_EXCEEDED`` when empty;
- ``trust_enforce`` (default False, like ``TRUST_ENFORCE``), ``trusted_keys``,
  ``replay_redis_url``, ``nonce_ttl_seconds``: the standard route's security pipeline
  before its signature step (``security``): a key not trusted in ``trusted_keys`` (when
  given) gets 400 ``trust_violation:<status>``, a missing ``metadata``/``timestamp`` 400
  ``missing_field:*``, and a non-empty ``metadata.nonce`` is claimed in Redis as
  ``nonce:<public_key>:<nonce>`` (SETNX with the TTL): a repeat gets 400
  ``replay_detected``, no Redis or a failing one 503 ``protection_unavailable:replay``.

``app[STORE]`` is the ``ReferenceStore``: ``count_jobs``, ``get_job``,
``cross_region_execution_for``, ``analysis_for``, ``region_results_for`` and ``query`` (raw
SQL) read what a run left behind.
"""

from __future__ import annotations

# Imported for its effect: adapter.backfill can then open ``sqlite:///`` reference-runner files.
from adapter.devkit.reference_runner import backfill_store as backfill_store
from adapter.devkit.reference_runner.app import (
    COUNTERS,
    FAULTS,
    RECEIVED,
    SETTINGS,
    STORE,
    ReceivedLog,
    ReceivedRequest,
    create_reference_runner,
)
from adapter.devkit.reference_runner.faults import (
    CROSS_REGION_PATH,
    STANDARD_PATH,
    InjectedFailure,
    ReferenceRunnerFaults,
)
from adapter.devkit.reference_runner.store import ReferenceStore

__all__ = [
    "COUNTERS",
    "CROSS_REGION_PATH",
    "FAULTS",
    "RECEIVED",
    "SETTINGS",
    "STANDARD_PATH",
    "STORE",
    "InjectedFailure",
    "ReceivedLog",
    "ReceivedRequest",
    "ReferenceRunnerFaults",
    "ReferenceStore",
    "create_reference_runner",
]

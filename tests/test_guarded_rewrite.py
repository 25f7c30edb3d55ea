"""The guarded rewrite through real sockets: the 400 fallback, the guard, /admin/rewrite."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from adapter.devkit.reference_runner import FAULTS, RECEIVED, STORE, ReceivedRequest
from adapter.jobs.guard import Failure, GuardState
from adapter.jobs.rewrite import Reason, rejection_label
from adapter.metrics import (
    CROSS_REGION_REJECTIONS,
    GUARD_FAILURES,
    GUARD_STATES,
    REPLAY_CHECK_RESULTS,
)
from adapter.replay_store import Claim
from tests.conftest import AdminFactory, runner_verifies_other_bytes
from tests.portal import body, portal_spec, sign
from tests.test_submission import (
    ON,
    PORTAL_KEY,
    SEED_B64,
    Stack,
    _post,
    _sample,
    _stack,  # noqa: F401 - the fixture, registered by import
)

CROSS = "/api/v1/jobs/cross-region"
STANDARD = "/api/v1/jobs"
# A guard that judges by two samples and cools down quickly, for tests.
QUICK_GUARD = {
    "ADAPTER_GUARD_WINDOW_SIZE": "2",
    "ADAPTER_GUARD_MIN_SAMPLES": "2",
    "ADAPTER_GUARD_COOLDOWN_SECONDS": "0.3",
}


def _job(job_id: str) -> bytes:
    return body(sign(portal_spec(job_id=job_id), PORTAL_KEY, "portal_5fa6ece"))


def _runner_canonical_drifts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner verifies other bytes than the adapter signs (a canonical-form drift
    between versions): its real cross-region handler then answers 400 on the signature."""
    runner_verifies_other_bytes(monkeypatch)


def test_label_sets_match_the_enums() -> None:
    """The metric label sets pre-created at start-up are exactly the values emitted."""
    assert set(GUARD_STATES) == {s.value for s in GuardState}
    assert set(GUARD_FAILURES) == {f.value for f in Failure}
    assert set(REPLAY_CHECK_RESULTS) >= {c.value for c in Claim}
    errors = ["Invalid request format", "Invalid JobSpec signature", "Invalid JobSpec"]
    labels = {rejection_label(e) for e in [*errors, "invalid_content_type", "x", None, 3]}
    assert labels == set(CROSS_REGION_REJECTIONS)


async def test_cross_region_400_falls_back_to_the_original(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signature the runner refuses (400, before any INSERT) sends the original bytes to
    the standard route; the client gets that answer, the runner holds one job."""
    _runner_canonical_drifts(monkeypatch)
    runner, adapter = await stack(ON)
    data = _job("job-400")
    with capture_logs() as logs:
        status, answer, decision = await _post(http, adapter, data)
    assert (status, answer) == (202, {"id": "job-400", "status": "enqueued"})
    assert decision == "fallback; reason=cross_region_rejected"
    assert len(runner.app[RECEIVED].to(CROSS)) == 1
    assert [r.body for r in runner.app[RECEIVED].to(STANDARD)] == [data]
    assert runner.app[STORE].count_jobs("job-400") == 1
    rejection = "adapter_cross_region_rejections_total"
    assert _sample(adapter, rejection, error="invalid_signature") == 1
    assert _sample(adapter, rejection, error="other") == 0
    assert _sample(adapter, "adapter_fallbacks_total") == 1
    fallback = {"decision": "fallback", "reason": "cross_region_rejected"}
    assert _sample(adapter, "adapter_rewrite_decisions_total", **fallback) == 1
    line = next(line for line in logs if line["event"] == "cross_region_rejected")
    assert line["log_level"] == "error"
    assert line["error"] == "invalid_signature"
    assert json.loads(line["body"])["error"] == "Invalid JobSpec signature"


async def test_unknown_400_error_is_counted_as_other(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """An ``error`` value the adapter does not know becomes the label ``other``."""
    runner, adapter = await stack(ON)
    runner.app[FAULTS].fail_next(1, status=400, body={"error": "brand new <script>"})
    status, _, decision = await _post(http, adapter, _job("job-other"))
    assert (status, decision) == (202, "fallback; reason=cross_region_rejected")
    assert _sample(adapter, "adapter_cross_region_rejections_total", error="other") == 1


async def test_timeout_after_sending_is_never_resent(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """No answer in time from the cross-region route: 504, nothing resent, a guard failure."""
    runner, adapter = await stack({**ON, "ADAPTER_UPSTREAM_TIMEOUT": "0.3"})
    runner.app[FAULTS].delay_after_record = 1.0
    status, _, decision = await _post(http, adapter, _job("job-slow"))
    assert status == 504
    assert decision.startswith("rewritten; reason=in_rollout")
    assert runner.app[RECEIVED].to(STANDARD) == []
    assert _sample(adapter, "adapter_rewrite_guard_failures_total", reason="timeout") == 1


async def test_guard_opens_passes_through_probes_and_closes(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """Two 5xx in a window of two open the guard: the next job passes through unchanged;
    after the cool-down one probe is rewritten and, accepted, closes the guard."""
    runner, adapter = await stack({**ON, **QUICK_GUARD})
    runner.app[FAULTS].fail_next(2, status=503, body={"error": "busy"})
    with capture_logs() as logs:
        assert [(await _post(http, adapter, _job(f"j{i}")))[0] for i in range(2)] == [503, 503]
        data = _job("j-open")
        status, _, decision = await _post(http, adapter, data)
        assert status == 202
        assert decision.startswith("passthrough; reason=guard_open; bucket=")
        assert runner.app[RECEIVED].last(STANDARD).body == data
        assert _sample(adapter, "adapter_rewrite_guard_state", state="open") == 1
        await asyncio.sleep(0.35)
        status, answer, decision = await _post(http, adapter, _job("j-probe"))
        assert (status, decision.split(";")[0]) == (202, "rewritten")
        assert answer is not None
        assert answer["status"] == "submitted"
    states = [
        (x["before"], x["after"], x["cause"]) for x in logs if x["event"] == "rewrite_guard_state"
    ]
    assert states == [
        ("closed", "open", "upstream_5xx"),
        ("open", "half_open", None),
        ("half_open", "closed", None),
    ]
    assert _sample(adapter, "adapter_rewrite_guard_state", state="closed") == 1
    assert _sample(adapter, "adapter_rewrite_guard_state", state="open") == 0
    assert _sample(adapter, "adapter_rewrite_guard_trips_total", cause="upstream_5xx") == 1
    reason = {"decision": "passthrough", "reason": Reason.GUARD_OPEN.value}
    assert _sample(adapter, "adapter_rewrite_decisions_total", **reason) == 1


async def test_guard_trips_on_cross_region_400s_and_stops_the_detour(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that refuses every rewrite (400) costs each job a detour until the guard
    opens; then jobs go straight to the standard route. Every job is created once."""
    _runner_canonical_drifts(monkeypatch)
    runner, adapter = await stack({**ON, **QUICK_GUARD, "ADAPTER_GUARD_COOLDOWN_SECONDS": "60"})
    decisions = [(await _post(http, adapter, _job(f"k{i}")))[2].split(";")[1] for i in range(4)]
    assert decisions == [" reason=cross_region_rejected"] * 2 + [" reason=guard_open"] * 2
    assert len(runner.app[RECEIVED].to(CROSS)) == 2
    assert [runner.app[STORE].count_jobs(f"k{i}") for i in range(4)] == [1, 1, 1, 1]
    trips = "adapter_rewrite_guard_trips_total"
    assert _sample(adapter, trips, cause="cross_region_rejected") == 1


async def test_failed_probe_reopens(stack: Stack, http: aiohttp.ClientSession) -> None:
    """A probe that fails opens the guard for another cool-down."""
    runner, adapter = await stack({**ON, **QUICK_GUARD})
    runner.app[FAULTS].fail_next(3, status=500, body={"error": "db down"})
    for i in range(2):
        await _post(http, adapter, _job(f"p{i}"))
    await asyncio.sleep(0.35)
    status, _, decision = await _post(http, adapter, _job("p-probe"))
    assert (status, decision.split(";")[0]) == (500, "rewritten")
    _, _, decision = await _post(http, adapter, _job("p-after"))
    assert decision.startswith("passthrough; reason=guard_open")
    assert _sample(adapter, "adapter_rewrite_guard_trips_total", cause="upstream_5xx") == 2


async def test_guard_disabled_keeps_rewriting(stack: Stack, http: aiohttp.ClientSession) -> None:
    """ADAPTER_GUARD_ENABLED=false: failures never stop the rewrite."""
    runner, adapter = await stack({**ON, **QUICK_GUARD, "ADAPTER_GUARD_ENABLED": "false"})
    runner.app[FAULTS].fail_next(3, status=503, body={"error": "busy"})
    decisions = [(await _post(http, adapter, _job(f"d{i}")))[2] for i in range(4)]
    assert all(d.startswith("rewritten; reason=in_rollout") for d in decisions)
    assert _sample(adapter, "adapter_rewrite_guard_state", state="closed") == 1


async def test_admin_rewrite_shows_settings_guard_and_signer(
    stack: Stack, http: aiohttp.ClientSession, start_admin: AdminFactory
) -> None:
    """GET /admin/rewrite: rollout as configured, the guard's state and failures, the
    signer's key id, and never the signing key or the salt."""
    env = {**ON, **QUICK_GUARD, "ADAPTER_ROLLOUT_SALT": "s3cret-salt"}
    runner, adapter = await stack(env)
    admin = await start_admin(adapter.app)
    runner.app[FAULTS].fail_next(2, status=503, body={"error": "busy"})
    for i in range(2):
        await _post(http, adapter, _job(f"a{i}"))
    async with http.get(admin / "admin/rewrite") as response:
        assert response.status == 200
        raw = await response.text()
    view: dict[str, Any] = json.loads(raw)
    assert SEED_B64 not in raw
    assert "s3cret-salt" not in raw
    assert view["rollout"]["percent"] == 100.0
    assert view["rollout"]["custom_salt"] is True
    guard = view["guard"]
    assert (guard["enabled"], guard["state"], guard["last_trip_cause"]) == (
        True,
        "open",
        "upstream_5xx",
    )
    assert guard["failures_by_reason"] == {"upstream_5xx": 2}
    assert guard["settings"]["min_samples"] == 2
    assert view["signer"]["key_id"].startswith("sha256:")
    assert view["replay_check"] == {
        "active": False,
        "redis": None,
        "ttl_seconds": 600,
        "timeout_seconds": 0.5,
    }


async def test_self_check_failures_open_the_guard(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our own signature failing its check counts against the rewrite; once it is fixed
    the probe after the cool-down closes the guard."""
    from adapter.jobs.canonical import canonical_v1

    monkeypatch.setattr("adapter.jobs.signing.canonical_v1", lambda spec: canonical_v1(spec) + b" ")
    _, adapter = await stack({**ON, **QUICK_GUARD})
    for i in range(2):
        status, _, decision = await _post(http, adapter, _job(f"s{i}"))
        assert (status, decision.split(";")[1]) == (202, " reason=self_check_failed")
    assert _sample(adapter, "adapter_rewrite_guard_trips_total", cause="self_check_failed") == 1
    monkeypatch.undo()
    _, _, decision = await _post(http, adapter, _job("s-open"))
    assert decision.startswith("passthrough; reason=guard_open")
    await asyncio.sleep(0.35)
    _, _, decision = await _post(http, adapter, _job("s-probe"))
    assert decision.startswith("rewritten")
    assert _sample(adapter, "adapter_rewrite_guard_state", state="closed") == 1


async def test_guard_under_mixed_faults_never_duplicates(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """30 jobs by 6 retrying clients while 5xx and resets are armed, guard on: it opens
    and probes as it likes, and still every job is created exactly once."""
    from adapter.devkit.reference_runner import COUNTERS
    from tests.test_reliability_jobs import _new_submission, _submit_with_retries

    runner, adapter = await stack({**ON, **QUICK_GUARD, "ADAPTER_UPSTREAM_TIMEOUT": "0.5"})
    faults = runner.app[FAULTS]
    faults.fail_next(6, 503)
    faults.fail_next(3, 500, {"error": "database is locked"})
    faults.reset_next(3)
    submissions = [_new_submission() for _ in range(30)]
    gate = asyncio.Semaphore(6)

    async def client(submission: Any) -> Any:
        async with gate:
            return await _submit_with_retries(http, adapter, submission)

    async with asyncio.timeout(60):
        finals = await asyncio.gather(*(client(s) for s in submissions))
    assert all(f.status in (200, 202) for f in finals)
    log = runner.app[RECEIVED]
    received: list[ReceivedRequest] = list(log)
    routes_per_attempt = {
        tuple(r.path for r in received if r.request_id == attempt.request_id)
        for submission in submissions
        for attempt in submission.attempts
    }
    # Each attempt reached the runner once: rewritten, or passed through while open.
    assert routes_per_attempt <= {(CROSS,), (STANDARD,)}, routes_per_attempt
    assert routes_per_attempt == {(CROSS,), (STANDARD,)}
    counters = runner.app[COUNTERS]
    accepted = counters.jobs_enqueued + counters.cross_region_submitted
    assert accepted == runner.app[STORE].count_jobs() == 30
    assert all(runner.app[STORE].count_jobs(s.job_id) == 1 for s in submissions)
    assert _sample(adapter, "adapter_rewrite_guard_trips_total", cause="upstream_5xx") >= 1

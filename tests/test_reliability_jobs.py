"""No duplicate jobs: injected runner faults never make the adapter create a job twice.

The adapter runs at 100 % in front of the reference runner with a 0.5 s upstream
timeout. Faults are armed on the route the adapter talks to (cross-region, or the
standard route on a runner without cross-region), and clients behave like the portal:
they retry the same body with the same Idempotency-Key after a 5xx or a dropped
connection. Three things are checked after every scenario:

- every client attempt reached the runner as exactly one submission (two only when the
  first was the cross-region route's 404, the documented fallback): the adapter never
  resends, which each attempt's own X-Request-ID proves in the runner's received log;
- the runner accepted as many submissions as it holds jobs (``COUNTERS`` against
  ``count_jobs()``), and holds each id at most once;
- no answer is a 500 made by the adapter: a 5xx is either the runner's own, relayed with
  X-Adapter-Decision, or the adapter's specified 502/504 with Proxy-Status.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer

from adapter.devkit.reference_runner import (
    COUNTERS,
    CROSS_REGION_PATH,
    FAULTS,
    RECEIVED,
    STANDARD_PATH,
    STORE,
    ReceivedRequest,
    ReferenceRunnerFaults,
    create_reference_runner,
)
from tests.conftest import AdapterFactory, RunningAdapter
from tests.portal import body, portal_spec, sign

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
ENV = {
    "ADAPTER_ROLLOUT_PERCENT": "100",
    "ADAPTER_SIGNING_KEY": SEED_B64,
    "ADAPTER_UPSTREAM_TIMEOUT": "0.5",
    # The faults below would open the rewrite guard and stop the rewrite these scenarios
    # count on; the same faults with the guard on: tests/test_guarded_rewrite.py.
    "ADAPTER_GUARD_ENABLED": "false",
}
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
MAX_ATTEMPTS = 6

_ids = itertools.count()


@dataclass
class Attempt:
    """One client attempt: what it sent and what it saw."""

    request_id: str
    status: int | None  # None: the connection dropped
    decision: str = ""
    proxy_status: str | None = None
    body: bytes = b""


@dataclass
class Submission:
    """One job as a retrying client submits it."""

    job_id: str
    data: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


Stack = Callable[..., Awaitable[tuple[TestServer, RunningAdapter]]]


@pytest.fixture(name="stack")
def _stack(aiohttp_server: AiohttpServer, start_adapter: AdapterFactory) -> Stack:
    """Factory: a reference runner with faults and the adapter (100 %, 0.5 s timeout)."""

    async def start(**runner_options: Any) -> tuple[TestServer, RunningAdapter]:
        runner = await aiohttp_server(create_reference_runner(**runner_options))
        adapter = await start_adapter(runner.make_url("/"), ENV)
        return runner, adapter

    return start


def _new_submission() -> Submission:
    job_id = f"bias-detection-reliability-{next(_ids)}"
    spec = portal_spec(job_id=job_id, wallet=f"0x{next(_ids):040x}")
    return Submission(job_id, body(sign(spec, PORTAL_KEY, "portal_5fa6ece")))


async def _attempt(
    http: aiohttp.ClientSession, adapter: RunningAdapter, submission: Submission
) -> Attempt:
    request_id = f"{submission.job_id}-try{len(submission.attempts)}"
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"key-{submission.job_id}",
        "X-Request-ID": request_id,
    }
    try:
        async with http.post(
            adapter.url / "api/v1/jobs", data=submission.data, headers=headers
        ) as response:
            attempt = Attempt(
                request_id,
                response.status,
                response.headers.get("X-Adapter-Decision", ""),
                response.headers.get("Proxy-Status"),
                await response.read(),
            )
    except aiohttp.ClientError:
        attempt = Attempt(request_id, None)
    submission.attempts.append(attempt)
    return attempt


async def _submit_with_retries(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    submission: Submission,
    between: Callable[[], None] | None = None,
) -> Attempt:
    """Submit until a 2xx or 4xx answer, like the portal; at most MAX_ATTEMPTS tries."""
    for _ in range(MAX_ATTEMPTS):
        attempt = await _attempt(http, adapter, submission)
        if attempt.status is not None and attempt.status < 500:
            return attempt
        if between is not None:
            between()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{submission.job_id}: no answer after {MAX_ATTEMPTS} attempts")


def _assert_not_adapter_500(attempt: Attempt) -> None:
    """A 5xx is the runner's (relayed, with a decision) or the adapter's 502/504."""
    if attempt.status is None or attempt.status < 500:
        return
    assert attempt.decision, attempt
    assert b"adapter_error" not in attempt.body, attempt
    if attempt.proxy_status is not None:
        assert attempt.status in (502, 504), attempt
        code = orjson.loads(attempt.body)["error_code"]
        assert code in ("upstream_unavailable", "upstream_timeout"), attempt


def _assert_no_duplicates(runner: TestServer, submissions: list[Submission]) -> None:
    log = runner.app[RECEIVED]
    received: list[ReceivedRequest] = list(log)
    for submission in submissions:
        for attempt in submission.attempts:
            _assert_not_adapter_500(attempt)
            posts = [
                r.path
                for r in received
                if r.request_id == attempt.request_id and r.method == "POST"
            ]
            assert posts in ([CROSS_REGION_PATH], [CROSS_REGION_PATH, STANDARD_PATH]), (
                attempt,
                posts,
            )
        assert runner.app[STORE].count_jobs(submission.job_id) <= 1
    counters = runner.app[COUNTERS]
    accepted = counters.jobs_enqueued + counters.cross_region_submitted
    assert accepted == runner.app[STORE].count_jobs(), "a job was accepted twice"


def _arm(faults: ReferenceRunnerFaults, kind: str) -> None:
    if kind == "fail-503":
        faults.fail_next(1, 503, {"error": "Service temporarily unavailable"})
    elif kind == "fail-500":
        faults.fail_next(1, 500, {"error": "boom"})
    elif kind == "fail-500-duplicate-wording":
        # The duplicate-id wording while the job does not exist: still never resent.
        faults.fail_next(1, 500, {"error": "Failed to create job record"})
    elif kind == "reset-after-record":
        faults.reset_next(1)
    elif kind == "delay-after-record":
        faults.delay_after_record = 1.0
    elif kind == "delay-before-record":
        faults.delay_before_record = 1.0
    else:  # pragma: no cover - table typo
        raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "first_status", "recorded_after_first", "final_status"),
    [
        pytest.param("fail-503", 503, False, 202, id="fail-503"),
        pytest.param("fail-500", 500, False, 202, id="fail-500"),
        pytest.param("fail-500-duplicate-wording", 500, False, 202, id="fail-500-dup-wording"),
        pytest.param("reset-after-record", 502, True, 200, id="reset-after-record"),
        pytest.param("delay-after-record", 504, True, 200, id="delay-after-record"),
        pytest.param("delay-before-record", 504, None, None, id="delay-before-record"),
    ],
)
async def test_one_fault_then_retry_creates_the_job_once(
    stack: Stack,
    http: aiohttp.ClientSession,
    kind: str,
    first_status: int,
    recorded_after_first: bool | None,
    final_status: int | None,
) -> None:
    """After one fault the client's retry ends in 202 or the idempotent 200; one job, one send."""
    runner, adapter = await stack()
    faults = runner.app[FAULTS]
    _arm(faults, kind)
    submission = _new_submission()
    first = await _attempt(http, adapter, submission)
    assert first.status == first_status, first
    assert first.decision.startswith("rewritten"), first
    # The adapter's own 502/504 say so in Proxy-Status; the runner's answers do not.
    assert (first.proxy_status is not None) is (first_status in (502, 504)), first
    if recorded_after_first is not None:
        assert runner.app[STORE].count_jobs(submission.job_id) == int(recorded_after_first)
    faults.clear()
    for _ in range(100):  # bounded: a delayed first submission finishes recording
        if kind != "delay-before-record" or runner.app[STORE].count_jobs(submission.job_id):
            break
        await asyncio.sleep(0.02)
    final = await _submit_with_retries(http, adapter, submission)
    if final_status is not None:
        assert final.status == final_status, final
    else:
        assert final.status in (200, 202), final
    if final.status == 200:
        assert orjson.loads(final.body) == {"id": submission.job_id, "idempotent": True}
        assert final.decision == "rewritten; reason=idempotent_repeat"
    if kind.startswith("delay"):
        await asyncio.sleep(1.1)  # let the delayed runner handler finish before counting
    _assert_no_duplicates(runner, [submission])
    assert runner.app[STORE].count_jobs(submission.job_id) == 1


async def test_concurrent_clients_under_mixed_faults_never_duplicate(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """60 jobs by 12 retrying clients while 503s, 500s and resets are armed: 60 jobs, once each."""
    runner, adapter = await stack()
    faults = runner.app[FAULTS]
    faults.fail_next(8, 503)
    faults.fail_next(4, 500, {"error": "database is locked"})
    faults.reset_next(6)
    chooser = random.Random(6)

    def rearm() -> None:
        # Between retries, sometimes arm one more fault (bounded by the attempt count).
        if chooser.random() < 0.3:
            _arm(faults, chooser.choice(["fail-503", "fail-500", "reset-after-record"]))

    submissions = [_new_submission() for _ in range(60)]
    gate = asyncio.Semaphore(12)

    async def client(submission: Submission) -> Attempt:
        async with gate:
            return await _submit_with_retries(http, adapter, submission, rearm)

    async with asyncio.timeout(60):
        finals = await asyncio.gather(*(client(s) for s in submissions))
    faults.clear()
    assert all(f.status in (200, 202) for f in finals), [f for f in finals if f.status]
    assert faults.injected_failures >= 12
    assert faults.injected_resets >= 6
    _assert_no_duplicates(runner, submissions)
    assert runner.app[STORE].count_jobs() == 60
    assert all(runner.app[STORE].count_jobs(s.job_id) == 1 for s in submissions)


async def test_same_job_sent_concurrently_is_created_once(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """Eight simultaneous copies of one job: one 202, the others the idempotent 200."""
    runner, adapter = await stack()
    original = _new_submission()
    # Same job id and body; each copy has its own request ids (the job id plus a suffix).
    copies = [Submission(f"{original.job_id}-copy{i}", original.data) for i in range(8)]
    attempts = await asyncio.gather(*(_attempt(http, adapter, c) for c in copies))
    statuses = sorted(a.status or 0 for a in attempts)
    assert statuses == [200] * 7 + [202], attempts
    _assert_no_duplicates(runner, copies)
    assert runner.app[STORE].count_jobs(original.job_id) == 1


@pytest.mark.parametrize(
    ("kind", "first_status", "final_status"),
    [
        pytest.param("fail-503", 503, 202, id="fail-503"),
        pytest.param("fail-500", 500, 202, id="fail-500"),
        pytest.param("reset-after-record", 502, 200, id="reset-after-record"),
        pytest.param("delay-after-record", 504, 200, id="delay-after-record"),
    ],
)
async def test_fallback_path_under_faults_sends_the_original_once(
    stack: Stack, http: aiohttp.ClientSession, kind: str, first_status: int, final_status: int
) -> None:
    """Without a cross-region route, a fault on the standard route is relayed, never resent."""
    faults = ReferenceRunnerFaults(paths=frozenset({STANDARD_PATH}))
    runner, adapter = await stack(cross_region_enabled=False, faults=faults)
    _arm(faults, kind)
    submission = _new_submission()
    first = await _attempt(http, adapter, submission)
    assert first.status == first_status, first
    assert first.decision == "fallback; reason=cross_region_missing", first
    faults.clear()
    final = await _submit_with_retries(http, adapter, submission)
    assert final.status == final_status, final
    assert final.decision == "fallback; reason=cross_region_missing"
    if final_status == 200:  # the runner's own Idempotency-Key answer
        assert orjson.loads(final.body) == {"id": submission.job_id, "idempotent": True}
    if kind.startswith("delay"):
        await asyncio.sleep(1.1)  # let the delayed runner handler finish before counting
    log = runner.app[RECEIVED]
    received: list[ReceivedRequest] = list(log)
    for attempt in submission.attempts:
        _assert_not_adapter_500(attempt)
        posts = [r.path for r in received if r.request_id == attempt.request_id]
        assert posts == [CROSS_REGION_PATH, STANDARD_PATH], (attempt, posts)
    assert runner.app[STORE].count_jobs(submission.job_id) == 1
    assert runner.app[COUNTERS].jobs_enqueued == 1

"""Replay protection: the adapter claims the runner's nonce key in the runner's own Redis.

Real redis-server (tests/redis_server.py), the reference runner with TRUST_ENFORCE on and
its replay check against the same Redis, and the adapter in front, all on real sockets.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from hypothesis import given, strategies as st
from structlog.testing import capture_logs

from adapter.app import create_app
from adapter.config import Config
from adapter.devkit.reference_runner import RECEIVED, STORE, create_reference_runner
from adapter.jobs.replay import MetadataProblem, metadata_problem, nonce_key
from adapter.jobs.rewrite import Decision, Reason, RewriteSettings, Verdict, decide
from adapter.jobs.rollout import BUCKETS, RolloutPolicy
from adapter.jobs.signing import ServiceKey
from adapter.jobs.trust import TrustedKeys
from tests.conftest import (
    AdapterFactory,
    free_port,
    runner_verifies_other_bytes,
    silent_server,
)
from tests.portal import body, portal_spec, sign
from tests.redis_server import RedisServer
from tests.served_adapter import served_adapter
from tests.test_submission import (
    JSON_HEADERS,
    ON,
    PORTAL_KEY,
    Stack,
    _post,
    _sample,
    _stack,  # noqa: F401 - the fixture, registered by import
)

PORTAL_PUBLIC = base64.b64encode(bytes(PORTAL_KEY.verify_key)).decode()
TRUSTED = json.dumps([{"kid": "portal-1", "public_key": PORTAL_PUBLIC, "status": "active"}])
CROSS = "/api/v1/jobs/cross-region"
NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
STANDARD = "/api/v1/jobs"


def _job(job_id: str, nonce: str, **metadata: Any) -> bytes:
    spec = portal_spec(job_id=job_id)
    spec["metadata"]["nonce"] = nonce
    spec["metadata"].update(metadata)
    for name, value in metadata.items():
        if value is None:
            del spec["metadata"][name]
    return body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))


def _adapter_env(tmp_path: Path, redis_url: str | None) -> dict[str, str]:
    path = tmp_path / "trusted.json"
    path.write_text(TRUSTED)
    env = {**ON, "ADAPTER_TRUST_ENFORCE": "true", "ADAPTER_TRUSTED_KEYS_FILE": str(path)}
    if redis_url is not None:
        env["ADAPTER_REPLAY_REDIS_URL"] = redis_url
    return env


def _runner_options(redis: RedisServer, **extra: Any) -> dict[str, Any]:
    return {
        "trust_enforce": True,
        "trusted_keys": TrustedKeys.from_bytes(TRUSTED.encode()),
        "replay_redis_url": redis.url,
        **extra,
    }


# -- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem", "key"),
    [
        ({"public_key": "PK", "metadata": {"timestamp": "t", "nonce": "n"}}, None, "nonce:PK:n"),
        ({"public_key": "PK", "metadata": {"timestamp": "t"}}, None, None),
        ({"public_key": "PK", "metadata": {"timestamp": "t", "nonce": ""}}, None, None),
        ({"public_key": "PK", "metadata": {"timestamp": "t", "nonce": 7}}, None, None),
        ({"public_key": "PK", "metadata": {"nonce": "n"}}, "missing_timestamp", "nonce:PK:n"),
        ({"public_key": "PK", "metadata": {"timestamp": ""}}, "missing_timestamp", None),
        ({"public_key": "PK", "metadata": {"timestamp": 5}}, "missing_timestamp", None),
        ({"public_key": "PK"}, "missing_metadata", None),
        ({"public_key": "PK", "metadata": ["x"]}, "missing_metadata", None),
    ],
)
def test_standard_route_rules(
    spec: dict[str, Any], problem: MetadataProblem | None, key: str | None
) -> None:
    """Timestamp presence and the nonce key, exactly as the standard route applies them."""
    assert metadata_problem(spec) == problem
    assert nonce_key(spec) == key


@given(
    st.text(min_size=1, max_size=60),
    st.one_of(st.none(), st.integers(), st.text(max_size=40)),
    st.one_of(st.none(), st.text(max_size=20)),
)
def test_nonce_key_is_the_runners(public_key: str, nonce: object, timestamp: str | None) -> None:
    """For any values: a key exactly when the nonce is a non-empty string, shaped
    nonce:<public_key>:<nonce>; the timestamp never changes the key."""
    spec: dict[str, Any] = {"public_key": public_key, "metadata": {"nonce": nonce}}
    if timestamp is not None:
        spec["metadata"]["timestamp"] = timestamp
    key = nonce_key(spec)
    if isinstance(nonce, str) and nonce:
        assert key == "nonce:" + public_key + ":" + nonce
    else:
        assert key is None
    assert (metadata_problem(spec) is None) is bool(timestamp)


def _decide_enforced(spec: dict[str, Any]) -> Verdict:
    settings = RewriteSettings(
        policy=RolloutPolicy(threshold=BUCKETS),
        service_key=ServiceKey.from_seed(bytes(range(32))),
        trusted_keys=TrustedKeys.from_bytes(TRUSTED.encode()),
        trust_enforce=True,
    )
    data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
    return decide(settings, data, content_type="application/json", content_encoding=None, now=NOW)


def test_decide_carries_the_replay_key_under_enforcement() -> None:
    """A rewrite under trust enforcement carries the key the runner would claim; the
    standard route's metadata rule decides before the rewrite is built."""
    verdict = _decide_enforced(portal_spec())
    assert verdict.decision is Decision.REWRITTEN
    assert verdict.replay_key == f"nonce:{PORTAL_PUBLIC}:uEBHZzH3wxjJTfs9VOyukA"
    no_timestamp = portal_spec()
    del no_timestamp["metadata"]["timestamp"]
    verdict = _decide_enforced(no_timestamp)
    assert (verdict.decision, verdict.reason) == (Decision.PASSTHROUGH, Reason.MISSING_TIMESTAMP)
    no_nonce = portal_spec()
    del no_nonce["metadata"]["nonce"]
    verdict = _decide_enforced(no_nonce)
    assert (verdict.decision, verdict.replay_key) == (Decision.REWRITTEN, None)


# -- through the adapter ---------------------------------------------------------------


async def test_replay_through_the_adapter_is_refused_by_the_runner(
    stack: Stack, http: aiohttp.ClientSession, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The first submission is rewritten and its nonce recorded under the submitter's key
    with the runner's TTL; the replay passes through and the runner refuses it."""
    runner, adapter = await stack(
        _adapter_env(tmp_path, redis_server.url), **_runner_options(redis_server)
    )
    data = _job("job-r1", "nonce-r1")
    status, answer, decision = await _post(http, adapter, data)
    assert (status, decision.split(";")[0]) == (202, "rewritten")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        key = f"nonce:{PORTAL_PUBLIC}:nonce-r1"
        assert 0 < await client.ttl(key) <= 600
    finally:
        await client.aclose()

    status, answer, decision = await _post(http, adapter, data)
    assert decision.startswith("passthrough; reason=replayed_nonce")
    assert status == 400
    assert answer is not None
    assert answer["error_code"] == "replay_detected"
    assert [r.body for r in runner.app[RECEIVED].to(STANDARD)] == [data]
    assert runner.app[STORE].count_jobs("job-r1") == 1
    assert _sample(adapter, "adapter_replay_checks_total", result="replayed") == 1
    # Straight to the runner's standard route: the same nonce space.
    async with http.post(runner.make_url(STANDARD), data=data, headers=JSON_HEADERS) as direct:
        assert direct.status == 400
        assert (await direct.json())["error_code"] == "replay_detected"


async def test_replay_across_two_adapter_processes(
    http: aiohttp.ClientSession,
    aiohttp_server: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Two adapter processes sharing the runner's Redis: a job rewritten by one and
    replayed through the other is refused by the runner."""
    runner = await aiohttp_server(create_reference_runner(**_runner_options(redis_server)))
    env = _adapter_env(tmp_path, redis_server.url)
    data = _job("job-two", "nonce-two")
    async with (
        served_adapter(runner.make_url(""), **env) as first,
        served_adapter(runner.make_url(""), **env) as second,
    ):
        async with http.post(first.proxy / "api/v1/jobs", data=data, headers=JSON_HEADERS) as a:
            assert a.status == 202
            assert a.headers["X-Adapter-Decision"].startswith("rewritten")
        async with http.post(second.proxy / "api/v1/jobs", data=data, headers=JSON_HEADERS) as b:
            assert b.status == 400
            assert (await b.json())["error_code"] == "replay_detected"
            assert b.headers["X-Adapter-Decision"].startswith("passthrough; reason=replayed_nonce")
    assert len(runner.app[RECEIVED].to(CROSS)) == 1
    assert runner.app[STORE].count_jobs("job-two") == 1


@pytest.mark.parametrize("cause", ["route_missing", "rejected_400"])
async def test_fallback_leaves_no_false_replay(
    stack: Stack,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cause: str,
) -> None:
    """The adapter's claim is released before the fallback: the standard route accepts the
    job (its nonce is new to it) and still refuses a real replay afterwards."""
    options = _runner_options(redis_server)
    if cause == "route_missing":
        options["cross_region_enabled"] = False
        reason = "cross_region_missing"
    else:
        runner_verifies_other_bytes(monkeypatch)
        reason = "cross_region_rejected"
    runner, adapter = await stack(_adapter_env(tmp_path, redis_server.url), **options)
    data = _job("job-fb", "nonce-fb")
    status, answer, decision = await _post(http, adapter, data)
    assert (status, answer, decision) == (
        202,
        {"id": "job-fb", "status": "enqueued"},
        f"fallback; reason={reason}",
    )
    assert _sample(adapter, "adapter_replay_checks_total", result="released") == 1
    status, answer, _ = await _post(http, adapter, data)
    assert status == 400
    assert answer is not None
    assert answer["error_code"] == "replay_detected"
    assert runner.app[STORE].count_jobs("job-fb") == 1


async def test_redis_stopped_mid_test(
    stack: Stack, http: aiohttp.ClientSession, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis goes away: the adapter passes the original through at once (counted, logged)
    and the runner answers for itself; Redis back, rewrites resume."""
    env = {**_adapter_env(tmp_path, redis_server.url), "ADAPTER_REPLAY_TIMEOUT": "0.5"}
    _, adapter = await stack(env, **_runner_options(redis_server))
    status, _, decision = await _post(http, adapter, _job("job-m1", "nonce-m1"))
    assert (status, decision.split(";")[0]) == (202, "rewritten")

    await redis_server.stop()
    with capture_logs() as logs:
        status, answer, decision = await _post(http, adapter, _job("job-m2", "nonce-m2"))
    assert decision.startswith("passthrough; reason=replay_check_unavailable")
    assert status == 503
    assert answer is not None
    assert answer["error_code"] == "protection_unavailable:replay"
    assert _sample(adapter, "adapter_replay_checks_total", result="unavailable") == 1
    assert [x["log_level"] for x in logs if x["event"] == "replay_check_unavailable"] == ["warning"]
    # A replay check that could not run says nothing about the rewrite: the guard stays closed.
    assert _sample(adapter, "adapter_rewrite_guard_state", state="closed") == 1

    await redis_server.start()
    status, _, decision = await _post(http, adapter, _job("job-m3", "nonce-m3"))
    assert (status, decision.split(";")[0]) == (202, "rewritten")


async def test_silent_redis_never_hangs_a_submission(
    stack: Stack, http: aiohttp.ClientSession, tmp_path: Path, redis_server: RedisServer
) -> None:
    """A Redis address that accepts connections and never answers costs one timeout."""
    async with silent_server() as port:
        env = {
            **_adapter_env(tmp_path, f"redis://127.0.0.1:{port}/0"),
            "ADAPTER_REPLAY_TIMEOUT": "0.2",
        }
        _, adapter = await stack(env, **_runner_options(redis_server))
        status, _, decision = await _post(http, adapter, _job("job-s1", "nonce-s1"))
        assert decision.startswith("passthrough; reason=replay_check_unavailable")
        assert status == 202  # the runner's own Redis works: it records the nonce itself


async def test_missing_timestamp_is_left_to_the_runner(
    stack: Stack, http: aiohttp.ClientSession, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A spec the standard route would refuse for its metadata is not rewritten."""
    runner, adapter = await stack(
        _adapter_env(tmp_path, redis_server.url), **_runner_options(redis_server)
    )
    data = _job("job-ts", "nonce-ts", timestamp=None)
    status, answer, decision = await _post(http, adapter, data)
    assert decision.startswith("passthrough; reason=missing_timestamp")
    assert status == 400
    assert answer is not None
    assert answer["error_code"] == "missing_field:timestamp"
    assert runner.app[RECEIVED].last(STANDARD).body == data


def test_startup_warns_when_replay_protection_is_the_runners_alone(tmp_path: Path) -> None:
    """Trust enforcement without ADAPTER_REPLAY_REDIS_URL: one warning at start-up."""
    env = {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:9", **_adapter_env(tmp_path, None)}
    with capture_logs() as logs:
        create_app(Config.from_env(env))
    assert [x["log_level"] for x in logs if x["event"] == "replay_protection_runner_only"] == [
        "warning"
    ]
    with capture_logs() as logs:
        create_app(Config.from_env({**env, "ADAPTER_REPLAY_REDIS_URL": "redis://127.0.0.1:9/0"}))
    assert not [x for x in logs if x["event"] == "replay_protection_runner_only"]


def test_redis_password_never_shown(tmp_path: Path) -> None:
    """The Redis URL's password stays out of the start-up config line."""
    env = {
        "ADAPTER_UPSTREAM_URL": "http://127.0.0.1:9",
        "ADAPTER_REPLAY_REDIS_URL": "redis://default:hunter2@redis.internal:6379/0",
    }
    shown = json.dumps(Config.from_env(env).redacted(), default=str)
    assert "hunter2" not in shown
    assert "redis.internal:6379" in shown


async def test_runner_unreachable_releases_the_claim(
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """A rewrite that never reached the runner (connection refused) gives its nonce back,
    so the client's retry is not taken for a replay."""
    env = _adapter_env(tmp_path, redis_server.url)
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}", env)
    status, _, decision = await _post(http, adapter, _job("job-down", "nonce-down"))
    assert (status, decision.split(";")[0]) == (502, "rewritten")
    assert _sample(adapter, "adapter_replay_checks_total", result="released") == 1
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.exists(f"nonce:{PORTAL_PUBLIC}:nonce-down") == 0
    finally:
        await client.aclose()


async def test_reference_runner_security_pipeline(
    aiohttp_server: Any, http: aiohttp.ClientSession
) -> None:
    """The reference runner's standard route with TRUST_ENFORCE: an unknown key is a
    trust violation, and a nonce without a Redis is the runner's 503."""
    other = TrustedKeys.from_bytes(b"[]")
    untrusting = await aiohttp_server(
        create_reference_runner(trust_enforce=True, trusted_keys=other)
    )
    async with http.post(
        untrusting.make_url(STANDARD), data=_job("j-t", "n-t"), headers=JSON_HEADERS
    ) as answer:
        assert answer.status == 400
        assert (await answer.json())["error_code"] == "trust_violation:unknown"
    no_redis = await aiohttp_server(create_reference_runner(trust_enforce=True))
    async with http.post(
        no_redis.make_url(STANDARD), data=_job("j-r", "n-r"), headers=JSON_HEADERS
    ) as answer:
        assert answer.status == 503
        assert (await answer.json())["error_code"] == "protection_unavailable:replay"
    async with http.post(
        no_redis.make_url(STANDARD), data=_job("j-n", ""), headers=JSON_HEADERS
    ) as answer:
        assert answer.status == 202  # no nonce: no replay check, as on the runner

"""POST /api/v1/jobs through the adapter, against the reference runner on real sockets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from adapter.devkit.reference_runner import FAULTS, RECEIVED, STORE, create_reference_runner
from adapter.jobs.rollout import bucket_of
from tests.conftest import VECTORS_DIR, AdapterFactory, RunningAdapter, free_port, load_vector
from tests.portal import body, portal_spec, sign

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
ON = {"ADAPTER_ROLLOUT_PERCENT": "100", "ADAPTER_SIGNING_KEY": SEED_B64}
OFF = {"ADAPTER_ROLLOUT_PERCENT": "0"}
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
OLD_PORTAL = sorted(p.name for p in (VECTORS_DIR / "old-portal").glob("*.json"))

Stack = Callable[..., Awaitable[tuple[TestServer, RunningAdapter]]]


@pytest.fixture(name="stack")
def _stack(aiohttp_server: AiohttpServer, start_adapter: AdapterFactory) -> Stack:
    """Factory: a reference runner with the given options and the adapter in front of it."""

    async def start(
        env: dict[str, str], **runner_options: Any
    ) -> tuple[TestServer, RunningAdapter]:
        runner = await aiohttp_server(create_reference_runner(**runner_options))
        adapter = await start_adapter(runner.make_url("/"), env)
        return runner, adapter

    return start


def _signed_body(**overrides: Any) -> bytes:
    return body(sign(portal_spec(**overrides), PORTAL_KEY, "portal_5fa6ece"))


def _sample(adapter: RunningAdapter, name: str, **labels: str) -> float:
    return adapter.registry.get_sample_value(name, labels) or 0.0


async def _post(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    data: bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any] | None, str]:
    async with http.post(
        adapter.url / "api/v1/jobs", data=data, headers=headers or JSON_HEADERS
    ) as response:
        raw = await response.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return response.status, parsed, response.headers.get("X-Adapter-Decision", "")


async def _bias_analysis(http: aiohttp.ClientSession, adapter: RunningAdapter, job: str) -> int:
    async with http.get(adapter.url / f"api/v2/jobs/{job}/bias-analysis") as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("name", OLD_PORTAL)
async def test_percent_zero_reproduces_the_404(
    stack: Stack, http: aiohttp.ClientSession, name: str
) -> None:
    """At 0 % an old-portal job reaches the standard route byte-identical; analysis is 404."""
    vector = load_vector(f"old-portal/{name}")
    runner, adapter = await stack(OFF)
    data = vector["body"].encode()
    status, answer, decision = await _post(http, adapter, data, vector["headers"])
    assert (status, answer) == (202, {"id": json.loads(data)["id"], "status": "enqueued"})
    assert decision.startswith("passthrough; reason=not_in_rollout; bucket=")
    received = runner.app[RECEIVED].last("/api/v1/jobs")
    assert received.body == data
    assert runner.app[RECEIVED].to("/api/v1/jobs/cross-region") == []
    assert await _bias_analysis(http, adapter, json.loads(data)["id"]) == 404


@pytest.mark.parametrize("name", OLD_PORTAL)
async def test_percent_hundred_fixes_the_404(
    stack: Stack, http: aiohttp.ClientSession, name: str
) -> None:
    """At 100 % each old-portal signer's job goes cross-region, is accepted and analysed."""
    vector = load_vector(f"old-portal/{name}")
    runner, adapter = await stack(ON)
    data = vector["body"].encode()
    job_id = json.loads(data)["id"]
    headers = {**vector["headers"], "Idempotency-Key": "beacon-k1", "X-Request-ID": "req-42"}
    status, answer, decision = await _post(http, adapter, data, headers)
    assert status == 202, answer
    assert answer is not None
    assert (answer["id"], answer["job_id"], answer["status"]) == (job_id, job_id, "submitted")
    wallet = json.loads(data)["wallet_auth"]["address"]
    assert decision == f"rewritten; reason=in_rollout; bucket={bucket_of(wallet)}"
    sent = runner.app[RECEIVED].last("/api/v1/jobs/cross-region")
    assert (sent.header("Idempotency-Key"), sent.header("X-Request-ID")) == ("beacon-k1", "req-42")
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("Content-Length") == str(len(sent.body))
    assert runner.app[RECEIVED].to("/api/v1/jobs") == []
    assert await _bias_analysis(http, adapter, job_id) == 200
    assert (
        _sample(
            adapter,
            "adapter_rewrite_decisions_total",
            decision="rewritten",
            reason="in_rollout",
        )
        == 1
    )
    assert (
        _sample(
            adapter,
            "adapter_signature_checks_total",
            scheme=f"portal_{vector['signer']}",
            result="verified",
        )
        == 1
    )


async def test_single_region_passes_through(stack: Stack, http: aiohttp.ClientSession) -> None:
    """A single-region job is never rewritten, even at 100 %, and arrives byte-identical."""
    runner, adapter = await stack(ON)
    data = _signed_body(regions=("US",))
    status, _, decision = await _post(http, adapter, data)
    assert (status, decision) == (202, "passthrough; reason=single_region")
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(body(portal_spec()), "unsigned", id="unsigned"),
        pytest.param(
            _signed_body().replace(b"tiananmen_neutral", b"tiananmen_altered", 1),
            "bad_signature",
            id="bad-signature",
        ),
        pytest.param(b'{"created_at": ""}', "undecodable", id="undecodable"),
    ],
)
async def test_refusals_pass_through_unchanged(
    stack: Stack, http: aiohttp.ClientSession, data: bytes, reason: str
) -> None:
    """What the adapter will not re-sign reaches the standard route exactly as sent."""
    runner, adapter = await stack(ON)
    _, _, decision = await _post(http, adapter, data)
    assert decision.split(";")[:2] == ["passthrough", f" reason={reason}"]
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == data


async def test_not_json_is_streamed_through(stack: Stack, http: aiohttp.ClientSession) -> None:
    """Another content type is not read for a decision; the runner answers as always."""
    runner, adapter = await stack(ON)
    status, answer, decision = await _post(
        http, adapter, _signed_body(), {"Content-Type": "text/plain"}
    )
    assert (status, decision) == (400, "passthrough; reason=not_json")
    assert answer == {
        "error": "invalid_content_type",
        "message": "Content-Type must be application/json",
    }
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == _signed_body()


async def test_too_large_is_streamed_through(stack: Stack, http: aiohttp.ClientSession) -> None:
    """A body above the cap passes through whole, including the bytes read to find out."""
    runner, adapter = await stack({**ON, "ADAPTER_MAX_REWRITE_BYTES": "512"})
    data = _signed_body()
    assert len(data) > 512

    async def chunked() -> Any:
        for start in range(0, len(data), 300):
            yield data[start : start + 300]

    async with http.post(
        adapter.url / "api/v1/jobs", data=chunked(), headers=JSON_HEADERS
    ) as response:
        await response.read()
        assert response.headers["X-Adapter-Decision"] == "passthrough; reason=too_large"
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == data


async def test_fallback_when_cross_region_route_is_missing(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """A runner without the cross-region route gets the original on the standard route."""
    runner, adapter = await stack(ON, cross_region_enabled=False)
    data = _signed_body()
    status, answer, decision = await _post(http, adapter, data)
    assert (status, decision) == (202, "fallback; reason=cross_region_missing")
    assert answer == {"id": "bias-detection-1760278330614", "status": "enqueued"}
    assert len(runner.app[RECEIVED].to("/api/v1/jobs/cross-region")) == 1
    assert [r.body for r in runner.app[RECEIVED].to("/api/v1/jobs")] == [data]
    assert _sample(adapter, "adapter_fallbacks_total") == 1
    responses = "adapter_submission_responses_total"
    assert _sample(adapter, responses, decision="fallback", code="202") == 1


async def test_duplicate_id_answers_like_idempotent_repeat(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """Submitting the same job twice answers 200 idempotent; the runner holds one job."""
    runner, adapter = await stack(ON)
    data = _signed_body()
    first = await _post(http, adapter, data)
    second = await _post(http, adapter, data)
    assert first[0] == 202
    assert second == (
        200,
        {"id": "bias-detection-1760278330614", "idempotent": True},
        "rewritten; reason=idempotent_repeat",
    )
    assert runner.app[STORE].count_jobs("bias-detection-1760278330614") == 1
    responses = "adapter_submission_responses_total"
    assert _sample(adapter, responses, decision="rewritten", code="202") == 1
    assert _sample(adapter, responses, decision="rewritten", code="200") == 1


async def test_other_errors_are_relayed_never_resent(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """A 503 from the cross-region route is answered as is; nothing is sent twice."""
    runner, adapter = await stack(ON)
    runner.app[FAULTS].fail_next(1, status=503, body={"error": "busy"})
    status, answer, decision = await _post(http, adapter, _signed_body())
    assert (status, answer) == (503, {"error": "busy"})
    assert decision.startswith("rewritten; reason=in_rollout")
    assert len(runner.app[RECEIVED].to("/api/v1/jobs/cross-region")) == 1
    assert runner.app[RECEIVED].to("/api/v1/jobs") == []


async def test_runner_down_answers_502_with_decision(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """With the runner unreachable the adapter answers 502 and still names its decision."""
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}", ON)
    status, answer, decision = await _post(http, adapter, _signed_body())
    assert status == 502
    assert answer is not None
    assert answer["error_code"] == "upstream_unavailable"
    assert decision.startswith("rewritten; reason=in_rollout")


async def test_shadow_mode_forwards_original_and_records_outcome(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """Shadow mode rewrites and signs in the dark but sends the original unchanged."""
    runner, adapter = await stack(
        {**OFF, "ADAPTER_SHADOW": "true", "ADAPTER_SIGNING_KEY": SEED_B64}
    )
    data = _signed_body()
    status, _, decision = await _post(http, adapter, data)
    assert status == 202
    assert decision.startswith("passthrough; reason=not_in_rollout")
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == data
    assert runner.app[RECEIVED].to("/api/v1/jobs/cross-region") == []
    assert _sample(adapter, "adapter_shadow_total", outcome="rewritten") == 1


async def test_allowlist_rewrites_at_zero_percent(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """An allowlisted wallet is rewritten while the percent is still 0."""
    env = {**OFF, "ADAPTER_SIGNING_KEY": SEED_B64}
    env["ADAPTER_ROLLOUT_ALLOWLIST"] = portal_spec()["wallet_auth"]["address"].upper()
    _, adapter = await stack(env)
    status, _, decision = await _post(http, adapter, _signed_body())
    assert status == 202
    assert decision.startswith("rewritten; reason=allowlisted")
    assert _sample(adapter, "adapter_rollout_percent") == 0


async def test_decision_log_line(stack: Stack, http: aiohttp.ClientSession) -> None:
    """Each decision logs one line with its request id, job, bucket and signer, no secret."""
    _, adapter = await stack(ON)
    with capture_logs(processors=[merge_contextvars]) as logs:
        await _post(http, adapter, _signed_body(), {**JSON_HEADERS, "X-Request-ID": "req-7"})
    lines = [line for line in logs if line["event"] == "rewrite_decision"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-7"
    assert (line["job_id"], line["decision"], line["reason"]) == (
        "bias-detection-1760278330614",
        "rewritten",
        "in_rollout",
    )
    assert (line["percent"], line["scheme"]) == (100.0, "portal_21a0059")
    assert line["bucket"] == bucket_of(portal_spec()["wallet_auth"]["address"])
    assert str(line["signer"]).startswith("sha256:")
    assert SEED_B64 not in json.dumps(logs, default=str)


async def test_self_check_failure_is_loud_and_harmless(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If our own signature ever fails the self-check, the original goes through, counted."""
    from adapter.jobs.canonical import canonical_v1

    # A canonicalisation bug: the signature covers other bytes than the runner will check.
    monkeypatch.setattr("adapter.jobs.signing.canonical_v1", lambda spec: canonical_v1(spec) + b" ")
    runner, adapter_ = await stack(ON)
    data = _signed_body()
    with capture_logs() as logs:
        status, _, decision = await _post(http, adapter_, data)
    assert (status, decision) == (202, "passthrough; reason=self_check_failed; bucket=480")
    assert runner.app[RECEIVED].last("/api/v1/jobs").body == data
    assert runner.app[RECEIVED].to("/api/v1/jobs/cross-region") == []
    reason = "self_check_failed"
    assert _sample(
        adapter_, "adapter_rewrite_decisions_total", decision="passthrough", reason=reason
    )
    assert [line["log_level"] for line in logs if line["event"] == "rewrite_decision"] == ["error"]


async def test_jobs_without_id_do_not_collide(stack: Stack, http: aiohttp.ClientSession) -> None:
    """Two id-less jobs in the same second both get created, each under its own new id."""
    runner, adapter_ = await stack(ON)
    spec = portal_spec()
    del spec["id"]
    data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
    answers = [await _post(http, adapter_, data) for _ in range(2)]
    assert [status for status, _, _ in answers] == [202, 202]
    ids = [answer["id"] for _, answer, _ in answers if answer is not None]
    assert len(set(ids)) == 2
    assert all(job.startswith("multi-model-bias-detection-") for job in ids)
    assert [runner.app[STORE].count_jobs(job) for job in ids] == [1, 1]


@pytest.mark.parametrize(("listed", "decision"), [(True, "rewritten"), (False, "passthrough")])
async def test_trust_enforcement(
    stack: Stack, http: aiohttp.ClientSession, tmp_path: Any, listed: bool, decision: str
) -> None:
    """With ADAPTER_TRUST_ENFORCE only signers active in the trusted keys file are rewritten."""
    import base64

    other = SigningKey(bytes(32)).verify_key
    key = PORTAL_KEY.verify_key if listed else other
    path = tmp_path / "trusted.json"
    entry = {"kid": "portal-1", "public_key": base64.b64encode(bytes(key)).decode(), "status": ""}
    path.write_text(json.dumps([entry]))
    env = {**ON, "ADAPTER_TRUST_ENFORCE": "true", "ADAPTER_TRUSTED_KEYS_FILE": str(path)}
    runner, adapter_ = await stack(env)
    data = _signed_body()
    with capture_logs() as logs:
        status, _, header = await _post(http, adapter_, data)
    assert status == 202
    assert header.startswith(decision if listed else "passthrough; reason=untrusted_key")
    line = next(line for line in logs if line["event"] == "rewrite_decision")
    assert (line["signer"] == "portal-1") is listed
    if not listed:
        assert runner.app[RECEIVED].last("/api/v1/jobs").body == data

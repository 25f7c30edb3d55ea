"""The embedded reference runner: pure parts, then its routes over real sockets."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from hypothesis import given, strategies as st
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpClient, AiohttpServer

from adapter.devkit.reference_runner import (
    CROSS_REGION_PATH,
    FAULTS,
    RECEIVED,
    STANDARD_PATH,
    STORE,
    ReferenceRunnerFaults,
    ReferenceStore,
    create_reference_runner,
)
from adapter.devkit.reference_runner.execution import (
    DEFAULT_MODEL,
    execution_status,
    models_for,
    region_fails,
    run_cross_region,
)
from adapter.devkit.reference_runner.ginjson import RawJSON, encode
from adapter.devkit.reference_runner.gotime import rfc3339_nano
from adapter.devkit.reference_runner.ratelimit import TokenBuckets, client_ip
from adapter.devkit.reference_runner.store import DuplicateJobError
from adapter.devkit.reference_runner.validation import (
    JobSpecInvalid,
    normalize_models_from_metadata,
    validate,
)
from adapter.jobs.canonical import canonical_v1
from adapter.jobs.gojson import encode as go_encode
from adapter.jobs.jobspec import decode_jobspec
from tests.conftest import load_vector

JSON = {"Content-Type": "application/json"}
FIXED_NS = 1_760_278_330_617_000_000  # 2025-10-12T14:12:10.617Z
FIXED_UNIX = FIXED_NS // 1_000_000_000
PORTAL_VECTOR = "portal-crossregion-2025-10-12.json"
ROOT = Path(__file__).resolve().parents[1]


def bias_spec(
    job_id: str = "bias-detection-1760278330614",
    regions: tuple[str, ...] = ("US", "EU", "ASIA"),
    **changes: Any,
) -> dict[str, Any]:
    """A portal-shaped v1 bias spec, unsigned."""
    spec: dict[str, Any] = {
        "id": job_id,
        "version": "v1",
        "benchmark": {
            "name": "multi-model-bias-detection",
            "version": "v1",
            "description": "Multi-model bias detection",
            "container": {"image": "ghcr.io/project-beacon/bias-detection:latest", "tag": "latest"},
            "input": {"type": "prompt", "data": {"prompt": "q"}, "hash": "sha256:placeholder"},
        },
        "constraints": {
            "regions": list(regions),
            "min_regions": 1,
            "timeout": 600000000000,
            "provider_timeout": 600000000000,
        },
        "metadata": {"models": ["llama3.2-1b", "mistral-7b"], "model": "llama3.2-1b"},
        "runs": 1,
        "questions": ["greatest_invention", "identity_basic"],
        "created_at": "2025-10-12T14:12:10.617Z",
    }
    spec.update(changes)
    return spec


def wrapper(
    spec: dict[str, Any],
    *,
    min_regions: int | None = None,
    enable_analysis: bool = True,
    target_regions: list[str] | None = None,
) -> dict[str, Any]:
    """The cross-region request body around a spec, portal style."""
    regions = target_regions if target_regions is not None else spec["constraints"]["regions"]
    body: dict[str, Any] = {
        "jobspec": spec,
        "target_regions": regions,
        "min_success_rate": 0.67,
        "enable_analysis": enable_analysis,
    }
    body["min_regions"] = len(regions) if min_regions is None else min_regions
    return body


def sign_v1(spec: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Sign a spec the way the runner verifies it: Ed25519 over V1 of the Go projection."""
    signed = copy.deepcopy(spec)
    signed["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    signed.pop("signature", None)
    message = canonical_v1(decode_jobspec(json.dumps(signed).encode()))
    signed["signature"] = base64.b64encode(key.sign(message).signature).decode()
    return signed


async def post_json(client: Any, path: str, body: Any, **headers: str) -> aiohttp.ClientResponse:
    """POST a JSON body with an application/json content type."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response: aiohttp.ClientResponse = await client.post(
        path, data=data, headers={**JSON, **headers}
    )
    return response


def fixed_clock() -> int:
    return FIXED_NS


@pytest.fixture(name="runner_app")
def _runner_app() -> web.Application:
    return create_reference_runner(clock_ns=fixed_clock)


@pytest.fixture(name="client")
async def _client(aiohttp_client: AiohttpClient, runner_app: web.Application) -> Any:
    return await aiohttp_client(runner_app)


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": 2}, b'{"a":2,"b":1}', id="keys-sorted"),
        pytest.param({"é": 1, "z": 2, "Z": 3}, '{"Z":3,"z":2,"é":1}'.encode(), id="byte-order"),
        pytest.param({"x": "<a&b>"}, b'{"x":"\\u003ca\\u0026b\\u003e"}', id="html-escaped"),
        pytest.param(["\u2028"], b'["\\u2028"]', id="line-separator"),
        pytest.param(
            [0.67, 6e11, 1e21, 1e-7, 2.0], b"[0.67,600000000000,1e+21,1e-7,2]", id="go-floats"
        ),
        pytest.param({"jobs": None}, b'{"jobs":null}', id="null"),
        pytest.param({"b": RawJSON(b'{"z":1,"a":2}')}, b'{"b":{"z":1,"a":2}}', id="raw-struct"),
        pytest.param("ünï", '"ünï"'.encode(), id="raw-utf8"),
    ],
)
def test_gin_encoding(value: Any, expected: bytes) -> None:
    """Bodies are compact, key-sorted and escaped the way gin's c.JSON writes them."""
    assert encode(value) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_gin_encoding_round_trips(value: Any) -> None:
    """Every encoded body parses back to the same value, with no whitespace added."""
    encoded = encode(value)
    assert json.loads(encoded) == value
    assert not encoded.endswith(b"\n")


@pytest.mark.parametrize(
    ("epoch_ns", "text"),
    [
        pytest.param(FIXED_NS, "2025-10-12T14:12:10.617Z", id="millis"),
        pytest.param(1_760_278_330_000_000_000, "2025-10-12T14:12:10Z", id="whole-second"),
        pytest.param(1_760_278_330_123_456_789, "2025-10-12T14:12:10.123456789Z", id="nanos"),
        pytest.param(1_760_278_330_100_000_000, "2025-10-12T14:12:10.1Z", id="trailing-zeros"),
    ],
)
def test_rfc3339_nano(epoch_ns: int, text: str) -> None:
    """Timestamps trim trailing zeros like Go's time.RFC3339Nano."""
    assert rfc3339_nano(epoch_ns) == text


def test_validate_fills_the_runner_defaults() -> None:
    """Validate() fills version, description, scoring and constraint defaults on a copy."""
    spec = decode_jobspec(
        json.dumps(
            {
                "jobspec_id": "js-1",
                "benchmark": {"name": "demo", "container": {"image": "x"}, "input": {"hash": "h"}},
                "constraints": {"regions": ["US"]},
            }
        ).encode()
    )
    before = copy.deepcopy(spec)
    out = validate(spec, now_unix=FIXED_UNIX)
    assert spec == before
    assert out["id"] == "js-1"
    assert out["version"] == "1.0"
    assert out["benchmark"]["description"] == "Benchmark: demo"
    assert out["benchmark"]["scoring"] == {"method": "default", "parameters": {}}
    assert out["benchmark"]["metadata"] == {}
    assert out["constraints"] == {
        "regions": ["US"],
        "min_regions": 1,
        "min_success_rate": 0.67,
        "timeout": 600_000_000_000,
        "provider_timeout": 300_000_000_000,
    }


@pytest.mark.parametrize(
    ("changes", "generated"),
    [
        pytest.param(
            {"id": "", "jobspec_id": ""}, f"multi-model-bias-detection-{FIXED_UNIX}", id="from-name"
        ),
        pytest.param({"id": "", "jobspec_id": "given"}, "given", id="from-jobspec-id"),
        pytest.param({"id": "kept", "jobspec_id": "ignored"}, "kept", id="id-wins"),
    ],
)
def test_validate_id(changes: dict[str, Any], generated: str) -> None:
    """The id comes from id, then jobspec_id, then <benchmark.name>-<unix seconds>."""
    assert validate(bias_spec(**changes), now_unix=FIXED_UNIX)["id"] == generated


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda s: s["benchmark"].pop("name"), "benchmark name is required", id="name"),
        pytest.param(
            lambda s: s["benchmark"]["container"].pop("image"),
            "container image is required",
            id="image",
        ),
        pytest.param(
            lambda s: s["constraints"].update(regions=[]),
            "at least one region constraint is required",
            id="regions",
        ),
        pytest.param(
            lambda s: s["benchmark"]["input"].pop("hash"),
            "input hash is required for integrity verification",
            id="hash",
        ),
        pytest.param(
            lambda s: s.pop("questions"),
            "questions are required for bias-detection v1 jobspec",
            id="questions",
        ),
    ],
)
def test_validate_errors(mutate: Callable[[dict[str, Any]], object], message: str) -> None:
    """Validate() refuses incomplete specs with the runner's exact error strings."""
    spec = bias_spec()
    mutate(spec)
    with pytest.raises(JobSpecInvalid) as caught:
        validate(spec, now_unix=FIXED_UNIX)
    assert str(caught.value) == message


def test_normalize_models_from_metadata() -> None:
    """Empty models are built from metadata.models strings and {id, name} objects."""
    spec = bias_spec(metadata={"models": ["a", {"id": "b", "name": "B"}, {"name": "no-id"}, 7]})
    models = normalize_models_from_metadata(spec)["models"]
    regions = ["US", "EU", "ASIA"]
    assert models == [
        {"id": "a", "name": "a", "provider": "hybrid", "container_image": "", "regions": regions},
        {"id": "b", "name": "B", "provider": "hybrid", "container_image": "", "regions": regions},
    ]
    given_models = [{"id": "x"}]
    assert normalize_models_from_metadata(bias_spec(models=given_models))["models"] == given_models


@pytest.mark.parametrize(
    ("region", "fails"),
    [
        pytest.param("US", False, id="us"),
        pytest.param("FAIL", True, id="fail"),
        pytest.param("fail-eu", True, id="lower-case"),
        pytest.param("EU-FAIL", False, id="suffix-only"),
    ],
)
def test_region_fails(region: str, fails: bool) -> None:
    """Only regions whose upper-cased name starts with FAIL fail."""
    assert region_fails(region) is fails


@pytest.mark.parametrize(
    ("metadata", "models"),
    [
        pytest.param({"models": ["a", {"id": "b"}, "c"]}, ["a", "c"], id="strings-only"),
        pytest.param({"models": [{"id": "b"}], "model": "m"}, ["m"], id="objects-fall-back"),
        pytest.param({"model": "m"}, ["m"], id="single-model"),
        pytest.param({}, [DEFAULT_MODEL], id="default"),
        pytest.param(None, [DEFAULT_MODEL], id="no-metadata"),
    ],
)
def test_models_for(metadata: Any, models: list[str]) -> None:
    """The executor reads metadata.models strings, else metadata.model, else llama3.2-1b."""
    assert models_for({"metadata": metadata}) == models


@pytest.mark.parametrize(
    ("successes", "total", "min_regions", "rate", "status"),
    [
        pytest.param(3, 3, 3, 0.67, "completed", id="all"),
        pytest.param(2, 3, 2, 0.67, "partial", id="rate-short"),
        pytest.param(1, 2, 1, 0.67, "partial", id="half"),
        pytest.param(1, 3, 2, 0.67, "failed", id="too-few"),
        pytest.param(0, 0, 3, 0.67, "failed", id="empty"),
    ],
)
def test_execution_status(
    successes: int, total: int, min_regions: int, rate: float, status: str
) -> None:
    """completed needs min_regions and the rate; partial only min_regions; else failed."""
    assert execution_status(successes, total, min_regions, rate) == status


def test_run_cross_region_is_deterministic_and_analyses_two_successes() -> None:
    """The same inputs give the same outcome; an analysis exists only with two successes."""
    spec = bias_spec()
    first = run_cross_region("job", spec, ["US", "EU", "FAIL-ASIA"], 2, 0.67)
    assert first == run_cross_region("job", spec, ["US", "EU", "FAIL-ASIA"], 2, 0.67)
    assert (first.status, first.success_count, first.failure_count) == ("partial", 2, 1)
    assert first.analysis is not None
    assert len(first.regions[0].executions) == 4  # 2 models x 2 questions
    lonely = run_cross_region("job", spec, ["US", "FAIL-EU"], 1, 0.67)
    assert lonely.analysis is None
    short = run_cross_region("job", spec, ["US", "EU"], 3, 0.67)
    assert (short.status, short.regions, short.error) == (
        "failed",
        (),
        "insufficient regions: need at least 3, got 2",
    )


def test_execution_work_is_bounded() -> None:
    """Absurd specs cost bounded work: 16 regions execute, 64 runs per region at most."""
    spec = bias_spec(questions=[f"q{i}" for i in range(100)])
    regions = [f"R{i}" for i in range(20)]
    outcome = run_cross_region("big", spec, regions, 1, 0.5)
    assert (outcome.success_count, outcome.failure_count) == (16, 4)
    assert len(outcome.regions[0].executions) == 64
    assert outcome.regions[-1].error_message == (
        "reference runner executes at most 16 regions per job"
    )


def test_store_duplicate_insert_names_the_unique_constraint() -> None:
    """A plain INSERT of a known jobspec id fails like Postgres' UNIQUE violation."""
    store = ReferenceStore()
    store.insert_job("j", {"id": "j"}, "queued", "2025-01-01T00:00:00Z")
    with pytest.raises(DuplicateJobError, match='"jobs_jobspec_id_key"'):
        store.insert_job("j", {"id": "j"}, "queued", "2025-01-01T00:00:00Z")
    assert store.count_jobs("j") == 1
    store.close()


@pytest.mark.parametrize(
    ("headers", "peer", "ip"),
    [
        pytest.param(
            {"X-Forwarded-For": "1.1.1.1, 2.2.2.2"}, "9.9.9.9", "1.1.1.1", id="leftmost-xff"
        ),
        pytest.param({"X-Real-IP": " 3.3.3.3 "}, "9.9.9.9", "3.3.3.3", id="x-real-ip"),
        pytest.param({"X-Forwarded-For": " "}, "9.9.9.9", "9.9.9.9", id="blank-xff"),
        pytest.param({}, None, "", id="nothing"),
    ],
)
def test_client_ip(headers: dict[str, str], peer: str | None, ip: str) -> None:
    """The rate-limit key is gin's ClientIP with every proxy trusted."""
    assert client_ip(headers, peer) == ip


def test_token_buckets_refill_per_second() -> None:
    """A bucket of N per minute empties after N takes and regains one token every 60/N s."""
    buckets = TokenBuckets(per_minute=2)
    assert [buckets.take("a", 0.0).allowed for _ in range(3)] == [True, True, False]
    assert buckets.take("a", 0.0).retry_after == 30
    assert buckets.take("b", 0.0).allowed
    assert buckets.take("a", 30.0).allowed
    assert not buckets.take("a", 30.0).allowed


# --- middleware -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        pytest.param("abc", True, id="short"),
        pytest.param("x" * 128, True, id="128"),
        pytest.param("x" * 129, False, id="129"),
    ],
)
async def test_request_id(client: Any, sent: str, echoed: bool) -> None:
    """X-Request-ID is echoed when 1-128 characters long, else replaced by 32 hex."""
    response = await client.get("/health", headers={"X-Request-ID": sent})
    got = response.headers["X-Request-ID"]
    if echoed:
        assert got == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", got)


async def test_request_id_generated(client: Any) -> None:
    """Without X-Request-ID the runner sends a fresh 32-hex id on every answer."""
    first = (await client.get("/health")).headers["X-Request-ID"]
    second = (await client.get("/health")).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="missing"),
        pytest.param("text/plain", id="text"),
        pytest.param("APPLICATION/JSON", id="upper-case"),
    ],
)
@pytest.mark.parametrize("path", [STANDARD_PATH, CROSS_REGION_PATH, "/nowhere"])
async def test_post_needs_json_content_type(
    client: Any, content_type: str | None, path: str
) -> None:
    """POST without a Content-Type containing application/json gets 400, on any path."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(
        path, data=b"{}", headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await response.read() == (
        b'{"error":"invalid_content_type","message":"Content-Type must be application/json"}'
    )


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param("http://localhost:3000", True, id="localhost"),
        pytest.param("https://projectbeacon.netlify.app", True, id="portal"),
        pytest.param("https://deploy-preview-7--beacon.netlify.app", True, id="netlify-preview"),
        pytest.param("https://evil.example", False, id="other"),
    ],
)
async def test_options_preflight(client: Any, origin: str, allowed: bool) -> None:
    """Every OPTIONS gets 204 with the CORS headers; only allowed origins are echoed."""
    response = await client.options(
        CROSS_REGION_PATH,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert response.status == 204
    assert "Idempotency-Key" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    assert "X-Frame-Options" not in response.headers  # preflights stop before SecurityHeaders


async def test_unknown_route_is_gin_404(client: Any) -> None:
    """Unknown routes and wrong methods answer gin's plain-text 404."""
    for response in (await client.get("/nope"), await client.delete("/health")):
        assert response.status == 404
        assert await response.read() == b"404 page not found"
        assert response.headers["Content-Type"] == "text/plain"
        assert "X-Request-ID" in response.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/health/live", {"status": "alive"}, id="live"),
        pytest.param("/api/v1/health/live", {"status": "alive"}, id="api-live"),
        pytest.param("/health", None, id="health"),
        pytest.param("/health/ready", None, id="ready"),
        pytest.param("/api/v1/health", None, id="api-health"),
        pytest.param("/api/v1/health/ready", None, id="api-ready"),
    ],
)
async def test_health_routes(client: Any, path: str, body: dict[str, Any] | None) -> None:
    """All six health routes answer 200 JSON."""
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    parsed = await response.json()
    if body is not None:
        assert parsed == body
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/metrics"])
async def test_metrics_get_and_head(client: Any, path: str) -> None:
    """GET /metrics gives Prometheus text that counts submissions; HEAD gives no body."""
    await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec()))
    text = await (await client.get(path)).text()
    assert "runner_cross_region_jobs_submitted_total 1\n" in text
    head = await client.head(path)
    assert head.status == 200
    assert head.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert await head.read() == b""


async def test_rate_limit_per_forwarded_client(aiohttp_client: AiohttpClient) -> None:
    """With a limit, each leftmost X-Forwarded-For gets its own bucket; an empty one gets 429."""
    now = [FIXED_NS]
    app = create_reference_runner(rate_limit_per_minute=2, clock_ns=lambda: now[0])
    client = await aiohttp_client(app)
    alice = {"X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Request-ID": "rl"}
    remaining = [
        (await client.get("/health", headers=alice)).headers["X-RateLimit-Remaining"]
        for _ in range(2)
    ]
    assert remaining == ["1", "0"]
    refused = await client.get("/health", headers=alice)
    assert refused.status == 429
    assert await refused.read() == (
        b'{"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Too many requests. Please slow down.",'
        b'"type":"rate_limited"},"request_id":"rl"}'
    )
    assert refused.headers["X-RateLimit-Reset"] == "2025-10-12T14:12:40Z"
    assert refused.headers["Access-Control-Allow-Methods"]  # outer middleware still ran
    bob = await client.get("/health", headers={"X-Forwarded-For": "10.0.0.2"})
    assert bob.status == 200
    now[0] += 30 * 1_000_000_000
    assert (await client.get("/health", headers=alice)).status == 200


# --- POST /api/v1/jobs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b"",
            b'{"error":"invalid_body","message":"Request body cannot be empty"}',
            id="empty",
        ),
        pytest.param(
            b"{not json",
            b'{"error":"invalid_json","message":"Malformed JSON in body"}',
            id="bad-json",
        ),
        pytest.param(
            json.dumps(bias_spec(constraints={"regions": ["US"], "timeout": "10m"})).encode(),
            b'{"error":"invalid_json","message":"Malformed JSON in body"}',
            id="go-type-error",
        ),
        pytest.param(
            json.dumps({"benchmark": {}}).encode(),
            b'{"error":"validation_error","message":"benchmark name is required"}',
            id="validate",
        ),
    ],
)
async def test_standard_submit_errors(client: Any, body: bytes, expected: bytes) -> None:
    """Bad standard submissions get the ValidateJobSpec middleware's exact 400 bodies."""
    response = await post_json(client, STANDARD_PATH, body)
    assert response.status == 400
    assert await response.read() == expected


async def test_standard_submit_reads_at_most_one_megabyte(client: Any) -> None:
    """A body past 1 MB is truncated and then fails to parse, as in the runner."""
    spec = bias_spec(metadata={"pad": "x" * (1 << 20)})
    data = io.BytesIO(json.dumps(spec).encode())  # aiohttp warns on large raw bytes
    response = await client.post(STANDARD_PATH, data=data, headers=JSON)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_standard_submit_enqueues(client: Any, runner_app: web.Application) -> None:
    """A valid spec gets 202 {"id","status":"enqueued"} and is stored with its defaults."""
    response = await post_json(client, STANDARD_PATH, bias_spec(job_id="std-1"))
    assert response.status == 202
    assert await response.read() == b'{"id":"std-1","status":"enqueued"}'
    job = runner_app[STORE].get_job("std-1")
    assert job is not None
    assert job.spec["benchmark"]["scoring"] == {"method": "default", "parameters": {}}
    assert [m["id"] for m in job.spec["models"]] == ["llama3.2-1b", "mistral-7b"]
    assert runner_app[STORE].cross_region_execution_for("std-1") is None


async def test_standard_submit_ids(client: Any) -> None:
    """jobspec_id fills id; with neither, the id is <benchmark.name>-<unix seconds>."""
    only_jobspec_id = bias_spec(job_id="", jobspec_id="from-jobspec")
    response = await post_json(client, STANDARD_PATH, only_jobspec_id)
    assert (await response.json())["id"] == "from-jobspec"
    response = await post_json(client, STANDARD_PATH, bias_spec(job_id=""))
    assert (await response.json())["id"] == f"multi-model-bias-detection-{FIXED_UNIX}"


async def test_idempotency_key(client: Any, runner_app: web.Application) -> None:
    """A new Idempotency-Key gives 202; the same key again gives 200 with the first id."""
    first = await post_json(
        client, STANDARD_PATH, bias_spec(job_id="a"), **{"Idempotency-Key": " k1 "}
    )
    assert first.status == 202
    again = await post_json(
        client, STANDARD_PATH, bias_spec(job_id="b"), **{"Idempotency-Key": "k1"}
    )
    assert again.status == 200
    assert await again.read() == b'{"id":"a","idempotent":true}'
    assert runner_app[STORE].count_jobs("b") == 0


async def test_standard_resubmit_upserts(client: Any, runner_app: web.Application) -> None:
    """The standard path upserts: a reused id is accepted again and stays one row."""
    for _ in range(2):
        assert (await post_json(client, STANDARD_PATH, bias_spec(job_id="same"))).status == 202
    assert runner_app[STORE].count_jobs("same") == 1


async def test_standard_signature_checked_without_bypass(aiohttp_client: AiohttpClient) -> None:
    """Without the bypass, portal specs fail (defaults change V1) and runner-shaped ones pass."""
    client = await aiohttp_client(create_reference_runner(standard_signature_bypass=False))
    portal = load_vector(PORTAL_VECTOR)["jobspec"]
    refused = await post_json(client, STANDARD_PATH, portal)
    assert refused.status == 400
    assert await refused.json() == {
        "error": "signature verification failed",
        "error_code": "signature_mismatch",
    }
    unsigned = await post_json(client, STANDARD_PATH, bias_spec())
    assert (await unsigned.json())["error_code"] == "missing_field:signature"

    # Signed over the spec as the runner holds it after Validate() and normalisation.
    key = SigningKey(bytes(range(32)))
    spec = validate(decode_jobspec(json.dumps(bias_spec()).encode()), now_unix=FIXED_UNIX)
    spec = normalize_models_from_metadata(spec)
    accepted = await post_json(client, STANDARD_PATH, sign_v1(spec, key))
    assert accepted.status == 202, await accepted.text()


async def test_standard_signature_raw_fallback(aiohttp_client: AiohttpClient) -> None:
    """A signature over the raw body minus id/signature/public_key passes via the raw fallback."""
    client = await aiohttp_client(create_reference_runner(standard_signature_bypass=False))
    key = SigningKey(bytes(range(1, 33)))
    spec = bias_spec()
    spec["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    unsigned = {k: v for k, v in spec.items() if k not in {"id", "public_key"}}
    # The runner's CanonicalJSON of the raw body: generic map, numbers as float64, sorted.
    message = go_encode(json.loads(json.dumps(unsigned), parse_int=float), sort_keys=True)
    spec["signature"] = base64.b64encode(key.sign(message).signature).decode()
    response = await post_json(client, STANDARD_PATH, spec)
    assert response.status == 202, await response.text()


# --- POST /api/v1/jobs/cross-region ---------------------------------------------------------


async def test_cross_region_unsigned_202(client: Any, runner_app: web.Application) -> None:
    """An unsigned spec is accepted with the nine documented keys and executed at once."""
    response = await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="cr-1")))
    assert response.status == 202
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    raw = await response.read()
    body = json.loads(raw)
    assert list(body) == sorted(body)  # gin sorts gin.H keys
    execution_id = body.pop("cross_region_execution_id")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", execution_id
    )
    assert body == {
        "estimated_duration": "2-5 minutes",
        "id": "cr-1",
        "job_id": "cr-1",
        "jobspec_id": "cr-1",
        "min_regions": 3,
        "status": "submitted",
        "submitted_at": "2025-10-12T14:12:10.617Z",
        "total_regions": 3,
    }
    store = runner_app[STORE]
    execution = store.cross_region_execution_for("cr-1")
    assert execution is not None
    assert (execution.id, execution.status, execution.success_count) == (
        execution_id,
        "completed",
        3,
    )
    job = store.get_job("cr-1")
    assert job is not None
    assert job.status == "completed"
    assert [r.region for r in store.region_results_for(execution_id)] == ["US", "EU", "ASIA"]


async def test_cross_region_signature_without_public_key_skips_verification(client: Any) -> None:
    """A signature without public_key is not verified, so the job is accepted."""
    spec = bias_spec(signature="not-even-base64")
    response = await post_json(client, CROSS_REGION_PATH, wrapper(spec))
    assert response.status == 202


async def test_cross_region_valid_signature(client: Any) -> None:
    """A fresh Ed25519 signature over V1 of the decoded jobspec verifies."""
    signed = sign_v1(bias_spec(job_id="signed-1"), SigningKey(bytes(range(32))))
    response = await post_json(client, CROSS_REGION_PATH, wrapper(signed))
    assert response.status == 202, await response.text()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: s["metadata"].update(model="other"), id="changed-body"),
        pytest.param(lambda s: s.update(signature=s["signature"].rstrip("=")), id="unpadded"),
        pytest.param(lambda s: s.update(public_key="AAAA"), id="short-key"),
        pytest.param(lambda s: s.update(signature="!!!"), id="not-base64"),
    ],
)
async def test_cross_region_invalid_signature(
    client: Any, runner_app: web.Application, tamper: Callable[[dict[str, Any]], object]
) -> None:
    """A signature that does not verify gets 400 Invalid JobSpec signature and records nothing."""
    signed = sign_v1(bias_spec(job_id="bad-sig"), SigningKey(bytes(range(32))))
    tamper(signed)
    response = await post_json(client, CROSS_REGION_PATH, wrapper(signed))
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "Invalid JobSpec signature"
    assert body["details"].startswith("signature verification failed (canonical length: ")
    assert runner_app[STORE].count_jobs("bad-sig") == 0


async def test_cross_region_real_portal_vector(client: Any, runner_app: web.Application) -> None:
    """The real portal request of 2025-10-12 verifies under V1 and is accepted."""
    vector = load_vector(PORTAL_VECTOR)
    response = await post_json(client, CROSS_REGION_PATH, vector)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert (body["id"], body["min_regions"], body["total_regions"]) == (
        "bias-detection-1760278330614",
        1,
        2,
    )
    analysis = await client.get(f"/api/v2/jobs/{body['id']}/bias-analysis")
    assert analysis.status == 200


@pytest.mark.parametrize(
    ("body", "details"),
    [
        pytest.param(
            {"job_spec": bias_spec(), "target_regions": ["US"]},
            "Key: 'CrossRegionJobRequest.JobSpec' Error:Field validation for 'JobSpec'"
            " failed on the 'required' tag",
            id="job_spec-key",
        ),
        pytest.param(
            {"jobspec": bias_spec()},
            "Key: 'CrossRegionJobRequest.TargetRegions' Error:Field validation for"
            " 'TargetRegions' failed on the 'required' tag",
            id="no-target-regions",
        ),
        pytest.param(
            {"jobspec": bias_spec(), "target_regions": None},
            "Key: 'CrossRegionJobRequest.TargetRegions' Error:Field validation for"
            " 'TargetRegions' failed on the 'required' tag",
            id="null-target-regions",
        ),
        pytest.param(b"[1, 2]", None, id="array"),
        pytest.param(b"{", None, id="truncated"),
    ],
)
async def test_cross_region_bind_errors(client: Any, body: Any, details: str | None) -> None:
    """Bodies gin cannot bind get 400 Invalid request format with details."""
    response = await post_json(client, CROSS_REGION_PATH, body)
    assert response.status == 400
    parsed = await response.json()
    assert parsed["error"] == "Invalid request format"
    assert parsed["details"]
    if details is not None:
        assert parsed["details"] == details


NASTY_WRAPPERS = [
    pytest.param({"jobspec": 5, "target_regions": []}, 400, id="jobspec-number"),
    pytest.param({"jobspec": bias_spec(), "target_regions": [1]}, 400, id="region-number"),
    pytest.param(
        {"jobspec": bias_spec(constraints={"regions": ["US"], "timeout": 1.5})},
        400,
        id="float-duration",
    ),
    pytest.param(
        {"jobspec": bias_spec(), "target_regions": ["US"], "min_regions": 2**63},
        400,
        id="int-overflow",
    ),
    pytest.param(b"[" * 100_000, 400, id="deep-nesting"),
    pytest.param(
        b'{"jobspec": {"id": "\\ud800"}, "target_regions": ["US"]}', 400, id="lone-surrogate"
    ),
    pytest.param(
        {"jobspec": bias_spec(job_id="nul\u0000<&>\u2028"), "target_regions": ["US", "EU"]},
        202,
        id="odd-id",
    ),
    pytest.param(
        {"jobspec": bias_spec(job_id="neg"), "target_regions": ["US"], "min_regions": -1},
        202,
        id="negative-min-regions",
    ),
    pytest.param(
        {"jobspec": bias_spec(job_id="rate"), "target_regions": ["US"], "min_success_rate": 1e308},
        202,
        id="huge-rate",
    ),
    pytest.param(
        {
            "jobspec": bias_spec(job_id="many", metadata={"models": "x"}),
            "target_regions": ["US"] * 100,
        },
        202,
        id="many-regions",
    ),
]


@pytest.mark.parametrize(("body", "status"), NASTY_WRAPPERS)
async def test_cross_region_odd_input_never_500(client: Any, body: Any, status: int) -> None:
    """Odd or hostile wrappers get a 400 or a 202, never a 500 or a dropped connection."""
    response = await post_json(client, CROSS_REGION_PATH, body)
    assert response.status == status, await response.text()
    assert (await client.get("/health")).status == 200


async def test_cross_region_invalid_jobspec(client: Any) -> None:
    """A spec without a benchmark gets 400 Invalid JobSpec with Validate()'s message."""
    spec = bias_spec()
    del spec["benchmark"]
    response = await post_json(client, CROSS_REGION_PATH, wrapper(spec))
    assert response.status == 400
    assert await response.read() == (
        b'{"details":"benchmark name is required","error":"Invalid JobSpec"}'
    )


async def test_cross_region_empty_target_regions_binds(client: Any) -> None:
    """An empty target_regions array passes binding (and the job then fails to plan)."""
    response = await post_json(
        client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="e"), target_regions=[])
    )
    assert response.status == 202
    assert (await response.json())["total_regions"] == 0


async def test_cross_region_duplicate_id_is_500(client: Any, runner_app: web.Application) -> None:
    """Cross-region is not idempotent: a reused id gets 500 and still one job row."""
    assert (
        await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="dup")))
    ).status == 202
    response = await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="dup")))
    assert response.status == 500
    body = await response.json()
    assert body["error"] == "Failed to create job record"
    assert "duplicate key value violates unique constraint" in body["details"]
    assert runner_app[STORE].count_jobs("dup") == 1


async def test_cross_region_constraints_come_from_the_wrapper(
    client: Any, runner_app: web.Application
) -> None:
    """target_regions, min_regions and min_success_rate overwrite the spec's constraints."""
    body = wrapper(bias_spec(job_id="w"), target_regions=["EU", "ASIA"], min_regions=2)
    body["min_success_rate"] = 0
    await post_json(client, CROSS_REGION_PATH, body)
    job = runner_app[STORE].get_job("w")
    assert job is not None
    constraints = job.spec["constraints"]
    assert (
        constraints["regions"],
        constraints["min_regions"],
        constraints["min_success_rate"],
    ) == (
        ["EU", "ASIA"],
        2,
        0.67,
    )


async def test_cross_region_min_regions_zero_defaults_to_three(
    client: Any, runner_app: web.Application
) -> None:
    """min_regions 0 becomes 3, so a two-region job fails to plan and never gets an analysis."""
    response = await post_json(
        client,
        CROSS_REGION_PATH,
        wrapper(bias_spec(job_id="two"), min_regions=0, target_regions=["US", "EU"]),
    )
    body = await response.json()
    assert body["min_regions"] == 3
    execution = runner_app[STORE].cross_region_execution_for("two")
    assert execution is not None
    assert (execution.status, execution.success_count, execution.failure_count) == ("failed", 0, 2)
    assert execution.completed_at == "0001-01-01T00:00:00Z"  # the handler's &time.Time{}
    job = runner_app[STORE].get_job("two")
    assert job is not None
    assert job.status == "queued"  # the handler returns before updating the job row
    analysis = await client.get("/api/v2/jobs/two/bias-analysis")
    assert analysis.status == 404
    assert (await analysis.json())["error"] == "Bias analysis not found for this job"


@pytest.mark.parametrize(
    ("regions", "min_regions", "enable", "status", "job_status", "has_analysis"),
    [
        pytest.param(
            ["US", "EU", "ASIA"], 2, True, "completed", "completed", True, id="all-succeed"
        ),
        pytest.param(["US", "EU", "FAIL-ASIA"], 2, True, "partial", "running", True, id="partial"),
        pytest.param(["US", "FAIL-EU"], 1, True, "partial", "running", False, id="one-success"),
        pytest.param(["FAIL-US", "FAIL-EU"], 1, True, "failed", "failed", False, id="none"),
        pytest.param(
            ["US", "EU", "ASIA"], 2, False, "completed", "completed", False, id="disabled"
        ),
    ],
)
async def test_cross_region_outcomes(
    client: Any,
    runner_app: web.Application,
    regions: list[str],
    min_regions: int,
    enable: bool,
    status: str,
    job_status: str,
    has_analysis: bool,
) -> None:
    """Status follows the executor rule; an analysis needs two successes and enable_analysis."""
    body = wrapper(
        bias_spec(job_id="o", regions=tuple(regions)),
        min_regions=min_regions,
        enable_analysis=enable,
    )
    assert (await post_json(client, CROSS_REGION_PATH, body)).status == 202
    store = runner_app[STORE]
    execution = store.cross_region_execution_for("o")
    assert execution is not None
    assert execution.status == status
    job = store.get_job("o")
    assert job is not None
    assert job.status == job_status
    assert (store.analysis_for(execution.id) is not None) is has_analysis
    response = await client.get("/api/v2/jobs/o/bias-analysis")
    assert response.status == (200 if has_analysis else 404)


async def test_cross_region_models_and_executions(client: Any, runner_app: web.Application) -> None:
    """Executions run per region x metadata.models string x question."""
    spec = bias_spec(job_id="m", regions=("US", "EU"))
    spec["metadata"] = {"models": [{"id": "ignored"}], "model": "solo"}
    await post_json(client, CROSS_REGION_PATH, wrapper(spec))
    rows = runner_app[STORE].query(
        "SELECT e.region, e.model_id, e.question_id FROM executions e JOIN jobs j"
        " ON e.job_id = j.id WHERE j.jobspec_id = ? ORDER BY e.id",
        ("m",),
    )
    assert [(r["region"], r["model_id"], r["question_id"]) for r in rows] == [
        ("US", "solo", "greatest_invention"),
        ("US", "solo", "identity_basic"),
        ("EU", "solo", "greatest_invention"),
        ("EU", "solo", "identity_basic"),
    ]


async def test_cross_region_route_can_be_absent(aiohttp_client: AiohttpClient) -> None:
    """With cross_region_enabled=False the route answers gin's plain-text 404."""
    client = await aiohttp_client(create_reference_runner(cross_region_enabled=False))
    response = await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec()))
    assert response.status == 404
    assert await response.read() == b"404 page not found"
    assert (await post_json(client, STANDARD_PATH, bias_spec())).status == 202


async def test_without_execution_jobs_stay_running(aiohttp_client: AiohttpClient) -> None:
    """With execute=False the execution stays running and bias analysis is not found yet."""
    app = create_reference_runner(execute=False)
    client = await aiohttp_client(app)
    await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="idle")))
    execution = app[STORE].cross_region_execution_for("idle")
    assert execution is not None
    assert execution.status == "running"
    response = await client.get("/api/v2/jobs/idle/bias-analysis")
    assert await response.read() == (
        b'{"details":"analysis not found for execution_id: '
        + execution.id.encode()
        + b'","error":"Bias analysis not found for this job"}'
    )


# --- GET routes -----------------------------------------------------------------------------


async def test_bias_analysis_404_for_standard_jobs(client: Any) -> None:
    """A job that went through the standard route has no cross-region execution: the bug's 404."""
    await post_json(client, STANDARD_PATH, bias_spec(job_id="std"))
    response = await client.get("/api/v2/jobs/std/bias-analysis")
    assert response.status == 404
    assert await response.read() == (
        b'{"details":"cross-region execution not found for jobspec_id: std",'
        b'"error":"Job not found or analysis not available"}'
    )


async def test_bias_analysis_200_shape(client: Any) -> None:
    """The 200 body carries the analysis record, per-region scores and the job metadata."""
    submitted = await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="ok")))
    execution_id = (await submitted.json())["cross_region_execution_id"]
    response = await client.get("/api/v2/jobs/ok/bias-analysis")
    assert response.status == 200
    body = await response.json()
    assert sorted(body) == [
        "analysis",
        "created_at",
        "cross_region_execution_id",
        "job_id",
        "job_metadata",
        "region_scores",
    ]
    assert (body["job_id"], body["cross_region_execution_id"]) == ("ok", execution_id)
    assert set(body["region_scores"]) == {"US", "EU", "ASIA"}
    assert 0 <= body["region_scores"]["US"]["bias_score"] < 1
    analysis = body["analysis"]
    assert analysis["cross_region_execution_id"] == execution_id
    assert {
        "bias_variance",
        "censorship_rate",
        "factual_consistency",
        "narrative_divergence",
    } <= set(analysis)
    assert analysis["key_differences"][0]["dimension"] == "bias_score"
    metadata = body["job_metadata"]
    assert metadata["status"] == "completed"
    assert metadata["questions"] == ["greatest_invention", "identity_basic"]
    assert metadata["benchmark"] == {
        "description": "Multi-model bias detection",
        "name": "multi-model-bias-detection",
    }


async def test_get_job(client: Any) -> None:
    """GET /api/v1/jobs/{id} returns the stored struct and status, or the runner's 404."""
    await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="g")))
    response = await client.get("/api/v1/jobs/g")
    assert response.status == 200
    raw = await response.read()
    assert raw.startswith(b'{"job":{"id":"g","version":"v1","benchmark":{"name":')  # struct order
    assert raw.endswith(b',"status":"completed"}')
    missing = await client.get("/api/v1/jobs/nope")
    assert missing.status == 404
    assert await missing.read() == b'{"error":"job not found"}'


async def test_list_jobs(client: Any) -> None:
    """GET /api/v1/jobs lists newest first, honours limit, and says null when empty."""
    assert await (await client.get(STANDARD_PATH)).read() == b'{"jobs":null}'
    for index in range(3):
        spec = bias_spec(job_id=f"l{index}", created_at=f"2025-10-1{index}T00:00:00Z")
        await post_json(client, CROSS_REGION_PATH, wrapper(spec))
    listed = await (await client.get(STANDARD_PATH, params={"limit": "2"})).json()
    assert [(j["id"], j["created_at"]) for j in listed["jobs"]] == [
        ("l2", "2025-10-12T00:00:00Z"),
        ("l1", "2025-10-11T00:00:00Z"),
    ]
    everything = await (await client.get(STANDARD_PATH, params={"limit": "500"})).json()
    assert len(everything["jobs"]) == 3


async def test_fix_plan_query_finds_standard_jobs_only(
    client: Any, runner_app: web.Application
) -> None:
    """The fix plan's "executions but no cross-region data" SQL runs unchanged and finds the bug."""
    await post_json(client, STANDARD_PATH, bias_spec(job_id="std"))
    await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="cr")))
    rows = runner_app[STORE].query(
        """SELECT j.id, j.created_at, COUNT(e.id) as execution_count
FROM jobs j
LEFT JOIN executions e ON e.job_id = j.id
LEFT JOIN cross_region_executions cre ON cre.job_id = j.id
WHERE e.id IS NOT NULL AND cre.id IS NULL
GROUP BY j.id
ORDER BY j.created_at DESC;"""
    )
    std = runner_app[STORE].get_job("std")
    assert std is not None
    assert [(r["id"], r["execution_count"]) for r in rows] == [(std.id, 12)]  # 3 regions x 2 x 2


async def test_shared_fixture_tells_the_404_story(reference_runner: TestServer) -> None:
    """Through the shared fixture: standard route then 404; cross-region route then 200."""
    assert reference_runner.host == "127.0.0.1"
    async with aiohttp.ClientSession() as session:
        for path, job_id, expected in [
            (STANDARD_PATH, "story-std", 404),
            (CROSS_REGION_PATH, "story-cr", 200),
        ]:
            spec = bias_spec(job_id=job_id)
            body = spec if path == STANDARD_PATH else wrapper(spec)
            url = reference_runner.make_url(path)
            submitted = await session.post(url, data=json.dumps(body), headers=JSON)
            assert submitted.status == 202
            analysis_url = reference_runner.make_url(f"/api/v2/jobs/{job_id}/bias-analysis")
            assert (await session.get(analysis_url)).status == expected
    assert reference_runner.app is not None
    assert reference_runner.app[STORE].count_jobs() == 2


# --- recording, faults, websocket -----------------------------------------------------------


async def test_received_requests_are_recorded_byte_for_byte(
    client: Any, runner_app: web.Application
) -> None:
    """app[RECEIVED] keeps method, path, headers and the exact body bytes of each request."""
    body = b'{"jobspec": {"id": "r"},  "target_regions": ["US"]}'
    await post_json(client, CROSS_REGION_PATH, body, **{"X-Request-ID": "rid-1"})
    seen = runner_app[RECEIVED].last(CROSS_REGION_PATH)
    assert (seen.method, seen.body, seen.request_id) == ("POST", body, "rid-1")
    assert seen.header("content-type") == "application/json"
    assert runner_app[RECEIVED].to(CROSS_REGION_PATH, "POST") == [seen]
    assert runner_app[RECEIVED].to(CROSS_REGION_PATH, "GET") == []


async def test_received_log_is_bounded(aiohttp_client: AiohttpClient) -> None:
    """The received log keeps only the newest requests."""
    app = create_reference_runner(received_limit=3)
    client = await aiohttp_client(app)
    for index in range(5):
        await client.get("/health", headers={"X-Request-ID": f"r{index}"})
    assert [r.request_id for r in app[RECEIVED]] == ["r2", "r3", "r4"]


async def test_fault_fail_next(client: Any, runner_app: web.Application) -> None:
    """fail_next answers the next submissions with the status before recording anything."""
    runner_app[FAULTS].fail_next(2, 503)
    statuses = [
        (await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="f")))).status
        for _ in range(3)
    ]
    assert statuses == [503, 503, 202]
    assert runner_app[STORE].count_jobs("f") == 1
    assert runner_app[FAULTS].injected_failures == 2
    runner_app[FAULTS].fail_next(1, 429, {"error": "slow down"})
    custom = await post_json(client, CROSS_REGION_PATH, wrapper(bias_spec(job_id="g")))
    assert (custom.status, await custom.read()) == (429, b'{"error":"slow down"}')


@pytest.mark.parametrize(
    "arm",
    [
        pytest.param(lambda f: f.fail_next(-1), id="negative-count"),
        pytest.param(lambda f: f.fail_next(1, 42), id="not-a-status"),
        pytest.param(lambda f: f.reset_next(-2), id="negative-resets"),
    ],
)
def test_faults_refuse_nonsense(arm: Callable[[ReferenceRunnerFaults], object]) -> None:
    """Arming a fault with a negative count or a non-HTTP status is a ValueError."""
    with pytest.raises(ValueError, match="needs count"):
        arm(ReferenceRunnerFaults())


async def test_fault_delay_before_record(aiohttp_server: AiohttpServer) -> None:
    """delay_before_record holds the submission before anything is stored."""
    app = create_reference_runner(faults=ReferenceRunnerFaults(delay_before_record=1.0))
    server = await aiohttp_server(app)
    body = json.dumps(wrapper(bias_spec(job_id="held"))).encode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.1)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(server.make_url(CROSS_REGION_PATH), data=body, headers=JSON)
    assert app[STORE].count_jobs("held") == 0


async def test_fault_delay_after_record_then_retry_is_500(aiohttp_server: AiohttpServer) -> None:
    """A client that times out after the job was recorded meets the duplicate-id 500 on retry."""
    faults = ReferenceRunnerFaults(delay_after_record=0.5)
    app = create_reference_runner(faults=faults)
    server = await aiohttp_server(app)
    body = json.dumps(wrapper(bias_spec(job_id="slow"))).encode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.1)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(server.make_url(CROSS_REGION_PATH), data=body, headers=JSON)
    assert app[STORE].count_jobs("slow") == 1
    faults.clear()
    async with aiohttp.ClientSession() as session:
        retry = await session.post(server.make_url(CROSS_REGION_PATH), data=body, headers=JSON)
        assert retry.status == 500


async def test_fault_reset_after_record(aiohttp_server: AiohttpServer) -> None:
    """reset_next records the job and then drops the connection without an answer."""
    faults = ReferenceRunnerFaults()
    faults.reset_next()
    app = create_reference_runner(faults=faults)
    server = await aiohttp_server(app)
    body = json.dumps(wrapper(bias_spec(job_id="reset"))).encode()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(server.make_url(CROSS_REGION_PATH), data=body, headers=JSON)
        assert app[STORE].count_jobs("reset") == 1
        health = await session.get(server.make_url("/health"))
        assert health.status == 200
    assert faults.injected_resets == 1


async def test_faults_target_only_their_paths(client: Any, runner_app: web.Application) -> None:
    """Faults armed for cross-region leave the standard route alone unless its path is added."""
    faults = runner_app[FAULTS]
    faults.fail_next(1, 502)
    assert (await post_json(client, STANDARD_PATH, bias_spec())).status == 202
    faults.paths = frozenset({STANDARD_PATH})
    assert (await post_json(client, STANDARD_PATH, bias_spec())).status == 502


async def test_websocket_hello_echo_and_ping(client: Any) -> None:
    """/ws greets with the captured X-Request-ID, echoes text and binary, and answers pings."""
    async with client.ws_connect("/ws", headers={"X-Request-ID": "ws-1"}, autoping=False) as ws:
        hello = await ws.receive_json()
        assert hello == {"request_id": "ws-1", "server": "reference-runner", "type": "connected"}
        await ws.send_str("hi")
        assert (await ws.receive()).data == "hi"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive()).data == b"\x00\x01"
        await ws.ping(b"p")
        pong = await ws.receive()
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"p")


# --- command line ---------------------------------------------------------------------------


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The reference-runner command prints its URL, serves, keeps --db data, exits 0 on SIGTERM."""
    db = tmp_path / "runner.sqlite"
    with subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", "adapter", "reference-runner", "--port", "0", "--db", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.fullmatch(r"reference runner listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            url = match.group(1)

            async def submit() -> int:
                async with aiohttp.ClientSession() as session:
                    response = await session.post(
                        f"{url}{CROSS_REGION_PATH}",
                        data=json.dumps(wrapper(bias_spec(job_id="cli"))),
                        headers=JSON,
                    )
                    return response.status

            assert asyncio.run(submit()) == 202
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert process.stdout.read() == "reference runner stopping\n"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT jobspec_id, status FROM jobs").fetchall()
    assert rows == [("cli", "completed")]

"""The end-to-end check that can fail: the reference runner verifies with its own plain
canonicalisation (runner_canonical), so a drift in the adapter's is rejected by the
runner's 400 through real sockets instead of being signed and verified alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer
from structlog.testing import capture_logs

from adapter.devkit.reference_runner import RECEIVED, create_reference_runner
from adapter.jobs import canonical
from adapter.jobs.canonical import canonical_v1
from adapter.jobs.jobspec import decode_jobspec, marshal_go
from tests.conftest import AdapterFactory, RunningAdapter
from tests.portal import body, portal_spec, sign

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
ON = {"ADAPTER_ROLLOUT_PERCENT": "100", "ADAPTER_SIGNING_KEY": SEED_B64}
JSON_HEADERS = {"Content-Type": "application/json"}
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
CROSS_REGION = "/api/v1/jobs/cross-region"

Stack = Callable[[], Awaitable[tuple[TestServer, RunningAdapter]]]


@pytest.fixture(name="stack")
def _stack(aiohttp_server: AiohttpServer, start_adapter: AdapterFactory) -> Stack:
    async def start() -> tuple[TestServer, RunningAdapter]:
        runner = await aiohttp_server(create_reference_runner())
        adapter = await start_adapter(runner.make_url("/"), ON)
        return runner, adapter

    return start


async def _submit(
    http: aiohttp.ClientSession, url: Any, data: bytes
) -> tuple[int, dict[str, Any], str]:
    async with http.post(url, data=data, headers=JSON_HEADERS) as response:
        answer = json.loads(await response.read())
        return response.status, answer, response.headers.get("X-Adapter-Decision", "")


def _trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The V0 form's trailing newline creeps into V1, everywhere the adapter computes it
    (the signer and the rewrite's self-check alike, as a real regression would)."""

    def drifted(spec: Any) -> bytes:
        return canonical_v1(spec) + b"\n"

    for module in ("adapter.jobs.canonical", "adapter.jobs.signing", "adapter.jobs.rewrite"):
        monkeypatch.setattr(f"{module}.canonical_v1", drifted)


def _created_at_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 3 forgets created_at (the raw-body check keeps it; V1 does not)."""
    monkeypatch.setattr(canonical, "_V1_REMOVED_SET", frozenset({"id", "signature", "public_key"}))


@pytest.mark.parametrize("drift", [None, _trailing_newline, _created_at_kept])
async def test_adapter_canonical_drift_is_rejected_by_the_runner(
    stack: Stack,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    drift: Callable[[pytest.MonkeyPatch], None] | None,
) -> None:
    """Unbroken, the rewritten job is accepted (202). With the adapter's canonicalisation
    broken on purpose, the adapter still rewrites (its self-check uses the same broken
    code) and the reference runner refuses the rewritten job with the runner's 400 for a
    bad signature; the adapter then falls back to the standard route with the original
    bytes, and the runner's refusal is logged and counted."""
    runner, adapter = await stack()
    if drift is not None:
        drift(monkeypatch)
    data = body(sign(portal_spec(), PORTAL_KEY, "portal_5fa6ece"))
    with capture_logs() as logs:
        status, answer, decision = await _submit(http, adapter.url / "api/v1/jobs", data)
    sent = runner.app[RECEIVED].last(CROSS_REGION)
    assert sent is not None  # the rewritten job reached the runner's cross-region route
    if drift is None:
        assert decision.startswith("rewritten"), (decision, answer)
        assert status == 202, answer
        return
    assert decision == "fallback; reason=cross_region_rejected", (decision, answer)
    refusals = [line for line in logs if line["event"] == "cross_region_rejected"]
    assert len(refusals) == 1, logs
    assert refusals[0]["status"] == 400
    refusal = json.loads(refusals[0]["body"])
    assert refusal["error"] == "Invalid JobSpec signature"
    assert refusal["details"].startswith("signature verification failed (canonical length:")
    rejections = adapter.registry.get_sample_value(
        "adapter_cross_region_rejections_total", {"error": "invalid_signature"}
    )
    assert rejections == 1
    # The fallback sent the client's own bytes to the standard route, which took them.
    assert runner.app[RECEIVED].last("/api/v1/jobs") is not None
    assert status in (200, 201, 202), answer


def _signed_spec(**overrides: Any) -> dict[str, Any]:
    """A spec signed under V1 by the portal key, over the runner's canonical bytes."""
    spec = decode_jobspec(marshal_go({**portal_spec(), **overrides, "created_at": None}))
    spec["public_key"] = base64.b64encode(bytes(PORTAL_KEY.verify_key)).decode()
    signature = PORTAL_KEY.sign(canonical_v1(spec)).signature
    spec["signature"] = base64.b64encode(signature).decode()
    return spec


@pytest.mark.parametrize(("signed", "status"), [(True, 400), (False, 500)])
async def test_created_at_go_cannot_marshal_on_the_cross_region_route(
    reference_runner: TestServer, http: aiohttp.ClientSession, signed: bool, status: int
) -> None:
    """An offset of 24 h decodes but cannot be marshalled: signed, canonicalisation fails
    (400, Invalid JobSpec signature); unsigned, the job record cannot be stored (500)."""
    spec = _signed_spec()
    if not signed:
        spec["signature"] = spec["public_key"] = ""
    request = {"jobspec": spec, "target_regions": ["US", "EU"]}
    data = marshal_go(request).replace(
        b'"created_at":"0001-01-01T00:00:00Z"', b'"created_at":"2025-10-12T14:12:10+24:00"'
    )
    assert b"+24:00" in data
    status_seen, answer, _ = await _submit(http, reference_runner.make_url(CROSS_REGION), data)
    assert status_seen == status, answer
    if signed:
        assert answer["error"] == "Invalid JobSpec signature"
        assert answer["details"].startswith("failed to canonicalize jobspec")
    else:
        assert answer == {"error": "Failed to create job record"}


async def test_runner_v1_signed_spec_is_accepted_on_the_cross_region_route(
    reference_runner: TestServer, http: aiohttp.ClientSession
) -> None:
    """Control for the test above: the same spec with a valid created_at is accepted."""
    request = {"jobspec": _signed_spec(), "target_regions": ["US", "EU"]}
    status, answer, _ = await _submit(
        http, reference_runner.make_url(CROSS_REGION), marshal_go(request)
    )
    assert status == 202, answer

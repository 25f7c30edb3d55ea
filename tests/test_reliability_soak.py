"""A 60 s soak: mixed traffic at concurrency 32 through a served adapter, zero errors, flat RSS.

The adapter runs as ``python -m adapter serve`` (100 % rollout, real signing key) in
front of the reference runner, so its resident memory is its own. 32 workers loop over
a weighted mix: GETs, single-region jobs passed through, multi-region jobs rewritten
with fresh ids, and WebSocket echoes. Every answer must be the expected one. The bound:
RSS may grow by less than 30 MiB between the end of the first 10 s (the warm-up) and the
end of the run (allocator arenas and caches settle in the warm-up; a leak of even 1 KiB per
request would exceed it within the run). The figures are printed for the report.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer

from adapter.devkit.reference_runner import create_reference_runner
from tests.conftest import AdapterFactory
from tests.portal import body, portal_spec, sign
from tests.served_adapter import ServedAdapter, served_adapter

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
CONCURRENCY = 32
WARM_UP = 10.0
DURATION = 60.0
MAX_RSS_GROWTH = 30 * 1024 * 1024
JSON = {"Content-Type": "application/json"}

_ids = itertools.count()


async def _get(http: aiohttp.ClientSession, adapter: ServedAdapter) -> str:
    async with http.get(adapter.proxy / "health") as response:
        answer = await response.json()
        assert response.status == 200, answer
        assert answer["status"] == "healthy", answer
    return "get"


async def _single_region(http: aiohttp.ClientSession, adapter: ServedAdapter) -> str:
    spec = portal_spec(regions=("US",), job_id=f"bias-detection-soak-single-{next(_ids)}")
    data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
    async with http.post(adapter.proxy / "api/v1/jobs", data=data, headers=JSON) as response:
        answer = await response.read()
        assert response.status == 202, answer
        assert response.headers["X-Adapter-Decision"] == "passthrough; reason=single_region"
    return "passthrough"


async def _rewrite(http: aiohttp.ClientSession, adapter: ServedAdapter) -> str:
    job_id = f"bias-detection-soak-{next(_ids)}"
    spec = portal_spec(job_id=job_id, wallet=f"0x{next(_ids):040x}")
    data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
    async with http.post(adapter.proxy / "api/v1/jobs", data=data, headers=JSON) as response:
        answer = orjson.loads(await response.read())
        assert response.status == 202, answer
        assert answer["job_id"] == job_id
        assert response.headers["X-Adapter-Decision"].startswith("rewritten; reason=in_rollout")
    async with http.get(adapter.proxy / f"api/v1/jobs/{job_id}") as response:
        assert response.status == 200
        await response.read()
    return "rewrite"


async def _websocket(http: aiohttp.ClientSession, adapter: ServedAdapter) -> str:
    async with http.ws_connect(adapter.proxy / "ws") as ws:
        await ws.receive(timeout=10)  # the runner's greeting
        text = f"echo-{next(_ids)}"
        await ws.send_str(text)
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        assert text in message.data, message.data
    return "websocket"


MIX = [_get] * 4 + [_single_region] * 2 + [_rewrite] * 3 + [_websocket]


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_soak_mixed_traffic_zero_errors_flat_rss(aiohttp_server: AiohttpServer) -> None:
    """60 s at concurrency 32: every answer as expected, adapter RSS growth < 30 MiB."""
    runner = await aiohttp_server(create_reference_runner())
    async with served_adapter(
        runner.make_url("/"),
        ADAPTER_ROLLOUT_PERCENT="100",
        ADAPTER_SIGNING_KEY=SEED_B64,
        ADAPTER_LOG_LEVEL="warning",
    ) as adapter:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + DURATION  # the warm-up is the run's first 10 s
        counts: Counter[str] = Counter()
        errors: list[str] = []
        warm_rss: list[int] = []

        async def worker(seed: int, http: aiohttp.ClientSession) -> None:
            chooser = random.Random(seed)
            for _ in range(1_000_000):  # bounded; the deadline ends it
                if loop.time() >= deadline:
                    return
                step = chooser.choice(MIX)
                try:
                    counts[await step(http, adapter)] += 1
                except (AssertionError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{step.__name__}: {type(exc).__name__}: {exc}"[:300])

        async def sample_rss() -> None:
            await asyncio.sleep(WARM_UP)
            warm_rss.append(adapter.memory("VmRSS"))

        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as http:
            sampler = asyncio.create_task(sample_rss())
            await asyncio.gather(*(worker(seed, http) for seed in range(CONCURRENCY)))
            await sampler
        elapsed = loop.time() - started
        end_rss = adapter.memory("VmRSS")
        peak_rss = adapter.memory("VmHWM")

    total = sum(counts.values())
    growth = end_rss - warm_rss[0]
    print(  # the figures for the report (pytest -s)
        f"\nsoak: {total} operations in {elapsed:.1f} s ({total / elapsed:.0f}/s), "
        f"{dict(counts)}, errors {len(errors)}; adapter RSS after warm-up "
        f"{warm_rss[0] / 2**20:.1f} MiB, at end {end_rss / 2**20:.1f} MiB, growth "
        f"{growth / 2**20:.1f} MiB, peak {peak_rss / 2**20:.1f} MiB"
    )
    assert errors == []
    assert set(counts) == {"get", "passthrough", "rewrite", "websocket"}
    assert growth < MAX_RSS_GROWTH


async def test_websocket_after_a_pooled_request_is_relayed(
    aiohttp_server: AiohttpServer, start_adapter: AdapterFactory
) -> None:
    """Regression (found by the soak): an upgrade that reuses a pooled upstream connection
    hit the stale-connection trace hook without its per-request state, a 502 adapter_error."""
    runner = await aiohttp_server(create_reference_runner())
    adapter = await start_adapter(runner.make_url("/"))
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # a GET leaves a pooled connection; each upgrade may reuse it
            async with http.get(adapter.url / "health") as response:
                assert response.status == 200
            async with http.ws_connect(adapter.url / "ws") as ws:
                await ws.receive(timeout=10)  # the runner's greeting
                await ws.send_str("ping-through")
                message = await ws.receive(timeout=10)
                assert "ping-through" in message.data

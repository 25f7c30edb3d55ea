"""SIGTERM with 50 requests in flight on a served process: all 50 finish whole, then exit 0.

tests/test_server.py checks the drain itself (readiness, refusal, the grace cut) with
three requests; this is the loaded version: streaming downloads still being written,
uploads still being answered, and POSTs of jobs through the rewrite, all at the moment
the signal lands.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer

from adapter.devkit.reference_runner import FAULTS, RECEIVED, create_reference_runner
from tests.portal import body, portal_spec, sign
from tests.served_adapter import served_adapter

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
DOWNLOADS, UPLOADS, JOBS = 25, 15, 10
BLOCK = bytes(range(256)) * 128  # 32 KiB
BLOCKS = 16  # 512 KiB per download, written over ~1.6 s


class SlowRunner:
    """Downloads that stream slowly and uploads answered late; counts what it holds."""

    def __init__(self) -> None:
        self.holding = 0

    async def download(self, request: web.Request) -> web.StreamResponse:
        self.holding += 1
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(BLOCK) * BLOCKS
        await response.prepare(request)
        for _ in range(BLOCKS):
            await response.write(BLOCK)
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        self.holding += 1
        data = await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({"sha256": hashlib.sha256(data).hexdigest()})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/download", self.download)
        app.router.add_post("/upload", self.upload)
        return app


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_sigterm_with_50_in_flight_finishes_every_one_then_exits_0(
    aiohttp_server: AiohttpServer,
) -> None:
    """25 downloads mid-stream, 15 uploads and 10 rewritten jobs in flight: all complete whole."""
    slow = SlowRunner()
    reference = create_reference_runner()
    reference.add_subapp("/slow", slow.app())
    runner = await aiohttp_server(reference)
    reference[RECEIVED].clear()
    # Jobs wait 1 s at the runner after being recorded, so they are in flight at the signal.
    reference[FAULTS].delay_after_record = 1.0

    async with (
        served_adapter(
            runner.make_url("/"),
            ADAPTER_SHUTDOWN_GRACE="15",
            ADAPTER_ROLLOUT_PERCENT="100",
            ADAPTER_SIGNING_KEY=SEED_B64,
            ADAPTER_LOG_LEVEL="warning",
        ) as adapter,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):

        async def download() -> tuple[int, int, str]:
            async with http.get(adapter.proxy / "slow" / "download") as response:
                data = await response.read()
                return response.status, len(data), hashlib.sha256(data).hexdigest()

        async def upload(index: int) -> tuple[int, str, str]:
            data = bytes([index]) * 300_000
            # The reference runner's middleware wants a JSON type on every POST.
            headers = {"Content-Type": "application/json"}
            url = adapter.proxy / "slow" / "upload"
            async with http.post(url, data=data, headers=headers) as response:
                answer = await response.json()
                return response.status, answer["sha256"], hashlib.sha256(data).hexdigest()

        async def job(index: int) -> tuple[int, str]:
            spec = portal_spec(job_id=f"bias-detection-drain-{index}")
            data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
            headers = {"Content-Type": "application/json"}
            async with http.post(
                adapter.proxy / "api/v1/jobs", data=data, headers=headers
            ) as response:
                answer = await response.json()
                return response.status, answer["job_id"]

        download_tasks = [asyncio.create_task(download()) for _ in range(DOWNLOADS)]
        upload_tasks = [asyncio.create_task(upload(i)) for i in range(UPLOADS)]
        job_tasks = [asyncio.create_task(job(i)) for i in range(JOBS)]
        async with asyncio.timeout(15):
            while True:  # bounded by the timeout: until the runner holds all 50
                jobs_held = len(reference[RECEIVED].to("/api/v1/jobs/cross-region"))
                if slow.holding == DOWNLOADS + UPLOADS and jobs_held == JOBS:
                    break
                await asyncio.sleep(0.01)
        in_flight: list[asyncio.Task[object]] = [*download_tasks, *upload_tasks, *job_tasks]
        assert not any(t.done() for t in in_flight)
        adapter.process.send_signal(signal.SIGTERM)

        async with asyncio.timeout(30):
            downloads = await asyncio.gather(*download_tasks)
            uploads = await asyncio.gather(*upload_tasks)
            jobs = await asyncio.gather(*job_tasks)
            exit_status = await adapter.process.wait()

    expected_download = (200, len(BLOCK) * BLOCKS, hashlib.sha256(BLOCK * BLOCKS).hexdigest())
    assert downloads == [expected_download] * DOWNLOADS
    for status, received, sent in uploads:
        assert (status, received) == (200, sent)
    assert jobs == [(202, f"bias-detection-drain-{i}") for i in range(JOBS)]
    assert exit_status == 0
    assert [line["event"] for line in adapter.lines if line.get("level") == "error"] == []

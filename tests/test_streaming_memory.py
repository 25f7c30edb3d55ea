"""200 MB up and 200 MB down through a real adapter process with flat memory.

The adapter runs as `python -m adapter serve`; its peak resident memory (VmHWM from
/proc/<pid>/status) is compared with its resident memory after warm-up. Both bodies
are generated on the fly and checked by length and SHA-256 at the far end, so nothing
is held whole in the test process either.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import free_port

TOTAL = 200 * 1024 * 1024
CHUNK = 64 * 1024
# The proxy must stay well below the body size; this bound is generous on purpose.
MAX_GROWTH_BYTES = 150 * 1024 * 1024
_BLOCK = bytes(range(256)) * (CHUNK // 256)


def _expected_digest() -> str:
    digest = hashlib.sha256()
    for _ in range(TOTAL // CHUNK):
        digest.update(_BLOCK)
    return digest.hexdigest()


def _status_kib(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def _upload_sink(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def _download_source(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = TOTAL
    await response.prepare(request)
    for _ in range(TOTAL // CHUNK):
        await response.write(_BLOCK)
    await response.write_eof()
    return response


async def _body() -> AsyncIterator[bytes]:
    for _ in range(TOTAL // CHUNK):
        yield _BLOCK


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_200mb_each_way_with_flat_memory(aiohttp_server: AiohttpServer) -> None:
    """200 MB upload and download pass byte-identical; adapter RSS grows < 150 MB."""
    app = web.Application()
    app.router.add_post("/upload", _upload_sink)
    app.router.add_get("/download", _download_source)
    upstream = await aiohttp_server(app)
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env.update(
        ADAPTER_UPSTREAM_URL=str(upstream.make_url("")),
        ADAPTER_HOST="127.0.0.1",
        ADAPTER_PORT=str(port),
        ADAPTER_ADMIN_PORT=str(admin_port),
        ADAPTER_LOG_LEVEL="warning",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapter", "serve", env=env
    )
    expected = _expected_digest()
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            for _ in range(500):  # bounded: up to 10 s for the process to listen
                try:
                    async with http.post(f"{base}/upload", data=b"warm-up") as response:
                        await response.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            baseline = _status_kib(process.pid, "VmRSS")

            loop = asyncio.get_running_loop()
            started = loop.time()
            async with asyncio.timeout(60):
                headers = {"Content-Length": str(TOTAL)}
                async with http.post(f"{base}/upload", data=_body(), headers=headers) as response:
                    uploaded = await response.json()
                upload_seconds = loop.time() - started

                digest = hashlib.sha256()
                size = 0
                async with http.get(f"{base}/download") as response:
                    assert response.headers["Content-Length"] == str(TOTAL)
                    async for chunk in response.content.iter_chunked(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
            total_seconds = loop.time() - started
        peak = _status_kib(process.pid, "VmHWM")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.wait()

    assert uploaded == {"size": TOTAL, "sha256": expected}
    assert (size, digest.hexdigest()) == (TOTAL, expected)
    growth = peak - baseline
    print(  # the figures for the report; pytest -s shows them
        f"\nstreaming memory: baseline RSS {baseline / 2**20:.1f} MiB, peak (VmHWM) "
        f"{peak / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB; upload "
        f"{upload_seconds:.2f} s, upload+download {total_seconds:.2f} s"
    )
    assert growth < MAX_GROWTH_BYTES
    assert process.returncode == 0

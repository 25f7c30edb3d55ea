"""`python -m adapter serve` as a child process, for tests that measure the process itself.

Descriptors and resident memory are read from /proc/<pid>, so the figures belong to the
adapter alone, not to the test process that drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from yarl import URL

from tests.conftest import free_port


@dataclass
class ServedAdapter:
    """A running adapter process, its URLs and the JSON log lines it wrote."""

    process: asyncio.subprocess.Process
    proxy: URL
    admin: URL
    lines: list[dict[str, object]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def fds(self) -> int:
        """Open file descriptors of the adapter process."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def memory(self, name: str = "VmRSS") -> int:
        """A memory field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"{name} not in /proc/{self.pid}/status")

    def events(self, event: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line.get("event") == event]

    async def wait_for_event(self, event: str, seconds: float = 10) -> dict[str, object]:
        async with asyncio.timeout(seconds):
            while True:  # bounded by the timeout
                found = self.events(event)
                if found:
                    return found[0]
                if self.process.returncode is not None:
                    raise AssertionError(f"adapter exited before {event!r}")
                await asyncio.sleep(0.01)


async def _collect(stream: asyncio.StreamReader, into: list[dict[str, object]]) -> None:
    async for raw in stream:
        with contextlib.suppress(orjson.JSONDecodeError):
            into.append(orjson.loads(raw))


@contextlib.asynccontextmanager
async def served_adapter(upstream: URL, **values: str) -> AsyncIterator[ServedAdapter]:
    """Start the adapter in front of ``upstream`` on free loopback ports; kill it at exit.

    ``values`` are extra ADAPTER_* variables. The context yields once the admin port
    answers /healthz, which the adapter opens just before the proxy port; the proxy port
    is then polled too, so any log level works.
    """
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env.update(
        ADAPTER_UPSTREAM_URL=str(upstream),
        ADAPTER_HOST="127.0.0.1",
        ADAPTER_PORT=str(port),
        ADAPTER_ADMIN_PORT=str(admin_port),
        **values,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapter", "serve", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    served = ServedAdapter(
        process, URL(f"http://127.0.0.1:{port}"), URL(f"http://127.0.0.1:{admin_port}")
    )
    reader = asyncio.create_task(_collect(process.stdout, served.lines))
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_until_listening(session, served.admin / "healthz", process)
            await _wait_until_listening(session, served.proxy, process)
        yield served
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
        await reader


async def _wait_until_listening(
    session: aiohttp.ClientSession, url: URL, process: asyncio.subprocess.Process
) -> None:
    """Poll ``url`` until it answers at all (bounded: 20 s)."""
    for _ in range(1000):
        if process.returncode is not None:
            raise AssertionError(f"adapter exited with {process.returncode} before listening")
        try:
            async with session.get(url) as response:
                await response.read()
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.02)
    raise AssertionError(f"{url} never answered")

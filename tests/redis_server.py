"""A throwaway ``redis-server`` (Debian's package) on a free loopback port, for tests.

Nothing is persisted (no RDB, no AOF, a private directory). The ``redis_server`` fixture
starts one per test and stops it at the end; ``stop()`` / ``start()`` let a test take it
away mid-way and bring it back on the same port. Without the binary the fixture skips,
except under ``CI=true``, where the test fails: CI must never skip these silently
(``.ci/run`` installs the package).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, server_unavailable

_START_TIMEOUT = 10.0


@dataclass
class RedisServer:
    """One redis-server child process; ``url`` stays valid across stop/start."""

    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(_START_TIMEOUT):
            while not await self.ping():  # bounded by the timeout
                if self.process.returncode is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def ping(self) -> bool:
        """True when the server answers PING on its port."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            async with asyncio.timeout(1):
                return (await reader.readline()).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@pytest.fixture(name="redis_server")
async def _redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A fresh redis-server for one test, stopped at the end."""
    binary = shutil.which("redis-server", path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin")
    if binary is None:
        server_unavailable("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary, tmp_path)
    try:
        await server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        await server.stop()
        server_unavailable(f"redis-server did not start: {exc!r}")
    try:
        yield server
    finally:
        await server.stop()


__all__ = ("RedisServer",)

"""`python -m adapter serve` as a real process: config errors, start-up, graceful drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from yarl import URL

from tests.conftest import RecordingUpstream, free_port


def _env(**values: str) -> dict[str, str]:
    """The current environment without ADAPTER_* variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env.update(values)
    return env


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, "ADAPTER_UPSTREAM_URL=(unset): is required", id="missing-url"),
        pytest.param(
            {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:1", "ADAPTER_PORT": "eighty"},
            "ADAPTER_PORT='eighty': expected an integer from 1 to 65535",
            id="bad-port",
        ),
        pytest.param(
            {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:1", "ADAPTER_LOG_FORMAT": "yaml"},
            "ADAPTER_LOG_FORMAT='yaml': expected one of json, console",
            id="bad-format",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(values: Mapping[str, str], expected: str) -> None:
    """A bad variable stops the process with status 2 and one stderr line naming it."""
    result = subprocess.run(
        [sys.executable, "-m", "adapter", "serve"],
        env=_env(**values),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [f"beacon-adapter: configuration error: {expected}"]


@dataclass
class AdapterProcess:
    """A running `python -m adapter serve` with its JSON log lines collected."""

    process: asyncio.subprocess.Process
    proxy: URL
    admin: URL
    lines: list[dict[str, object]] = field(default_factory=list)

    def events(self) -> list[object]:
        return [line.get("event") for line in self.lines]

    async def wait_for_event(self, event: str) -> dict[str, object]:
        for _ in range(1000):  # bounded: 10 s
            for line in self.lines:
                if line.get("event") == event:
                    return line
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {event!r} log line; saw {self.events()}")


async def _collect(stream: asyncio.StreamReader, into: list[dict[str, object]]) -> None:
    async for raw in stream:
        into.append(orjson.loads(raw))


Spawner = Callable[..., Awaitable[AdapterProcess]]


@pytest.fixture(name="spawn")
async def _spawn() -> AsyncIterator[Spawner]:
    processes: list[tuple[asyncio.subprocess.Process, asyncio.Task[None]]] = []

    async def spawn(upstream: URL, **values: str) -> AdapterProcess:
        proxy_port, admin_port = free_port(), free_port()
        env = _env(
            ADAPTER_UPSTREAM_URL=str(upstream),
            ADAPTER_HOST="127.0.0.1",
            ADAPTER_PORT=str(proxy_port),
            ADAPTER_ADMIN_PORT=str(admin_port),
            **values,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapter", "serve", env=env, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        running = AdapterProcess(
            process,
            URL(f"http://127.0.0.1:{proxy_port}"),
            URL(f"http://127.0.0.1:{admin_port}"),
        )
        processes.append((process, asyncio.create_task(_collect(process.stdout, running.lines))))
        await running.wait_for_event("adapter_started")
        return running

    yield spawn
    for process, reader in processes:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reader


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_drains_in_flight_requests_then_exits_0(
    upstream: RecordingUpstream, spawn: Spawner, signum: signal.Signals
) -> None:
    """On SIGTERM/SIGINT: readiness 503, no new connections, in-flight requests finish, exit 0."""
    adapter = await spawn(upstream.url, ADAPTER_SHUTDOWN_GRACE="10")
    started = await adapter.wait_for_event("adapter_started")
    config = started["config"]
    assert isinstance(config, dict)
    assert config["upstream_url"] == str(upstream.url)
    assert config["shutdown_grace"] == 10.0

    async with aiohttp.ClientSession() as http:
        slow_url = adapter.proxy.with_path("/slow").with_query(seconds="1")

        async def slow_request() -> tuple[int, str]:
            async with http.get(slow_url) as response:
                return response.status, await response.text()

        in_flight = [asyncio.create_task(slow_request()) for _ in range(3)]
        for _ in range(500):  # bounded: until the upstream holds all three
            if sum(r.raw_path.startswith("/slow") for r in upstream.requests) == 3:
                break
            await asyncio.sleep(0.01)
        adapter.process.send_signal(signum)
        await adapter.wait_for_event("adapter_draining")

        async with http.get(adapter.admin / "readyz") as response:
            assert response.status == 503
            assert (await response.json())["reason"] == "draining"
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with fresh.get(adapter.proxy / "echo"):
                    pass

        results = await asyncio.gather(*in_flight)
    assert results == [(200, "slow done")] * 3
    async with asyncio.timeout(10):
        assert await adapter.process.wait() == 0
    stopped = await adapter.wait_for_event("adapter_stopped")
    assert stopped["config"] == config
    assert adapter.events().count("request") == 3


async def test_grace_limits_the_drain(upstream: RecordingUpstream, spawn: Spawner) -> None:
    """A request longer than ADAPTER_SHUTDOWN_GRACE is cut, and the process still exits 0."""
    adapter = await spawn(upstream.url, ADAPTER_SHUTDOWN_GRACE="0.3")
    async with aiohttp.ClientSession() as http:
        slow_url = adapter.proxy.with_path("/slow").with_query(seconds="20")

        async def slow_request() -> int:
            async with http.get(slow_url) as response:
                await response.read()
                return response.status

        pending = asyncio.create_task(slow_request())
        for _ in range(500):  # bounded: until the upstream holds the request
            if any(r.raw_path.startswith("/slow") for r in upstream.requests):
                break
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        adapter.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await adapter.process.wait() == 0
        assert loop.time() - sent < 8
        with pytest.raises(aiohttp.ClientError):
            await pending


async def test_started_process_proxies_and_reports(
    upstream: RecordingUpstream, spawn: Spawner
) -> None:
    """The served process proxies, answers /healthz and /metrics, and logs JSON lines."""
    adapter = await spawn(upstream.url)
    async with aiohttp.ClientSession() as http:
        async with http.get(adapter.proxy / "api" / "v1" / "jobs") as response:
            assert response.status == 200
        async with http.get(adapter.admin / "healthz") as response:
            assert response.status == 200
        async with http.get(adapter.admin / "metrics") as response:
            assert "adapter_requests_total" in await response.text()
    line = await adapter.wait_for_event("request")
    assert line["path"] == "/api/v1/jobs"
    assert isinstance(line["request_id"], str)
    adapter.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await adapter.process.wait() == 0

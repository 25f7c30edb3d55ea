"""Load generation: ``wrk`` when installed, else a bounded aiohttp client.

Both produce the same ``Measurement`` (requests, errors, wall time, p50/p99). The Python
generator runs ``concurrency`` closed-loop workers over one keep-alive pool and stops at a
deadline or a request cap, whichever comes first; latencies go into a log-bucketed
histogram (≈1 % resolution) so memory stays constant however long the run. It is slower
than wrk, so with it the load generator, not the proxy, may cap throughput at c=64.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

WRK_MARKER: Final = "BENCH_RESULT "
_SUB_BUCKETS: Final = 64  # per power of two: bucket width under 1.6 %
DEFAULT_MAX_REQUESTS: Final = 5_000_000
STREAM_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of request: method, path, body and headers."""

    name: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one load run observed (latencies in microseconds)."""

    tool: str
    requests: int
    errors: int
    duration_s: float
    p50_us: float
    p99_us: float

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second of wall time."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(slots=True)
class LatencyHistogram:
    """Log-bucketed latency counts: constant memory, bounded relative error."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0

    @staticmethod
    def bucket(latency_us: float) -> int:
        """Index of the bucket holding ``latency_us``."""
        if latency_us < 1.0:
            return 0
        mantissa, exponent = math.frexp(latency_us)  # latency = mantissa * 2**exponent
        return exponent * _SUB_BUCKETS + int((mantissa - 0.5) * 2 * _SUB_BUCKETS)

    @staticmethod
    def upper_edge(index: int) -> float:
        """Largest latency that falls into bucket ``index``."""
        if index == 0:
            return 1.0
        exponent, sub = divmod(index, _SUB_BUCKETS)
        return math.ldexp(0.5 + (sub + 1) / (2 * _SUB_BUCKETS), exponent)

    def record(self, latency_us: float) -> None:
        """Count one latency."""
        index = self.bucket(latency_us)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1

    def percentile(self, q: float) -> float:
        """The latency below which a fraction ``q`` of samples fall (0 when empty)."""
        if self.total == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return self.upper_edge(index)
        return self.upper_edge(max(self.counts))


async def run_python_load(
    url: str,
    scenario: Scenario,
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    request_timeout_s: float = 10.0,
) -> Measurement:
    """Closed-loop load from ``concurrency`` workers, bounded by time and count."""
    histogram = LatencyHistogram()
    errors = 0
    issued = 0
    headers = dict(scenario.headers)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    target = url.rstrip("/") + scenario.path
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker() -> None:
            nonlocal errors, issued
            while issued < max_requests:
                now = time.perf_counter()
                if now >= deadline:
                    return
                issued += 1
                try:
                    async with session.request(
                        scenario.method,
                        target,
                        data=scenario.body or None,
                        headers=headers,
                    ) as response:
                        await response.read()
                        failed = response.status >= 400
                except (aiohttp.ClientError, TimeoutError):
                    failed = True
                if failed:
                    errors += 1
                else:
                    histogram.record((time.perf_counter() - now) * 1e6)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Measurement(
        tool="python",
        requests=histogram.total,
        errors=errors,
        duration_s=elapsed,
        p50_us=histogram.percentile(0.50),
        p99_us=histogram.percentile(0.99),
    )


def find_wrk() -> str | None:
    """Path of the wrk binary, or None when it is not installed."""
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def render_wrk_script(scenario: Scenario, body_file: Path | None) -> str:
    """A wrk Lua script: the scenario's request, and a JSON summary line at the end."""
    lines = [f"wrk.method = {_lua_string(scenario.method)}"]
    if body_file is not None:
        lines += [
            f"local f = assert(io.open({_lua_string(str(body_file))}, 'rb'))",
            "wrk.body = f:read('*a')",
            "f:close()",
        ]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in scenario.headers]
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        "  io.write(string.format(",
        f"    '{WRK_MARKER}"
        '{"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,'
        '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.1f,"p99_us":%.1f}\\n\',',
        "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,",
        "    e.timeout, latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def parse_wrk_output(stdout: str) -> Measurement:
    """Read the summary line the script's ``done`` wrote; raise if it is absent."""
    for line in stdout.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
            errors = sum(int(data[k]) for k in ("connect", "read", "write", "status", "timeout"))
            return Measurement(
                tool="wrk",
                requests=int(data["requests"]),
                errors=errors,
                duration_s=float(data["duration_us"]) / 1e6,
                p50_us=float(data["p50_us"]),
                p99_us=float(data["p99_us"]),
            )
    raise ValueError(f"wrk printed no {WRK_MARKER.strip()} line:\n{stdout[-2000:]}")


def run_wrk(
    wrk: str,
    url: str,
    scenario: Scenario,
    *,
    concurrency: int,
    duration_s: float,
    workdir: Path,
) -> Measurement:
    """One wrk run (one thread: the load side has one core) parsed into a Measurement."""
    workdir.mkdir(parents=True, exist_ok=True)
    body_file = None
    if scenario.body:
        body_file = workdir / f"{scenario.name}.body"
        body_file.write_bytes(scenario.body)
    script = workdir / f"{scenario.name}.lua"
    script.write_text(render_wrk_script(scenario, body_file), encoding="utf-8")
    seconds = max(1, round(duration_s))
    argv = [
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url.rstrip("/") + scenario.path,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk_output(done.stdout)


async def stream_download(url: str, *, timeout_s: float) -> tuple[int, int]:
    """GET ``url`` and discard the body chunk by chunk; return (status, bytes received)."""
    received = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
        session.get(url) as response,
    ):
        async for chunk in response.content.iter_chunked(STREAM_CHUNK):
            received += len(chunk)
        return response.status, received


async def stream_upload(url: str, total: int, *, timeout_s: float) -> tuple[int, int]:
    """POST ``total`` zero bytes (chunked) to ``url``; return (status, bytes received).

    The count is the upstream's own ``received`` figure when it reports one, else the
    bytes this client actually sent, so an early answer can never pass for a full upload.
    """
    chunk = bytes(STREAM_CHUNK)
    sent = 0

    async def zeros() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            piece = chunk if total - sent >= STREAM_CHUNK else chunk[: total - sent]
            sent += len(piece)
            yield piece

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"Content-Type": "application/octet-stream"}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=zeros(), headers=headers) as response,
    ):
        answer = await response.read()
    try:
        received = json.loads(answer)["received"]
    except (ValueError, KeyError, TypeError):
        received = sent
    return response.status, received if isinstance(received, int) else sent

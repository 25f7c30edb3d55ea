"""Process orchestration for the bench: start the servers, pin them, run the rounds.

Every server is a child process on a free 127.0.0.1 port. On a machine with two or more
CPUs the upstream and the proxy under test share the first CPU (on purpose: the proxy
competes with its upstream, as on a shared machine) and the load generator, this process
included, gets the remaining ones. Pinning happens in the child before ``exec`` so every
thread and worker the server later creates inherits it. CPU time comes from
``/proc/<pid>/stat`` (utime+stime over the process tree), memory from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from bench import loadgen, nginx
from bench.loadgen import Measurement, Scenario
from bench.report import MissingTarget, RunInfo, Sample, StreamResult
from bench.upstream import BLOB_PATH, UPLOAD_PATH

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
VECTOR_PATH: Final = REPO_ROOT / "tests" / "vectors" / "old-portal" / "21-3regions.json"
# "adapter-aiohttp" is the same adapter with ADAPTER_LEAN_RELAY=false: every request on
# aiohttp's server and client, the path the lean relay replaced for plain requests.
TARGETS: Final[tuple[str, ...]] = ("direct", "adapter", "adapter-aiohttp", "nginx", "naive")
PROXIES: Final = ("adapter", "adapter-aiohttp", "nginx", "naive")
READY_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 10.0
RSS_SAMPLE_INTERVAL_S: Final = 0.02
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_PAGE_FIELDS: Final = ("VmRSS", "VmHWM")
REWRITTEN_STATUS: Final = 202  # the bench upstreams answer 202 only on the cross-region route


# --- CPU arrangement ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPUs the servers and the load generator may use (None: no pinning)."""

    server_cpus: frozenset[int] | None
    load_cpus: frozenset[int] | None
    description: str


def plan_cpus(available: Sequence[int]) -> CpuPlan:
    """Servers (upstream + proxy) on the first CPU, load on the rest; no pinning on 1 CPU."""
    cpus = sorted(available)
    if len(cpus) < 2:
        return CpuPlan(None, None, f"{len(cpus)} CPU: no pinning, everything shares it")
    server, load = frozenset(cpus[:1]), frozenset(cpus[1:])
    return CpuPlan(
        server,
        load,
        f"upstream and proxy under test share CPU {cpus[0]}; "
        f"load generator (and the harness) on CPU {','.join(map(str, sorted(load)))}",
    )


# --- /proc readings -------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants, read from /proc/<pid>/task/*/children."""
    seen: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
    return seen


def cpu_seconds(pids: Sequence[int]) -> float:
    """User+system CPU seconds consumed so far by ``pids`` (vanished pids count 0)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / _CLK_TCK


def memory_bytes(pids: Sequence[int], name: str) -> int:
    """Sum of one /proc/<pid>/status memory field (VmRSS or VmHWM) over ``pids``."""
    assert name in _PAGE_FIELDS
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(name + ":"):
                    total += int(line.split()[1]) * 1024
    return total


# --- child processes ------------------------------------------------------------------


def free_port() -> int:
    """An unused loopback TCP port (the usual bind-to-0 trick; a race is unlikely here)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Service:
    """One running server process (and its workers) on a loopback port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The process and its live descendants (nginx workers, adapter workers)."""
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the whole tree."""
        return cpu_seconds(self.pids())

    def rss_bytes(self) -> int:
        """Current resident memory of the tree."""
        return memory_bytes(self.pids(), "VmRSS")

    def peak_rss_bytes(self) -> int:
        """Peak resident memory (VmHWM) of the tree's live processes."""
        return memory_bytes(self.pids(), "VmHWM")

    def log_tail(self, limit: int = 3000) -> str:
        """The end of the service's combined stdout/stderr log."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL if it is still running."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


def _pinning(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def http_get_status(url: str, path: str, timeout_s: float = 2.0) -> int:
    """Status of one GET on loopback (raises OSError when nothing answers)."""
    host_port = url.removeprefix("http://")
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One request's status and the adapter's decision header, if any."""

    status: int
    decision: str | None


def probe(url: str, scenario: Scenario) -> ProbeResult:
    """Send one request of ``scenario`` and return what came back."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            scenario.method,
            scenario.path,
            body=scenario.body or None,
            headers=dict(scenario.headers),
        )
        response = conn.getresponse()
        response.read()
        return ProbeResult(response.status, response.getheader("X-Adapter-Decision"))
    finally:
        conn.close()


class Processes(contextlib.AbstractContextManager["Processes"]):
    """Starts services, pinned to the server CPUs, and stops them all on exit."""

    def __init__(self, workdir: Path, plan: CpuPlan) -> None:
        self._workdir = workdir
        self._plan = plan
        self._services: list[Service] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/bench/ready",
    ) -> Service:
        """Start ``argv`` and wait until an HTTP GET on ``port`` answers below 500."""
        log_path = self._workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=REPO_ROOT,
                preexec_fn=_pinning(self._plan.server_cpus),  # runs before exec: no threads yet
            )
        service = Service(name, port, process, log_path)
        self._services.append(service)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode} during start-up:\n"
                    + service.log_tail()
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get_status(service.url, ready_path) < 500:
                    return service
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {READY_TIMEOUT_S}s:\n{service.log_tail()}")
            time.sleep(0.05)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for service in reversed(self._services):
            service.stop()


# --- the bench plan -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a bench run is parameterised by (see ``python -m bench --help``)."""

    duration_s: float = 10.0
    rounds: int = 3
    warmup_s: float = 1.0
    concurrencies: tuple[int, ...] = (1, 16, 64)
    load: str = "auto"  # auto | wrk | python
    upstream: str = "auto"  # auto | nginx | aiohttp
    stream_bytes: int = 200 * 1024 * 1024
    adapter_log_level: str = "warning"
    adapter_env: tuple[tuple[str, str], ...] = ()
    adapter_command: tuple[str, ...] = ()  # default: this Python, ``-m adapter serve``
    targets: tuple[str, ...] = TARGETS
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    progress: Callable[[str], None] = field(default=lambda _line: None)


def passthrough_get() -> Scenario:
    """A small GET, answered by the upstream with a short JSON body."""
    return Scenario("GET", "GET", "/api/v1/bench/get")


def passthrough_post_2kb() -> Scenario:
    """A 2 KB JSON POST to a path the adapter never rewrites."""
    head, tail = b'{"pad":"', b'"}'
    body = head + b"x" * (2048 - len(head) - len(tail)) + tail
    return Scenario(
        "POST 2 KB",
        "POST",
        "/api/v1/bench/post",
        body,
        (("Content-Type", "application/json"),),
    )


def rewrite_job() -> Scenario:
    """A portal-signed 3-region job on POST /api/v1/jobs (the rewrite+sign path at 100 %)."""
    vector = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))
    headers = tuple((str(k), str(v)) for k, v in vector["headers"].items())
    return Scenario("rewrite", "POST", str(vector["path"]), vector["body"].encode(), headers)


def _scenarios_for(target: str, scenarios: Sequence[Scenario]) -> list[Scenario]:
    return [s for s in scenarios if s.name != "rewrite" or target == "adapter"]


def adapter_env(upstream_url: str, port: int, admin_port: int, options: Options) -> dict[str, str]:
    """The adapter's environment: loopback ports, rollout at 100 %, a fresh signing key."""
    env = dict(os.environ)
    env.update(
        {
            "ADAPTER_UPSTREAM_URL": upstream_url,
            "ADAPTER_HOST": "127.0.0.1",
            "ADAPTER_PORT": str(port),
            "ADAPTER_ADMIN_PORT": str(admin_port),
            "ADAPTER_LOG_LEVEL": options.adapter_log_level,
            "ADAPTER_LOG_FORMAT": "json",
            "ADAPTER_ROLLOUT_PERCENT": "100",
            "ADAPTER_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
    )
    env.update(dict(options.adapter_env))
    return env


def _one_line(exc: Exception) -> str:
    """The first line of an error plus the last line of the service log it carries."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(exc).__name__
    return f"{lines[0]} … {lines[-1]}"[:300].replace("|", "/")


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass(slots=True)
class Bench:
    """A started set of services plus what is known to be missing."""

    upstream: Service
    upstream_kind: str
    proxies: dict[str, Service]
    missing: list[MissingTarget]

    def target_service(self, target: str) -> Service:
        """The service a target's load goes to ("direct" is the upstream itself)."""
        return self.upstream if target == "direct" else self.proxies[target]


def start_services(procs: Processes, options: Options) -> Bench:
    """Start the upstream and every proxy that can run here; note the ones that cannot."""
    workdir = options.workdir
    nginx_bin = nginx.find_nginx()
    missing: list[MissingTarget] = []
    use_nginx_upstream = options.upstream == "nginx" or (
        options.upstream == "auto" and nginx_bin is not None
    )
    up_port = free_port()
    if use_nginx_upstream:
        if nginx_bin is None:
            raise RuntimeError("--upstream nginx asked for, but nginx is not installed")
        prefix = workdir / "nginx-upstream"
        sink_port = free_port()
        procs.start(
            "upload-sink",
            _python_module("bench.upstream", "--port", str(sink_port), "--blob-bytes", "0"),
            port=sink_port,
        )
        conf = nginx.render_upstream_conf(
            prefix, up_port, nginx.current_user(), sink_port=sink_port
        )
        argv = nginx.prepare(nginx_bin, prefix, conf, blob_bytes=options.stream_bytes)
        upstream = procs.start("upstream-nginx", argv, port=up_port)
        upstream_kind = "nginx (uploads streamed on to a bench/upstream.py sink)"
    else:
        argv = _python_module(
            "bench.upstream", "--port", str(up_port), "--blob-bytes", str(options.stream_bytes)
        )
        upstream = procs.start("upstream-aiohttp", argv, port=up_port)
        upstream_kind = "aiohttp (bench/upstream.py)"

    proxies: dict[str, Service] = {}
    port, admin = free_port(), free_port()
    try:
        proxies["adapter"] = procs.start(
            "adapter",
            options.adapter_command or _python_module("adapter", "serve"),
            port=port,
            env=adapter_env(upstream.url, port, admin, options),
        )
    except RuntimeError as exc:
        missing.append(MissingTarget("adapter", f"did not start: {_one_line(exc)}"))
        options.progress(f"adapter failed to start: {exc}")
    if "adapter-aiohttp" in options.targets:
        port, admin = free_port(), free_port()
        env = adapter_env(upstream.url, port, admin, options)
        env["ADAPTER_LEAN_RELAY"] = "false"
        try:
            proxies["adapter-aiohttp"] = procs.start(
                "adapter-aiohttp",
                options.adapter_command or _python_module("adapter", "serve"),
                port=port,
                env=env,
            )
        except RuntimeError as exc:
            missing.append(MissingTarget("adapter-aiohttp", f"did not start: {_one_line(exc)}"))

    if nginx_bin is None:
        missing.append(MissingTarget("nginx", "nginx not installed (apt-get install nginx)"))
    else:
        port = free_port()
        prefix = workdir / "nginx-proxy"
        conf = nginx.render_proxy_conf(prefix, port, up_port, nginx.current_user())
        proxies["nginx"] = procs.start(
            "nginx-proxy", nginx.prepare(nginx_bin, prefix, conf), port=port
        )

    port = free_port()
    proxies["naive"] = procs.start(
        "naive",
        _python_module("bench.naive_proxy", "--port", str(port), "--upstream", upstream.url),
        port=port,
    )
    return Bench(upstream, upstream_kind, proxies, missing)


def _measure_load(
    url: str,
    scenario: Scenario,
    concurrency: int,
    duration_s: float,
    wrk: str | None,
    workdir: Path,
) -> Measurement:
    if wrk is not None:
        return loadgen.run_wrk(
            wrk, url, scenario, concurrency=concurrency, duration_s=duration_s, workdir=workdir
        )
    return asyncio.run(
        loadgen.run_python_load(url, scenario, concurrency=concurrency, duration_s=duration_s)
    )


def measure_cell(
    bench: Bench,
    target: str,
    scenario: Scenario,
    concurrency: int,
    round_no: int,
    options: Options,
    wrk: str | None,
) -> Sample:
    """Warm up, then one measured run of (target, scenario, concurrency) with CPU and RSS."""
    service = bench.target_service(target)
    workdir = options.workdir / "load"
    if options.warmup_s > 0:
        _measure_load(service.url, scenario, concurrency, options.warmup_s, wrk, workdir)
    proxy = bench.proxies.get(target)
    proxy_cpu0 = proxy.cpu_seconds() if proxy is not None else 0.0
    upstream_cpu0 = bench.upstream.cpu_seconds()
    measurement = _measure_load(
        service.url, scenario, concurrency, options.duration_s, wrk, workdir
    )
    upstream_cpu = bench.upstream.cpu_seconds() - upstream_cpu0
    done = max(measurement.requests, 1)
    return Sample(
        target=target,
        scenario=scenario.name,
        concurrency=concurrency,
        round_no=round_no,
        measurement=measurement,
        proxy_cpu_us_per_request=(
            (proxy.cpu_seconds() - proxy_cpu0) * 1e6 / done if proxy is not None else None
        ),
        upstream_cpu_us_per_request=upstream_cpu * 1e6 / done,
        proxy_peak_rss_bytes=proxy.peak_rss_bytes() if proxy is not None else None,
    )


async def _sample_rss_while(service: Service, work: asyncio.Task[tuple[int, int]]) -> list[int]:
    samples: list[int] = []
    while not work.done():
        samples.append(service.rss_bytes())
        await asyncio.sleep(RSS_SAMPLE_INTERVAL_S)
    return samples


async def _stream_once(
    service: Service, direction: str, total: int, timeout_s: float
) -> StreamResult:
    url = service.url + (BLOB_PATH if direction == "download" else UPLOAD_PATH)
    before = service.rss_bytes()
    started = time.perf_counter()
    if direction == "download":
        work = asyncio.create_task(loadgen.stream_download(url, timeout_s=timeout_s))
    else:
        work = asyncio.create_task(loadgen.stream_upload(url, total, timeout_s=timeout_s))
    samples = await _sample_rss_while(service, work)
    error: str | None = None
    status, moved = 0, 0
    try:
        status, moved = work.result()
    except Exception as exc:  # any failure is reported in the row
        error = f"{type(exc).__name__}: {exc}"[:200]
    if error is None and (status != 200 or moved != total):
        error = f"status {status}, {moved} of {total} bytes"
    return StreamResult(
        target=service.name if service.name != "nginx-proxy" else "nginx",
        direction=direction,
        total_bytes=total,
        seconds=time.perf_counter() - started,
        rss_before_bytes=before,
        rss_peak_bytes=max([before, *samples]),
        error=error,
    )


def measure_streams(bench: Bench, options: Options) -> list[StreamResult]:
    """Download and upload ``stream_bytes`` through each proxy, sampling its RSS."""
    results: list[StreamResult] = []
    timeout_s = max(60.0, options.stream_bytes / (5 * 1024 * 1024))
    for target in PROXIES:
        service = bench.proxies.get(target)
        if service is None:
            continue
        for direction in ("download", "upload"):
            options.progress(f"stream {direction} {options.stream_bytes} B via {target}")
            result = asyncio.run(_stream_once(service, direction, options.stream_bytes, timeout_s))
            results.append(result)
    return results


def tool_version(argv: Sequence[str]) -> str:
    """First line a tool prints about its version (stderr or stdout), or 'unknown'."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stderr or done.stdout).strip().splitlines()
    return text[0] if text else "unknown"


@dataclass(slots=True)
class Outcome:
    """Everything the report needs."""

    info: RunInfo
    samples: list[Sample]
    missing: list[MissingTarget]
    streams: list[StreamResult]
    probes: dict[tuple[str, str], ProbeResult]


def _round_robin(items: Sequence[str], shift: int) -> list[str]:
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def run(options: Options) -> Outcome:
    """Start everything, run the interleaved rounds and the streaming rows, stop everything."""
    plan = plan_cpus(sorted(os.sched_getaffinity(0)))
    if plan.load_cpus is not None:
        os.sched_setaffinity(0, plan.load_cpus)
    wrk = loadgen.find_wrk() if options.load in ("auto", "wrk") else None
    if options.load == "wrk" and wrk is None:
        raise RuntimeError("--load wrk asked for, but wrk is not installed")
    options.workdir.mkdir(parents=True, exist_ok=True)
    scenarios = [passthrough_get(), passthrough_post_2kb(), rewrite_job()]
    samples: list[Sample] = []
    probes: dict[tuple[str, str], ProbeResult] = {}
    load_before = os.getloadavg()[0]
    with Processes(options.workdir, plan) as procs:
        bench = start_services(procs, options)
        targets = [
            t for t in TARGETS if t in options.targets and (t == "direct" or t in bench.proxies)
        ]
        for target in targets:
            for scenario in _scenarios_for(target, scenarios):
                probes[(target, scenario.name)] = probe(bench.target_service(target).url, scenario)
        cells = [(s, c) for s in scenarios for c in options.concurrencies]
        total = sum(len(_scenarios_for(t, scenarios)) for t in targets)
        total *= len(options.concurrencies) * options.rounds
        done = 0
        for round_no in range(options.rounds):
            for scenario, concurrency in cells:
                for target in _round_robin(targets, round_no):
                    if scenario not in _scenarios_for(target, scenarios):
                        continue
                    done += 1
                    options.progress(
                        f"[{done}/{total}] round {round_no + 1} {target} "
                        f"{scenario.name} c={concurrency}"
                    )
                    samples.append(
                        measure_cell(bench, target, scenario, concurrency, round_no, options, wrk)
                    )
        streams = measure_streams(bench, options)
        info = RunInfo(
            date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            cpu_count=os.cpu_count() or 0,
            arrangement=plan.description,
            load_tool=(
                f"wrk, 1 thread ({tool_version([wrk, '-v'])})"
                if wrk is not None
                else "bench/loadgen.py (Python aiohttp client; wrk not installed)"
            ),
            upstream=bench.upstream_kind,
            duration_s=options.duration_s,
            rounds=options.rounds,
            warmup_s=options.warmup_s,
            concurrencies=options.concurrencies,
            stream_bytes=options.stream_bytes,
            versions=(
                f"Python {sys.version.split()[0]}",
                tool_version([nginx.find_nginx() or "nginx", "-v"]),
            ),
            load_average=f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end",
            adapter_settings=(
                f"ADAPTER_LOG_LEVEL={options.adapter_log_level}, ADAPTER_ROLLOUT_PERCENT=100"
                + "".join(f", {k}={v}" for k, v in options.adapter_env)
            ),
        )
    return Outcome(info, samples, bench.missing, streams, probes)


def iter_probe_notes(probes: Mapping[tuple[str, str], ProbeResult]) -> Iterator[str]:
    """One line per probe, for the report's sanity section."""
    for (target, scenario), result in sorted(probes.items()):
        decision = f", X-Adapter-Decision: {result.decision}" if result.decision else ""
        warning = ""
        if scenario == "rewrite" and result.status != REWRITTEN_STATUS:
            warning = " (NOT rewritten: the rewrite rows measure something else)"
        yield f"{target} / {scenario}: HTTP {result.status}{decision}{warning}"

"""Measure and profile the adapter's pass-through path alone, quickly and repeatably.

``measure``: nginx (or bench/upstream.py) as the upstream and ``python -m adapter serve``
as a child process share CPU 0; wrk runs on CPU 1. For GET and POST 2 KB at the given
concurrencies it prints the adapter's CPU µs per request (utime+stime delta of the
adapter's process tree over the run, divided by completed requests) and the p50 it adds
over going direct. ``profile``: the same upstream and load, but the adapter runs in this
process under cProfile, and the top entries by own time are printed.

    python -m bench.profile_passthrough measure --seconds 5 --rounds 3
    python -m bench.profile_passthrough profile --seconds 8 --concurrency 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from bench import loadgen, nginx
from bench.harness import (
    CpuPlan,
    Processes,
    Service,
    free_port,
    http_get_status,
    passthrough_get,
    passthrough_post_2kb,
    plan_cpus,
    rewrite_job,
)
from bench.loadgen import Measurement, Scenario

WARMUP_S: Final = 1.0


def _adapter_env(upstream_url: str, port: int, admin_port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env.update(
        ADAPTER_UPSTREAM_URL=upstream_url,
        ADAPTER_HOST="127.0.0.1",
        ADAPTER_PORT=str(port),
        ADAPTER_ADMIN_PORT=str(admin_port),
        ADAPTER_LOG_LEVEL="warning",
        ADAPTER_LOG_FORMAT="json",
        ADAPTER_ROLLOUT_PERCENT="100",
        ADAPTER_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        ADAPTER_WORKERS=str(workers),
    )
    return env


def _start_upstream(procs: Processes, workdir: Path) -> Service:
    binary = nginx.find_nginx()
    port = free_port()
    if binary is None:
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--blob-bytes", "0"]
        return procs.start("upstream", argv, port=port)
    sink = free_port()
    procs.start(
        "sink",
        [sys.executable, "-m", "bench.upstream", "--port", str(sink), "--blob-bytes", "0"],
        port=sink,
    )
    conf = nginx.render_upstream_conf(workdir / "ng", port, nginx.current_user(), sink_port=sink)
    return procs.start("upstream", nginx.prepare(binary, workdir / "ng", conf), port=port)


@contextlib.contextmanager
def _pinned_load(plan: CpuPlan) -> Iterator[None]:
    """Pin this process (and the wrk children it starts) to the load CPUs for a while."""
    before = os.sched_getaffinity(0)
    if plan.load_cpus is not None:
        os.sched_setaffinity(0, plan.load_cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _wrk(
    url: str, scenario: Scenario, concurrency: int, seconds: float, workdir: Path
) -> Measurement:
    wrk = loadgen.find_wrk()
    if wrk is None:
        raise SystemExit("wrk is not installed")
    return loadgen.run_wrk(
        wrk, url, scenario, concurrency=concurrency, duration_s=seconds, workdir=workdir
    )


def _adapter_argv(source: str | None) -> list[str]:
    """``python -m adapter serve``, or the same with ``source`` (a tree holding an
    ``adapter/`` package, e.g. ``git archive`` of an older commit) first on sys.path."""
    if source is None:
        return [sys.executable, "-m", "adapter", "serve"]
    code = (
        f"import sys; sys.path.insert(0, {source!r}); from adapter.cli import main; main(['serve'])"
    )
    return [sys.executable, "-c", code]


def measure(
    seconds: float,
    rounds: int,
    concurrencies: Sequence[int],
    workers: int,
    scenarios: str,
    sources: Sequence[str],
) -> None:
    """Print CPU µs/request and added p50 for GET and POST 2 KB through the adapter.

    With several ``sources`` every variant runs at once (all on the server CPU, idle but
    one) and the rounds alternate between them, so drift in the machine's speed hits
    every variant alike.
    """
    plan = plan_cpus(sorted(os.sched_getaffinity(0)))
    print(f"# {plan.description}; wrk -t1, {rounds} x {seconds:g} s per cell, median shown")
    with tempfile.TemporaryDirectory() as tmp, Processes(Path(tmp), plan) as procs:
        workdir = Path(tmp)
        upstream = _start_upstream(procs, workdir)
        adapters: dict[str, Service] = {}
        for source in sources or ["."]:
            port, admin = free_port(), free_port()
            adapters[source] = procs.start(
                f"adapter-{len(adapters)}",
                _adapter_argv(None if source == "." else source),
                port=port,
                env=_adapter_env(upstream.url, port, admin, workers),
            )
        chosen = [passthrough_get()] if "get" in scenarios else []
        chosen += [passthrough_post_2kb()] if "post" in scenarios else []
        with _pinned_load(plan):
            for scenario in chosen:
                for concurrency in concurrencies:
                    cpu: dict[str, list[float]] = {name: [] for name in adapters}
                    p50: dict[str, list[float]] = {name: [] for name in adapters}
                    direct: list[float] = []
                    for adapter in adapters.values():
                        _wrk(adapter.url, scenario, concurrency, WARMUP_S, workdir)
                    for _ in range(rounds):
                        for name, adapter in adapters.items():
                            before = adapter.cpu_seconds()
                            result = _wrk(adapter.url, scenario, concurrency, seconds, workdir)
                            used = adapter.cpu_seconds() - before
                            if result.errors or not result.requests:
                                print(f"  ! {result.requests} requests, {result.errors} errors")
                            cpu[name].append(used / max(result.requests, 1) * 1e6)
                            p50[name].append(result.p50_us)
                        if concurrency == 1:
                            direct.append(_wrk(upstream.url, scenario, 1, seconds, workdir).p50_us)
                    for name in adapters:
                        line = (
                            f"{name[-12:]:12} {scenario.name:9} c={concurrency:<3} "
                            f"cpu median {statistics.median(cpu[name]):6.1f} µs/req "
                            f"(min {min(cpu[name]):6.1f})  "
                            f"p50 {statistics.median(p50[name]):7.0f} µs"
                        )
                        if direct:
                            added = statistics.median(p50[name]) - statistics.median(direct)
                            line += f"  added p50 {added:5.0f} µs"
                        print(line, flush=True)


def profile(seconds: float, concurrency: int, post: bool, top: int, rewrite: bool = False) -> None:
    """Run the adapter in-process under cProfile while wrk drives it; print the top."""
    from adapter.config import Config
    from adapter.log import configure_logging
    from adapter.server import serve

    plan = plan_cpus(sorted(os.sched_getaffinity(0)))
    scenario = passthrough_post_2kb() if post else passthrough_get()
    if rewrite:
        scenario = rewrite_job()
    with tempfile.TemporaryDirectory() as tmp, Processes(Path(tmp), plan) as procs:
        workdir = Path(tmp)
        upstream = _start_upstream(procs, workdir)
        port, admin = free_port(), free_port()
        config = Config.from_env(_adapter_env(upstream.url, port, admin, 1))
        configure_logging(config.log_level, config.log_format)
        if plan.server_cpus is not None:
            os.sched_setaffinity(0, plan.server_cpus)
        stop = asyncio.Event()
        profiler = cProfile.Profile()
        result: list[Measurement] = []

        def drive(loop: asyncio.AbstractEventLoop) -> None:
            try:
                for _ in range(200):  # bounded wait for the proxy port
                    with contextlib.suppress(OSError):
                        http_get_status(f"http://127.0.0.1:{port}", "/bench/ready")
                        break
                    threading.Event().wait(0.05)
                url = f"http://127.0.0.1:{port}"
                _wrk(url, scenario, concurrency, WARMUP_S, workdir)
                loop.call_soon_threadsafe(profiler.enable)
                result.append(_wrk(url, scenario, concurrency, seconds, workdir))
                loop.call_soon_threadsafe(profiler.disable)
            finally:
                loop.call_soon_threadsafe(stop.set)

        async def main() -> None:
            driver = threading.Thread(target=drive, args=(asyncio.get_running_loop(),))
            driver.start()
            await serve(config, stop=stop)
            driver.join()

        asyncio.run(main())
        requests = result[0].requests if result else 0
        print(f"# {scenario.name} c={concurrency}: {requests} requests in {seconds:g} s")
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
        stats.print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``measure`` or ``profile``."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_passthrough")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--seconds", type=float, default=5.0)
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    m.add_argument("--workers", type=int, default=1)
    m.add_argument("--scenarios", choices=("get", "post", "get+post"), default="get+post")
    m.add_argument(
        "--source",
        action="append",
        default=[],
        help="a tree with an adapter/ package to measure instead of this one ('.'); "
        "repeat to compare variants in alternating rounds",
    )
    p = sub.add_parser("profile")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--post", action="store_true")
    p.add_argument("--rewrite", action="store_true", help="the portal job rewritten at 100 %%")
    p.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    if args.command == "measure":
        measure(
            args.seconds, args.rounds, args.concurrency, args.workers, args.scenarios, args.source
        )
    else:
        profile(args.seconds, args.concurrency, args.post, args.top, args.rewrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

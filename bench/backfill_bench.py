"""Speed and memory of ``beacon-adapter backfill`` on a local PostgreSQL 15.

Run: ``.venv/bin/python -m bench.backfill_bench [--jobs 10000] [--database-url URL]``.
Without ``--database-url`` it starts a throwaway cluster (adapter.devkit.pgcluster) with
the runner's schema. It loads historical standard-workflow jobs (3 regions x 2 models x
5 questions = 30 executions each), then times the real command in child processes, as an
operator runs it, and polls each child's peak RSS (VmHWM) from /proc:

* ``plan`` on a tenth of the jobs, then on all of them: flat memory means the two peaks
  are close (candidates are streamed through a server-side cursor, 200 jobs per fetch, so
  the tenth should hold several fetches: use at least 2,000 jobs);
* ``apply`` on all of them: jobs written per second;
* ``undo --all``.

Targets: plan under 30 s, apply at least 100 jobs/s, memory flat. The report goes
to ``bench/results/backfill.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from adapter.devkit import runner_history
from adapter.devkit.pgcluster import LIVE_TEMPLATE, running_cluster

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backfill.md"
T0 = datetime(2025, 9, 1)


@dataclass(frozen=True, slots=True)
class Run:
    """One child process: what it did, how long, its peak RSS, its exit status."""

    what: str
    seconds: float
    peak_rss_mib: float
    exit_status: int
    stdout_lines: int


class PeakRss:
    """The child's peak RSS (VmHWM), polled from /proc while it runs.

    wait4's ru_maxrss cannot serve: Linux keeps the pre-exec peak, so a child forked from
    this (large) process would report at least this process's size.
    """

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.peak_kib = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.is_set():
            try:
                text = self.path.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            self.done.wait(0.02)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak_kib / 1024


def run_command(url: str, what: str, *argv: str) -> Run:
    """The real CLI in a child process; stdout counted and discarded, stderr kept on error."""
    env = {**os.environ, "ADAPTER_DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapter", "backfill", *argv, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = PeakRss(proc.pid)
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        lines = sum(1 for _ in proc.stdout)
        err = proc.stderr.read()
    peak_mib = peak.stop()  # the last poll ran while the child was alive (stdout was open)
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
    return Run(what, seconds, peak_mib, proc.returncode, lines)


def seed(url: str, start: int, count: int) -> float:
    """Insert ``count`` historical jobs; returns seconds."""
    started = time.perf_counter()
    jobs = (
        runner_history.standard_job(f"bias-detection-hist-{i:06d}", T0 + timedelta(minutes=i))
        for i in range(start, start + count)
    )
    with psycopg.connect(url) as conn:
        runner_history.insert(conn, jobs)
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def bench(url: str, jobs: int) -> tuple[list[Run], dict[str, float]]:
    small = max(jobs // 10, 1)
    figures: dict[str, float] = {"seed_small_s": seed(url, 0, small)}
    runs = [run_command(url, f"plan --json ({small} jobs)", "plan", "--json")]
    figures["seed_rest_s"] = seed(url, small, jobs - small)
    runs.append(run_command(url, f"plan --json ({jobs} jobs)", "plan", "--json"))
    runs.append(run_command(url, f"apply --json ({jobs} jobs)", "apply", "--json"))
    runs.append(run_command(url, f"apply again ({jobs} jobs, all skipped)", "apply", "--json"))
    runs.append(run_command(url, "undo --all", "undo", "--all"))
    return runs, figures


def report(runs: list[Run], figures: dict[str, float], jobs: int) -> str:
    plan_small, plan_all, apply_all, again, undo = runs
    rate = jobs / apply_all.seconds if apply_all.seconds else 0.0
    ok = all(run.exit_status == 0 for run in runs)
    growth = plan_all.peak_rss_mib - plan_small.peak_rss_mib
    lines = [
        "# Backfill bench",
        "",
        f"Run {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {platform.node()}"
        f" ({os.cpu_count()} CPUs, shared), Python {platform.python_version()},"
        " local PostgreSQL 15 (throwaway cluster, fsync off, TCP loopback).",
        f"Data: {jobs} historical standard-workflow jobs, 3 regions x 2 models x 5 questions"
        f" ({jobs * 30} executions rows), loaded in"
        f" {figures['seed_small_s'] + figures['seed_rest_s']:.1f} s.",
        "Command: `python -m bench.backfill_bench` (the real CLI in child processes; peak RSS"
        " = VmHWM polled every 20 ms).",
        "",
        "| run | seconds | peak RSS (MiB) | exit | stdout lines |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r.what} | {r.seconds:.2f} | {r.peak_rss_mib:.1f} | {r.exit_status} |"
            f" {r.stdout_lines} |"
            for r in runs
        ),
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| plan < 30 s ({jobs} jobs) | {plan_all.seconds:.1f} s |"
        f" {'yes' if plan_all.seconds < 30 else 'NO'} |",
        f"| apply >= 100 jobs/s | {rate:.0f} jobs/s |{' yes' if rate >= 100 else ' NO'} |",
        f"| memory flat | plan peak RSS {plan_small.peak_rss_mib:.1f} MiB at {jobs // 10}"
        f" jobs, {plan_all.peak_rss_mib:.1f} MiB at {jobs} ({growth:+.1f} MiB for 10x"
        f" the jobs); apply {apply_all.peak_rss_mib:.1f} MiB |"
        f" {'yes' if growth < max(15.0, 0.15 * plan_small.peak_rss_mib) else 'NO'} |",
        "",
        f"All runs exited 0: {'yes' if ok else 'NO'}. The rerun wrote nothing"
        f" ({again.stdout_lines} jobs listed as skipped); undo removed every backfilled row"
        f" in {undo.seconds:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--database-url", help="an empty database with the runner's schema")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.database_url:
        runs, figures = bench(args.database_url, args.jobs)
    else:
        with running_cluster() as cluster:
            runs, figures = bench(cluster.create_database(LIVE_TEMPLATE), args.jobs)
    text = report(runs, figures, args.jobs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(run.exit_status == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``beacon-adapter backfill plan|apply|undo``: bias analyses for historical multi-region jobs.

Jobs submitted through ``POST /api/v1/jobs`` before the adapter rewrote them have no
cross-region rows, so their results page answers 404 forever. ``plan`` (the default,
read-only) lists which jobs the backfill can fix and what it would write; ``apply`` writes
the rows the runner's cross-region workflow would have written, one transaction per job;
``undo`` deletes exactly those rows (docs/runner-contract.md §B7.2). See docs/runbook.md.

Exit status: 0 all went well; 1 some jobs failed or the database could not be used;
2 the schema lacks something the backfill needs, or the command line is wrong.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO, cast

import orjson
from prometheus_client import CollectorRegistry, write_to_textfile

from adapter.backfill import (
    OUTCOME_CANDIDATE,
    JobReport,
    RunnerDatabase,
    RunSummary,
    SchemaBlocked,
    apply_jobs,
    ensure_schema,
    open_database,
    plan_jobs,
)
from adapter.jobs.backfill import WritePlan
from adapter.log import configure_logging
from adapter.metrics import backfill_jobs_counter
from adapter.runnerdb import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    DatabaseError,
    Selection,
    Timeouts,
)

ENV_DATABASE_URL: Final = "ADAPTER_DATABASE_URL"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BLOCKED: Final = 2
PROG: Final = "beacon-adapter backfill"


def _parse_since(raw: str) -> datetime:
    """A date or ISO date-time; naive values are UTC, as jobs.created_at holds UTC."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2025-09-01 or 2025-09-01T12:00:00, got {raw!r}"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {raw!r}")
    return value


class Progress:
    """A one-line progress bar with rate and ETA on a terminal (plain stdlib)."""

    WIDTH: Final = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.started = time.monotonic()
        self.last_draw = 0.0

    def update(self, _report: JobReport, summary: RunSummary) -> None:
        now = time.monotonic()
        if now - self.last_draw < 0.1 and summary.considered < self.total:
            return
        self.last_draw = now
        done = min(summary.considered, self.total)
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(self.WIDTH * done / self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {done}/{self.total} {100 * done / self.total:5.1f}%"
            f"  {rate:7.1f} jobs/s  ETA {eta:6.0f}s  written {summary.written}"
            f"  failed {len(summary.failed)} "
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _writes(plan: WritePlan) -> str:
    """The execution row, the region rows and the analysis figures, on one line."""
    execution, analysis = plan.execution, plan.analysis
    regions = " ".join(
        f"{r.region}:{'ok' if r.status == 'success' else r.status}" for r in plan.regions
    )
    risk = analysis.summary.split("\n", 1)[0].strip("*").removeprefix("Risk Level: ")
    return (
        f"{execution.status}; {regions}; bias {analysis.bias_variance}"
        f" censorship {analysis.censorship_rate} consistency {analysis.factual_consistency}"
        f" divergence {analysis.narrative_divergence}; {len(analysis.key_differences)}"
        f" difference(s); {risk}"
    )


def _table_row(report: JobReport) -> str:
    created = "" if report.created_at is None else report.created_at.strftime("%Y-%m-%d %H:%M")
    if report.plan is not None:
        execution = report.plan.execution
        verdict = "candidate" if report.outcome == OUTCOME_CANDIDATE else report.outcome
        regions = f"{execution.success_count}/{execution.total_regions}"
        what = _writes(report.plan)
    else:
        verdict = report.reason or report.outcome
        regions = ""
        what = report.detail
    return (
        f"{report.jobspec_id[:40]:<40} {created:<16} {report.status or '':<10}"
        f" {verdict:<28} {regions:<7} {what}"
    )


def _header() -> str:
    return (
        f"{'JOB':<40} {'CREATED (UTC)':<16} {'STATUS':<10} {'VERDICT':<28} {'REGIONS':<7}"
        " WRITES / REASON"
    )


def _print_summary(summary: RunSummary, stream: TextIO, *, verb: str) -> None:
    parts = [f"{summary.considered} multi-region job(s) considered"]
    if verb == "plan":
        parts.append(f"{summary.candidates} candidate(s)")
    else:
        parts.append(f"{summary.written} written")
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(summary.skipped.items()))
    parts.append(f"skipped: {skipped or 'none'}")
    parts.append(f"{len(summary.failed)} failed")
    print("; ".join(parts) + f" ({summary.seconds:.1f}s)", file=stream)
    for job, error in summary.failed:
        print(f"  failed {job}: {error}", file=stream)


def _emit(report: JobReport, args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        out.write(orjson.dumps(report.to_json()).decode() + "\n")
    else:
        print(_table_row(report), file=out)


def _write_metrics(path: str | None, summary: RunSummary, action: str) -> None:
    """The run's counts as a Prometheus textfile (node_exporter's textfile collector)."""
    if path is None:
        return
    registry = CollectorRegistry()
    counter = backfill_jobs_counter(registry)
    counter.labels(action, "written", "").inc(summary.written)
    counter.labels(action, "candidate", "").inc(summary.candidates)
    for reason, count in summary.skipped.items():
        counter.labels(action, "skipped", reason).inc(count)
    for _job, _error in summary.failed:
        counter.labels(action, "failed", "").inc()
    write_to_textfile(path, registry)


def _run(args: argparse.Namespace, db: RunnerDatabase) -> int:
    out = sys.stdout
    ensure_schema(db)
    selection = Selection(jobs=tuple(args.job or ()), since=args.since)
    if args.action == "undo":
        deleted = db.undo(list(args.job) if args.job else None)
        for job in deleted:
            if args.json:
                out.write(orjson.dumps({"job_id": job, "outcome": "deleted"}).decode() + "\n")
            else:
                print(f"deleted {job}", file=out)
        print(f"undo: {len(deleted)} job(s) had backfilled rows, now deleted", file=sys.stderr)
        return EXIT_OK
    if not args.json:
        print(_header(), file=out)
    summary = RunSummary()
    started = time.monotonic()
    if args.action == "plan":
        for report in plan_jobs(db, selection, limit=args.limit):
            summary.record(report)
            _emit(report, args, out)
    else:
        progress = Progress(db.count(selection), sys.stderr) if sys.stderr.isatty() else None

        def on_job(report: JobReport, running: RunSummary) -> None:
            if report.outcome != "skipped" or args.json:
                _emit(report, args, out)
            if progress is not None:
                progress.update(report, running)

        summary = apply_jobs(db, selection, limit=args.limit, on_job=on_job)
        if progress is not None:
            progress.finish()
    summary.seconds = time.monotonic() - started
    _print_summary(summary, sys.stderr if args.json else out, verb=args.action)
    _write_metrics(args.metrics_file, summary, args.action)
    return EXIT_FAILED if summary.failed else EXIT_OK


class _StderrBytes(io.RawIOBase):
    """Log lines go to whatever ``sys.stderr`` is at write time (tests swap it per test)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        sys.stderr.flush()
        written: int = sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
        return written


def _backfill(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, "json", binary_stream=cast(BinaryIO, _StderrBytes()))
    url = args.database_url or os.environ.get(ENV_DATABASE_URL, "").strip()
    if not url:
        print(f"{PROG}: set --database-url or {ENV_DATABASE_URL}", file=sys.stderr)
        return EXIT_BLOCKED
    if args.action == "undo" and not args.job and not args.all:
        print(f"{PROG} undo: name the jobs (--job ID, repeatable) or pass --all", file=sys.stderr)
        return EXIT_BLOCKED
    timeouts = Timeouts(connect=args.connect_timeout, statement=args.statement_timeout)
    try:
        db = open_database(url, timeouts, read_only=args.action == "plan")
    except DatabaseError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _run(args, db)
    except SchemaBlocked as exc:
        print(f"{PROG}: the runner's schema blocks the backfill:", file=sys.stderr)
        for blocker in exc.blockers:
            print(f"  - {blocker.message}", file=sys.stderr)
        print("  Nothing was written. The backfill never alters the schema.", file=sys.stderr)
        return EXIT_BLOCKED
    except DatabaseError as exc:
        print(f"{PROG}: database error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        db.close()


def register(subparsers: Any) -> None:
    """Add the ``backfill`` command to the ``beacon-adapter`` CLI."""
    parser = subparsers.add_parser(
        "backfill",
        help="give historical multi-region jobs their bias analysis (plan, apply, undo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action",
        nargs="?",
        default="plan",
        choices=("plan", "apply", "undo"),
        help="plan (default, read-only), apply (writes) or undo (deletes the backfill's rows)",
    )
    parser.add_argument(
        "--database-url",
        help=f"the runner's PostgreSQL URL (default: ${ENV_DATABASE_URL}); never logged",
    )
    parser.add_argument(
        "--job", action="append", metavar="ID", help="only this job id (repeatable)"
    )
    parser.add_argument(
        "--since", type=_parse_since, help="only jobs created at or after (UTC date/time)"
    )
    parser.add_argument(
        "--limit", type=_positive, help="at most this many candidates (plan and apply)"
    )
    parser.add_argument("--all", action="store_true", help="undo: every backfilled job")
    parser.add_argument("--json", action="store_true", help="one JSON object per job per line")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        help=f"seconds (default {DEFAULT_CONNECT_TIMEOUT_S})",
    )
    parser.add_argument(
        "--statement-timeout",
        type=float,
        default=DEFAULT_STATEMENT_TIMEOUT_S,
        help=f"seconds per statement (default {DEFAULT_STATEMENT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--metrics-file",
        type=lambda raw: str(Path(raw)),
        help="write the run's counts as a Prometheus textfile here",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(handler=_backfill)

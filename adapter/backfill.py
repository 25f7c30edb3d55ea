"""The bias-analysis backfill run: read jobs, classify them, write one transaction per job.

The bridge between the pure planner (``adapter.jobs.backfill``) and the runner's database
(``adapter.runnerdb`` for PostgreSQL, the runner's engine; the reference runner's SQLite
file for the demo). The ``backfill`` command and the admin endpoints both call it, so
``POST /admin/jobs/{id}/backfill-analysis`` is exactly ``backfill apply --job ID``.
One bad job never aborts a run: it is reported as failed with its error, and its
transaction leaves no rows (docs/runner-contract.md §B7.2).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Protocol

from adapter.jobs.backfill import (
    UNLISTED,
    Candidate,
    JobHistory,
    NotCandidate,
    Reason,
    WritePlan,
    classify,
)
from adapter.log import get_logger
from adapter.runnerdb import (
    Blocker,
    DatabaseError,
    PostgresRunnerDatabase,
    Selection,
    Timeouts,
    WriteOutcome,
)

_log = get_logger("adapter.backfill")

SQLITE_PREFIX: Final = "sqlite:///"
OUTCOME_WRITTEN: Final = "written"
OUTCOME_SKIPPED: Final = "skipped"
OUTCOME_FAILED: Final = "failed"
OUTCOME_CANDIDATE: Final = "candidate"


class SchemaBlocked(Exception):
    """The schema lacks what the backfill needs; the message names every blocker."""

    def __init__(self, blockers: Sequence[Blocker]) -> None:
        self.blockers = tuple(blockers)
        super().__init__("; ".join(b.message for b in blockers))


class RunnerDatabase(Protocol):
    """What the run needs from a runner database (PostgreSQL, or the demo's SQLite file)."""

    def probe(self) -> tuple[Blocker, ...]: ...

    def count(self, selection: Selection) -> int: ...

    def histories(self, selection: Selection, *, multi_region_only: bool) -> Iterator[JobHistory]:
        """Selected jobs, oldest first, streamed."""
        ...

    def write(self, plan: WritePlan) -> WriteOutcome: ...

    def undo(self, jobs: Sequence[str] | None) -> list[str]: ...

    def close(self) -> None: ...


# Openers for database URLs other than PostgreSQL's, by URL prefix. Production registers
# none; the devkit registers ``sqlite:///PATH`` (the reference runner's file, for the demo and
# development) when it is imported, so this module never imports the devkit.
_OTHER_OPENERS: dict[str, Callable[[str, bool], RunnerDatabase]] = {}


def register_database_opener(prefix: str, opener: Callable[[str, bool], RunnerDatabase]) -> None:
    """Let ``open_database`` open ``prefix…`` URLs with ``opener(rest_of_url, read_only)``."""
    _OTHER_OPENERS[prefix] = opener


def open_database(url: str, timeouts: Timeouts, *, read_only: bool = False) -> RunnerDatabase:
    """PostgreSQL for ``postgres(ql)://`` URLs; ``sqlite:///PATH`` is the reference runner's
    file (demo and development only, through the devkit). Raises DatabaseError when it
    cannot connect."""
    for prefix, opener in _OTHER_OPENERS.items():
        if url.startswith(prefix):
            return opener(url.removeprefix(prefix), read_only)
    if url.startswith(SQLITE_PREFIX):
        raise DatabaseError(
            "sqlite:/// names the reference runner's file, which needs the devkit "
            "(not in this build); production uses a postgresql:// URL"
        )
    return PostgresRunnerDatabase(url, timeouts, read_only=read_only)


def ensure_schema(db: RunnerDatabase) -> None:
    """Raise SchemaBlocked when the probe finds anything missing; never alters the schema."""
    blockers = db.probe()
    if blockers:
        raise SchemaBlocked(blockers)


@dataclass(frozen=True, slots=True)
class JobReport:
    """One job's line in a run: what it is, or what happened to it."""

    jobspec_id: str
    outcome: str
    reason: str = ""
    detail: str = ""
    plan: WritePlan | None = None
    status: str | None = None
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_id": self.jobspec_id,
            "outcome": self.outcome,
            "job_status": self.status,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.detail:
            out["detail"] = self.detail
        key = {OUTCOME_CANDIDATE: "would_write", OUTCOME_WRITTEN: "wrote"}.get(self.outcome)
        if self.plan is not None and key is not None:
            out[key] = self.plan.describe()
        return out


@dataclass
class RunSummary:
    """Counts of a run: written, skipped by reason, failed (each with its error)."""

    considered: int = 0
    written: int = 0
    candidates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, report: JobReport) -> None:
        self.considered += 1
        if report.outcome == OUTCOME_WRITTEN:
            self.written += 1
        elif report.outcome == OUTCOME_CANDIDATE:
            self.candidates += 1
        elif report.outcome == OUTCOME_FAILED:
            self.failed.append((report.jobspec_id, report.detail))
        else:
            self.skipped[report.reason] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "candidates": self.candidates,
            "written": self.written,
            "skipped": dict(sorted(self.skipped.items())),
            "failed": [{"job_id": job, "error": error} for job, error in self.failed],
            "seconds": round(self.seconds, 3),
        }


def _classify(history: JobHistory) -> JobReport:
    base = JobReport(history.jobspec_id, "", status=history.status, created_at=history.created_at)
    try:
        verdict = classify(history)
    except Exception as exc:  # odd data in one job must not stop the run
        detail = f"{type(exc).__name__}: {exc}"
        return replace(base, outcome=OUTCOME_FAILED, reason="analysis_error", detail=detail)
    if isinstance(verdict, Candidate):
        return replace(base, outcome=OUTCOME_CANDIDATE, plan=verdict.plan)
    reason = verdict.reason.value
    return replace(base, outcome=OUTCOME_SKIPPED, reason=reason, detail=verdict.detail)


def plan_jobs(
    db: RunnerDatabase, selection: Selection, *, limit: int | None = None
) -> Iterator[JobReport]:
    """Read-only: every multi-region job with its verdict (candidates with what they'd get).

    ``limit`` bounds the number of candidates listed; non-candidates are always listed.
    """
    candidates = 0
    for report in map(_classify, db.histories(selection, multi_region_only=True)):
        if report.reason == Reason.SINGLE_REGION.value:
            continue
        if report.outcome == OUTCOME_CANDIDATE:
            if limit is not None and candidates >= limit:
                return
            candidates += 1
        yield report


def apply_one(db: RunnerDatabase, report: JobReport) -> JobReport:
    """Write one candidate's rows in its own transaction; failures are reported, not raised."""
    assert report.plan is not None
    try:
        outcome = db.write(report.plan)
    except DatabaseError as exc:
        failed = replace(report, outcome=OUTCOME_FAILED, reason="write_error", plan=None)
        return replace(failed, detail=str(exc))
    if outcome.written:
        return replace(report, outcome=OUTCOME_WRITTEN)
    return replace(report, outcome=OUTCOME_SKIPPED, reason=outcome.reason, plan=None)


ProgressHook = Callable[[JobReport, RunSummary], None]


def apply_jobs(
    db: RunnerDatabase,
    selection: Selection,
    *,
    limit: int | None = None,
    on_job: ProgressHook | None = None,
) -> RunSummary:
    """Write every candidate (at most ``limit``), one transaction each; return the summary."""
    summary = RunSummary()
    started = time.monotonic()
    for report in plan_jobs(db, selection, limit=limit):
        final = apply_one(db, report) if report.outcome == OUTCOME_CANDIDATE else report
        summary.record(final)
        log_job(final)
        if on_job is not None:
            on_job(final, summary)
    summary.seconds = time.monotonic() - started
    _log.info("backfill_run_finished", **summary.to_json())
    return summary


def log_job(report: JobReport) -> None:
    """One log line per job: failures at warning, the rest at debug (stdout lists them)."""
    if report.outcome == OUTCOME_FAILED:
        _log.warning("backfill_job_failed", job_id=report.jobspec_id, error=report.detail)
    elif report.outcome == OUTCOME_WRITTEN:
        _log.debug("backfill_job_written", job_id=report.jobspec_id)
    else:
        _log.debug("backfill_job_skipped", job_id=report.jobspec_id, reason=report.reason)


def find_job(db: RunnerDatabase, job_id: str) -> JobHistory | None:
    """One job by id (any number of regions), or None."""
    for history in db.histories(Selection(jobs=(job_id,)), multi_region_only=False):
        return history
    return None


def job_status(db: RunnerDatabase, job_id: str) -> dict[str, Any]:
    """``can-analyze``: cross-region row and analysis present, candidate or why not."""
    history = find_job(db, job_id)
    if history is None:
        return {
            "job_id": job_id,
            "found": False,
            "candidate": False,
            "reason": Reason.NOT_FOUND.value,
        }
    report = _classify(history)
    out: dict[str, Any] = {
        "job_id": job_id,
        "found": True,
        "job_status": history.status,
        "cross_region_execution": history.newest_cross_region_id is not None,
        "cross_region_execution_id": (
            None if history.newest_cross_region_id is None else str(history.newest_cross_region_id)
        ),
        "analysis": history.newest_has_analysis,
        "candidate": report.outcome == OUTCOME_CANDIDATE,
    }
    if report.outcome != OUTCOME_CANDIDATE:
        out["reason"] = report.reason
        if report.detail:
            out["detail"] = report.detail
    elif report.plan is not None:
        out["would_write"] = report.plan.describe()
    return out


def backfill_job(db: RunnerDatabase, job_id: str, *, dry_run: bool) -> JobReport:
    """``backfill apply --job ID`` for one job (or its plan when ``dry_run``)."""
    history = find_job(db, job_id)
    if history is None:
        return JobReport(job_id, OUTCOME_SKIPPED, reason=Reason.NOT_FOUND.value)
    report = _classify(history)
    if dry_run or report.outcome != OUTCOME_CANDIDATE:
        return report
    final = apply_one(db, report)
    log_job(final)
    return final


__all__ = (
    "OUTCOME_CANDIDATE",
    "OUTCOME_FAILED",
    "OUTCOME_SKIPPED",
    "OUTCOME_WRITTEN",
    "UNLISTED",
    "JobReport",
    "NotCandidate",
    "RunSummary",
    "RunnerDatabase",
    "SchemaBlocked",
    "Timeouts",
    "apply_jobs",
    "apply_one",
    "backfill_job",
    "ensure_schema",
    "find_job",
    "job_status",
    "open_database",
    "plan_jobs",
    "register_database_opener",
)

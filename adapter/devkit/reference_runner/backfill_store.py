"""The backfill's database operations on the reference runner's SQLite file (demo only).

Production is PostgreSQL (``adapter.runnerdb``). The demo must run with only Python and
make, so the reference runner keeps its tables in SQLite (``store.py``), and this module
gives the backfill the same semantics there: the same schema probe (``PRAGMA
table_info``), the same selection and newest-row rule, one transaction per job under a
writer lock (``BEGIN IMMEDIATE`` plays ``pg_advisory_xact_lock``), the same deterministic
ids with ``ON CONFLICT (id) DO NOTHING``, and an undo that deletes only those ids.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from adapter.backfill import SQLITE_PREFIX, register_database_opener
from adapter.devkit.reference_runner.gotime import rfc3339_nano
from adapter.jobs.analysis import ExecutionRow
from adapter.jobs.backfill import JobHistory, WritePlan, execution_id_for
from adapter.runnerdb import (
    REQUIRED_COLUMNS,
    Blocker,
    DatabaseError,
    Selection,
    WriteOutcome,
    missing_columns,
)

BUSY_TIMEOUT_S: Final = 10.0
_NEWEST_SQL: Final = (
    "SELECT c.id, EXISTS (SELECT 1 FROM cross_region_analyses a"
    " WHERE a.cross_region_execution_id = c.id) FROM cross_region_executions c"
    " WHERE c.jobspec_id = ? ORDER BY c.created_at DESC, c.rowid DESC LIMIT 1"
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _dumps(value: object) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _json(text: str | None) -> object:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.encode()  # undecodable: the analysis reads it as no response


def _time(text: str | None) -> datetime | None:
    """RFC 3339 UTC text as an aware datetime (naive text is UTC too)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class SqliteRunnerDatabase:
    """``RunnerDatabase`` (see ``adapter.backfill``) over the reference runner's file."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        target = Path(path)
        if not target.exists():
            raise DatabaseError(f"no SQLite database at {target}")
        uri = f"file:{target}?mode={'ro' if read_only else 'rw'}"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open {target}: {exc}") from None
        self._db.execute("PRAGMA foreign_keys = ON")

    def probe(self) -> tuple[Blocker, ...]:
        present: set[tuple[str, str]] = set()
        for table in REQUIRED_COLUMNS:
            for row in self._db.execute(f"PRAGMA table_info({table})"):
                present.add((table, str(row[1])))
        return missing_columns(present)

    def count(self, selection: Selection) -> int:
        return sum(1 for _ in self._jobs(selection, multi_region_only=True))

    def _jobs(self, selection: Selection, *, multi_region_only: bool) -> Iterator[tuple[Any, ...]]:
        rows = self._db.execute(
            "SELECT id, jobspec_id, status, created_at, jobspec_data FROM jobs"
            " ORDER BY created_at, id"
        )
        for row in rows:
            if selection.jobs and row[1] not in selection.jobs:
                continue
            created = _time(row[3])
            if selection.since is not None and (
                created is None or created.replace(tzinfo=None) < selection.since
            ):
                continue
            if multi_region_only and not _maybe_multi_region(row[4]):
                continue
            yield row

    def histories(self, selection: Selection, *, multi_region_only: bool) -> Iterator[JobHistory]:
        for job_id, jobspec_id, status, created_at, spec in list(
            self._jobs(selection, multi_region_only=multi_region_only)
        ):
            newest = self._db.execute(_NEWEST_SQL, (jobspec_id,)).fetchone()
            executions = self._db.execute(
                "SELECT id, region, provider_id, model_id, question_id, status, started_at,"
                " completed_at, output_data FROM executions WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
            yield JobHistory(
                jobspec_id=str(jobspec_id),
                status=status,
                created_at=_time(created_at),
                spec=spec,
                executions=tuple(
                    ExecutionRow(
                        id=int(e[0]),
                        region=str(e[1]),
                        provider_id=str(e[2]),
                        model_id=e[3],
                        question_id=e[4],
                        status=e[5],
                        started_at=_time(e[6]),
                        completed_at=_time(e[7]),
                        output_data=_json(e[8]),
                    )
                    for e in executions
                ),
                newest_cross_region_id=None if newest is None else _uuid(newest[0]),
                newest_has_analysis=bool(newest and newest[1]),
            )

    def write(self, plan: WritePlan) -> WriteOutcome:
        execution, analysis = plan.execution, plan.analysis
        now = rfc3339_nano(time.time_ns())
        try:
            self._db.execute("BEGIN IMMEDIATE")  # one writer at a time: the per-job lock
            try:
                newest = self._db.execute(_NEWEST_SQL, (plan.jobspec_id,)).fetchone()
                if newest is not None and newest[1]:
                    ours = newest[0] == str(execution_id_for(plan.jobspec_id))
                    self._db.execute("ROLLBACK")
                    return WriteOutcome(False, "already_backfilled" if ours else "already_analysed")
                inserted = self._db.execute(
                    "INSERT INTO cross_region_executions (id, jobspec_id, job_id,"
                    " total_regions, success_count, failure_count, min_regions_required,"
                    " min_success_rate, status, started_at, completed_at, duration_ms,"
                    " created_at, updated_at) VALUES (?, ?, (SELECT id FROM jobs WHERE"
                    " jobspec_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        str(execution.id),
                        plan.jobspec_id,
                        plan.jobspec_id,
                        execution.total_regions,
                        execution.success_count,
                        execution.failure_count,
                        execution.min_regions_required,
                        execution.min_success_rate,
                        execution.status,
                        _iso(execution.started_at),
                        _iso(execution.completed_at),
                        execution.duration_ms,
                        now,
                        now,
                    ),
                ).rowcount
                if inserted == 0:
                    self._db.execute("ROLLBACK")
                    return WriteOutcome(False, "already_backfilled")
                for region in plan.regions:
                    self._db.execute(
                        "INSERT INTO region_results (id, cross_region_execution_id, region,"
                        " provider_id, status, started_at, completed_at, duration_ms,"
                        " execution_output, error_message, metadata, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (id) DO NOTHING",
                        (
                            str(region.id),
                            str(execution.id),
                            region.region,
                            region.provider_id,
                            region.status,
                            _iso(region.started_at),
                            _iso(region.completed_at),
                            region.duration_ms,
                            _dumps(region.execution_output),
                            region.error_message,
                            _dumps(dict(region.metadata)),
                            now,
                            now,
                        ),
                    )
                self._db.execute(
                    "INSERT INTO cross_region_analyses (id, cross_region_execution_id, job_id,"
                    " bias_variance, censorship_rate, factual_consistency,"
                    " narrative_divergence, key_differences, risk_assessment, summary,"
                    " summary_source, recommendation, created_at, updated_at) VALUES (?, ?,"
                    " (SELECT id FROM jobs WHERE jobspec_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?) ON CONFLICT (id) DO NOTHING",
                    (
                        str(analysis.id),
                        str(execution.id),
                        plan.jobspec_id,
                        float(analysis.bias_variance),
                        float(analysis.censorship_rate),
                        float(analysis.factual_consistency),
                        float(analysis.narrative_divergence),
                        _dumps(list(analysis.key_differences)),
                        _dumps(list(analysis.risk_assessment)),
                        analysis.summary,
                        analysis.summary_source,
                        analysis.recommendation,
                        now,
                        now,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None
        return WriteOutcome(True)

    def undo(self, jobs: Sequence[str] | None) -> list[str]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if jobs is None:
                jobs = [
                    str(row[0])
                    for row in self._db.execute(
                        "SELECT DISTINCT jobspec_id FROM cross_region_executions"
                    )
                ]
            deleted: list[str] = []
            for job in jobs:
                ident = str(execution_id_for(job))
                # SQLite has no cascade without the FK pragma on every writer; delete explicitly.
                self._db.execute(
                    "DELETE FROM cross_region_analyses WHERE cross_region_execution_id = ?",
                    (ident,),
                )
                self._db.execute(
                    "DELETE FROM region_results WHERE cross_region_execution_id = ?", (ident,)
                )
                if self._db.execute(
                    "DELETE FROM cross_region_executions WHERE id = ?", (ident,)
                ).rowcount:
                    deleted.append(job)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise DatabaseError(str(exc)) from None
        return deleted

    def close(self) -> None:
        self._db.close()


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _maybe_multi_region(spec_text: str | None) -> bool:
    """The SQL pre-filter of the PostgreSQL store: drop only clear single-region jobs."""
    try:
        spec = json.loads(spec_text or "")
    except ValueError:
        return True
    constraints = spec.get("constraints") if isinstance(spec, dict) else None
    regions = constraints.get("regions") if isinstance(constraints, dict) else None
    return not isinstance(regions, list) or len(regions) >= 2


def _open(path: str, read_only: bool) -> SqliteRunnerDatabase:
    return SqliteRunnerDatabase(path, read_only=read_only)


# Importing this module is what makes ``sqlite:///PATH`` URLs work in adapter.backfill.
register_database_opener(SQLITE_PREFIX, _open)

__all__ = ("SqliteRunnerDatabase",)

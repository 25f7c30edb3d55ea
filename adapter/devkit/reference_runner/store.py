"""SQLite persistence for the reference runner, shaped like the runner's Postgres tables.

Tables and columns follow the runner's migrations (``jobs``, ``executions``,
``cross_region_executions``, ``region_results``, ``cross_region_analyses``,
``idempotency_keys``) so a run can be inspected afterwards with the same SQL. Two extra
columns, ``cross_region_executions.job_id`` and ``cross_region_analyses.job_id`` (both
``jobs.id``), exist only so the investigation queries in BIAS_ANALYSIS_404_FIX_PLAN.md run
unchanged. JSON columns hold JSON text; timestamps are RFC 3339 UTC strings. Queries are
small and local, so they run directly on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from adapter.devkit.reference_runner.execution import Analysis, CrossRegionOutcome, RegionOutcome
from adapter.jobs.jobspec import ZERO_TIME

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    jobspec_id TEXT UNIQUE NOT NULL,
    jobspec_data TEXT NOT NULL,
    status TEXT DEFAULT 'queued',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cross_region_executions (
    id TEXT PRIMARY KEY,
    jobspec_id TEXT NOT NULL,
    job_id INTEGER REFERENCES jobs(id),
    total_regions INTEGER NOT NULL,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    min_regions_required INTEGER NOT NULL DEFAULT 3,
    min_success_rate REAL NOT NULL DEFAULT 0.67,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    completed_at TEXT,
    duration_ms INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER REFERENCES jobs(id),
    provider_id TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT DEFAULT 'pending',
    started_at TEXT,
    completed_at TEXT,
    output_data TEXT,
    receipt_data TEXT,
    created_at TEXT NOT NULL,
    cross_region_execution_id TEXT REFERENCES cross_region_executions(id),
    model_id TEXT DEFAULT 'llama3.2-1b',
    question_id TEXT
);
CREATE TABLE IF NOT EXISTS region_results (
    id TEXT PRIMARY KEY,
    cross_region_execution_id TEXT NOT NULL
        REFERENCES cross_region_executions(id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    provider_id TEXT,
    provider_info TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    duration_ms INTEGER,
    execution_output TEXT,
    error_message TEXT,
    scoring TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    model_id TEXT DEFAULT 'llama3.2-1b'
);
CREATE TABLE IF NOT EXISTS cross_region_analyses (
    id TEXT PRIMARY KEY,
    cross_region_execution_id TEXT NOT NULL
        REFERENCES cross_region_executions(id) ON DELETE CASCADE,
    job_id INTEGER REFERENCES jobs(id),
    bias_variance REAL,
    censorship_rate REAL,
    factual_consistency REAL,
    narrative_divergence REAL,
    key_differences TEXT,
    risk_assessment TEXT,
    summary TEXT,
    recommendation TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    summary_source TEXT
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key TEXT NOT NULL UNIQUE,
    jobspec_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_cross_region_executions_jobspec_id
    ON cross_region_executions(jobspec_id);
CREATE INDEX IF NOT EXISTS idx_region_results_cross_region_execution_id
    ON region_results(cross_region_execution_id);
CREATE INDEX IF NOT EXISTS idx_cross_region_analyses_cross_region_execution_id
    ON cross_region_analyses(cross_region_execution_id);
CREATE INDEX IF NOT EXISTS idx_executions_job_id ON executions(job_id);
"""

_SELECT_CRE: Final = (
    "SELECT id, jobspec_id, total_regions, success_count, failure_count, min_regions_required,"
    " min_success_rate, status, started_at, completed_at, duration_ms, created_at, updated_at"
    " FROM cross_region_executions"
)


class DuplicateJobError(Exception):
    """A plain INSERT hit ``jobs.jobspec_id``'s UNIQUE constraint (Postgres wording kept)."""


@dataclass(frozen=True, slots=True)
class JobRow:
    """A ``jobs`` row with its spec parsed."""

    id: int
    jobspec_id: str
    spec: dict[str, Any]
    status: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class CrossRegionExecutionRow:
    """A ``cross_region_executions`` row."""

    id: str
    jobspec_id: str
    total_regions: int
    success_count: int
    failure_count: int
    min_regions_required: int
    min_success_rate: float
    status: str
    started_at: str
    completed_at: str | None
    duration_ms: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class RegionResultRow:
    """A ``region_results`` row with its JSON columns parsed."""

    id: str
    region: str
    provider_id: str | None
    status: str
    duration_ms: int | None
    error_message: str | None
    scoring: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AnalysisRow:
    """A ``cross_region_analyses`` row as the runner's ``CrossRegionAnalysisRecord``."""

    id: str
    cross_region_execution_id: str
    bias_variance: float | None
    censorship_rate: float | None
    factual_consistency: float | None
    narrative_divergence: float | None
    key_differences: list[dict[str, Any]]
    risk_assessment: list[dict[str, Any]]
    summary: str | None
    recommendation: str | None
    created_at: str
    updated_at: str
    summary_source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the runner marshals it (pointer fields and empty slices omitted)."""
        record: dict[str, Any] = {
            "id": self.id,
            "cross_region_execution_id": self.cross_region_execution_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        optional = {
            "bias_variance": self.bias_variance,
            "censorship_rate": self.censorship_rate,
            "factual_consistency": self.factual_consistency,
            "narrative_divergence": self.narrative_divergence,
            "summary": self.summary,
            "summary_source": self.summary_source,
            "recommendation": self.recommendation,
        }
        record.update({key: value for key, value in optional.items() if value is not None})
        if self.key_differences:
            record["key_differences"] = self.key_differences
        if self.risk_assessment:
            record["risk_assessment"] = self.risk_assessment
        return record


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class ReferenceStore:
    """The runner's tables in one SQLite database (``":memory:"`` or a file path)."""

    def __init__(self, db_path: str | Path = ":memory:") -> None:
        self.db_path = str(db_path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(SCHEMA)
            # Files from before summary_source existed here (the runner's SELECT needs it).
            columns = {
                row[1] for row in self._db.execute("PRAGMA table_info(cross_region_analyses)")
            }
            if "summary_source" not in columns:
                self._db.execute("ALTER TABLE cross_region_analyses ADD COLUMN summary_source TEXT")

    def close(self) -> None:
        """Close the connection; the file (if any) keeps the data for inspection."""
        with self._lock:
            self._db.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run a read-only SQL query and return plain dict rows (for tests and the demo)."""
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, params).fetchall()]

    # -- jobs -------------------------------------------------------------------------

    def insert_job(self, jobspec_id: str, spec: dict[str, Any], status: str, now: str) -> int:
        """Plain INSERT, as the cross-region handler does; a reused id raises DuplicateJobError."""
        try:
            with self._lock:
                cursor = self._db.execute(
                    "INSERT INTO jobs (jobspec_id, jobspec_data, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (jobspec_id, _dumps(spec), status, now, now),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateJobError(
                "failed to insert job: pq: duplicate key value violates unique constraint"
                ' "jobs_jobspec_id_key"'
            ) from exc
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def upsert_job(self, jobspec_id: str, spec: dict[str, Any], status: str, now: str) -> int:
        """INSERT ... ON CONFLICT (jobspec_id) DO UPDATE, as the standard path does."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (jobspec_id, jobspec_data, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (jobspec_id) DO UPDATE SET"
                " jobspec_data = excluded.jobspec_data, status = excluded.status,"
                " updated_at = excluded.updated_at",
                (jobspec_id, _dumps(spec), status, now, now),
            )
            row = self._db.execute(
                "SELECT id FROM jobs WHERE jobspec_id = ?", (jobspec_id,)
            ).fetchone()
        return int(row["id"])

    def update_job_status(self, jobspec_id: str, status: str, now: str) -> None:
        """Set ``jobs.status`` for one job."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, updated_at = ? WHERE jobspec_id = ?",
                (status, now, jobspec_id),
            )

    def get_job(self, jobspec_id: str) -> JobRow | None:
        """The job with this jobspec id, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE jobspec_id = ?", (jobspec_id,)
            ).fetchone()
        return None if row is None else self._job(row)

    def list_jobs(self, limit: int) -> list[JobRow]:
        """The newest jobs first, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._job(row) for row in rows]

    def count_jobs(self, jobspec_id: str | None = None) -> int:
        """How many job rows exist (for one jobspec id, or in total)."""
        with self._lock:
            if jobspec_id is None:
                row = self._db.execute("SELECT COUNT(*) AS n FROM jobs").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) AS n FROM jobs WHERE jobspec_id = ?", (jobspec_id,)
                ).fetchone()
        return int(row["n"])

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        return JobRow(
            id=row["id"],
            jobspec_id=row["jobspec_id"],
            spec=json.loads(row["jobspec_data"]),
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    # -- idempotency ------------------------------------------------------------------

    def job_for_idempotency_key(self, key: str) -> str | None:
        """The jobspec id stored for an Idempotency-Key, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT jobspec_id FROM idempotency_keys WHERE idem_key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row["jobspec_id"])

    def remember_idempotency_key(self, key: str, jobspec_id: str, now: str) -> None:
        """Store key -> jobspec id (first writer wins)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO idempotency_keys (idem_key, jobspec_id, created_at)"
                " VALUES (?, ?, ?)",
                (key, jobspec_id, now),
            )

    # -- cross-region -----------------------------------------------------------------

    def create_cross_region_execution(
        self,
        jobspec_id: str,
        total_regions: int,
        min_regions: int,
        min_success_rate: float,
        now: str,
    ) -> CrossRegionExecutionRow:
        """Insert a ``running`` cross-region execution with a fresh UUID."""
        execution_id = str(uuid.uuid4())
        with self._lock:
            job = self._db.execute(
                "SELECT id FROM jobs WHERE jobspec_id = ?", (jobspec_id,)
            ).fetchone()
            self._db.execute(
                "INSERT INTO cross_region_executions (id, jobspec_id, job_id, total_regions,"
                " min_regions_required, min_success_rate, status, started_at, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    execution_id,
                    jobspec_id,
                    None if job is None else job["id"],
                    total_regions,
                    min_regions,
                    min_success_rate,
                    now,
                    now,
                    now,
                ),
            )
        with self._lock:
            row = self._db.execute(_SELECT_CRE + " WHERE id = ?", (execution_id,)).fetchone()
        return CrossRegionExecutionRow(**dict(row))

    def cross_region_execution_for(self, jobspec_id: str) -> CrossRegionExecutionRow | None:
        """The newest cross-region execution of a job, as the bias-analysis lookup finds it."""
        with self._lock:
            row = self._db.execute(
                _SELECT_CRE + " WHERE jobspec_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (jobspec_id,),
            ).fetchone()
        return None if row is None else CrossRegionExecutionRow(**dict(row))

    def record_outcome(
        self,
        execution: CrossRegionExecutionRow,
        outcome: CrossRegionOutcome,
        *,
        save_analysis: bool,
        now: str,
    ) -> None:
        """Write what an execution produced: status, region results, executions, analysis."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "UPDATE cross_region_executions SET status = ?, success_count = ?,"
                    " failure_count = ?, completed_at = ?, duration_ms = ?, updated_at = ?"
                    " WHERE id = ?",
                    (
                        outcome.status,
                        outcome.success_count,
                        outcome.failure_count,
                        # A refused plan is marked failed with Go's zero time
                        # (docs/runner-contract.md §B4, error path).
                        ZERO_TIME if outcome.error else now,
                        outcome.duration_ms if outcome.regions else None,
                        now,
                        execution.id,
                    ),
                )
                job = self._db.execute(
                    "SELECT id FROM jobs WHERE jobspec_id = ?", (execution.jobspec_id,)
                ).fetchone()
                job_id = None if job is None else int(job["id"])
                for region in outcome.regions:
                    self._insert_region(execution.id, job_id, region, now)
                if save_analysis and outcome.analysis is not None:
                    self._insert_analysis(execution.id, job_id, outcome.analysis, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_standard_executions(
        self, jobspec_id: str, regions: tuple[RegionOutcome, ...], now: str
    ) -> None:
        """Write the executions of a job that went through the standard path."""
        with self._lock:
            job = self._db.execute(
                "SELECT id FROM jobs WHERE jobspec_id = ?", (jobspec_id,)
            ).fetchone()
            for region in regions:
                self._insert_executions(None, int(job["id"]), region, now)

    def _insert_region(
        self, execution_id: str, job_id: int | None, region: RegionOutcome, now: str
    ) -> None:
        self._db.execute(
            "INSERT INTO region_results (id, cross_region_execution_id, region, provider_id,"
            " provider_info, status, started_at, completed_at, duration_ms, execution_output,"
            " error_message, scoring, metadata, created_at, updated_at, model_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                execution_id,
                region.region,
                region.provider_id,
                _dumps({"type": "reference", "region": region.region}),
                region.status,
                now,
                now,
                region.duration_ms,
                _dumps(region.execution_output),
                region.error_message,
                _dumps(region.scoring),
                _dumps(region.metadata),
                now,
                now,
                region.executions[0].model_id if region.executions else None,
            ),
        )
        self._insert_executions(execution_id, job_id, region, now)

    def _insert_executions(
        self, execution_id: str | None, job_id: int | None, region: RegionOutcome, now: str
    ) -> None:
        for run in region.executions:
            self._db.execute(
                "INSERT INTO executions (job_id, provider_id, region, status, started_at,"
                " completed_at, output_data, receipt_data, created_at,"
                " cross_region_execution_id, model_id, question_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    run.provider_id,
                    run.region,
                    run.status,
                    now,
                    now,
                    _dumps(None if run.output is None else run.output["data"]),
                    _dumps(run.receipt),
                    now,
                    execution_id,
                    run.model_id,
                    run.question_id,
                ),
            )

    def _insert_analysis(
        self, execution_id: str, job_id: int | None, analysis: Analysis, now: str
    ) -> None:
        self._db.execute(
            "INSERT INTO cross_region_analyses (id, cross_region_execution_id, job_id,"
            " bias_variance, censorship_rate, factual_consistency, narrative_divergence,"
            " key_differences, risk_assessment, summary, recommendation, created_at,"
            " updated_at, summary_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                execution_id,
                job_id,
                analysis.bias_variance,
                analysis.censorship_rate,
                analysis.factual_consistency,
                analysis.narrative_divergence,
                _dumps(analysis.key_differences),
                _dumps(analysis.risk_assessment),
                analysis.summary,
                analysis.recommendation,
                now,
                now,
                "template",
            ),
        )

    def analysis_for(self, execution_id: str) -> AnalysisRow | None:
        """The newest analysis of a cross-region execution, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, cross_region_execution_id, bias_variance, censorship_rate,"
                " factual_consistency, narrative_divergence, key_differences, risk_assessment,"
                " summary, recommendation, created_at, updated_at, summary_source"
                " FROM cross_region_analyses"
                " WHERE cross_region_execution_id = ? ORDER BY created_at DESC, rowid DESC"
                " LIMIT 1",
                (execution_id,),
            ).fetchone()
        if row is None:
            return None
        values = dict(row)
        values["key_differences"] = _loads(values["key_differences"]) or []
        values["risk_assessment"] = _loads(values["risk_assessment"]) or []
        return AnalysisRow(**values)

    def region_results_for(self, execution_id: str) -> list[RegionResultRow]:
        """The region results of a cross-region execution, in insertion order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, region, provider_id, status, duration_ms, error_message, scoring"
                " FROM region_results WHERE cross_region_execution_id = ?"
                " ORDER BY started_at, rowid",
                (execution_id,),
            ).fetchall()
        return [
            RegionResultRow(
                id=row["id"],
                region=row["region"],
                provider_id=row["provider_id"],
                status=row["status"],
                duration_ms=row["duration_ms"],
                error_message=row["error_message"],
                scoring=_loads(row["scoring"]),
            )
            for row in rows
        ]

    def execution_bias_scores(self, jobspec_id: str) -> dict[str, Any]:
        """Per-region ``receipt.output.data.bias_score`` of a job's executions (last wins)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.region, e.receipt_data FROM executions e JOIN jobs j ON e.job_id = j.id"
                " WHERE j.jobspec_id = ? AND e.receipt_data IS NOT NULL ORDER BY e.id",
                (jobspec_id,),
            ).fetchall()
        scores: dict[str, Any] = {}
        for row in rows:
            receipt = _loads(row["receipt_data"])
            score = receipt.get("output", {}).get("data", {}).get("bias_score")
            if isinstance(score, dict):
                scores[row["region"]] = score
        return scores

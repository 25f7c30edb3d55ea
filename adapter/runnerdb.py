"""The runner's PostgreSQL database, as the bias-analysis backfill reads and writes it.

All backfill SQL lives here (psycopg 3, synchronous; the admin endpoints run it in a
thread). Reads stream through a server-side cursor, so memory stays flat on any history;
each job is written in its own transaction under ``pg_advisory_xact_lock(hashtext(id))``
with ``ON CONFLICT (id) DO NOTHING`` on the backfill's deterministic ids
(docs/runner-contract.md §B7.2). Every connection carries a connect timeout and a
statement timeout, so a database that is down or stuck gives an error, never a hang.
The schema is probed first (``information_schema``) and never altered.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import orjson
import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from adapter.jobs.backfill import (
    ExecutionRow,
    JobHistory,
    WritePlan,
    execution_id_for,
)

DEFAULT_CONNECT_TIMEOUT_S: Final = 10
DEFAULT_STATEMENT_TIMEOUT_S: Final = 60.0
# Rows fetched per round trip from the server-side cursor, and how many jobs may wait
# read-ahead for the analysis.
STREAM_BATCH: Final = 200
PREFETCH_JOBS: Final = 400
UNDO_BATCH: Final = 1000
APPLICATION_NAME: Final = "beacon-adapter-backfill"

# Every table and column the backfill reads or writes, and the ones the runner's
# bias-analysis read needs (§B2, §B6). summary_source is missing from the migrations (§B1.3).
REQUIRED_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "jobs": ("id", "jobspec_id", "jobspec_data", "status", "created_at"),
    "executions": (
        "id",
        "job_id",
        "provider_id",
        "region",
        "status",
        "started_at",
        "completed_at",
        "output_data",
        "model_id",
        "question_id",
    ),
    "cross_region_executions": (
        "id",
        "jobspec_id",
        "total_regions",
        "success_count",
        "failure_count",
        "min_regions_required",
        "min_success_rate",
        "status",
        "started_at",
        "completed_at",
        "duration_ms",
        "created_at",
        "updated_at",
    ),
    "region_results": (
        "id",
        "cross_region_execution_id",
        "region",
        "provider_id",
        "status",
        "started_at",
        "completed_at",
        "duration_ms",
        "execution_output",
        "error_message",
        "scoring",
        "metadata",
        "created_at",
    ),
    "cross_region_analyses": (
        "id",
        "cross_region_execution_id",
        "bias_variance",
        "censorship_rate",
        "factual_consistency",
        "narrative_divergence",
        "key_differences",
        "risk_assessment",
        "summary",
        "summary_source",
        "recommendation",
        "created_at",
        "updated_at",
    ),
}

_T = TypeVar("_T")

_PROBE_SQL: Final = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = ANY (current_schemas(false)) AND table_name = ANY (%s)
"""

# Jobs with their executions and the newest cross-region row (§B6: newest by created_at).
# Jobs whose constraints.regions is an array of fewer than two names are left out in SQL
# (they are not multi-region); anything else, readable or not, reaches the planner.
_HISTORY_SQL: Final = """
SELECT j.jobspec_id, j.status, j.created_at, j.jobspec_data::text,
       c.id,
       EXISTS (SELECT 1 FROM cross_region_analyses a WHERE a.cross_region_execution_id = c.id),
       (SELECT json_agg(json_build_array(e.id, e.region, e.provider_id, e.model_id,
                                         e.question_id, e.status, e.started_at,
                                         e.completed_at, e.output_data) ORDER BY e.id)
          FROM executions e WHERE e.job_id = j.id)
FROM jobs j
LEFT JOIN LATERAL (
    SELECT c.id FROM cross_region_executions c
    WHERE c.jobspec_id = j.jobspec_id ORDER BY c.created_at DESC LIMIT 1
) c ON true
WHERE {selection}
ORDER BY j.created_at, j.id
"""

_SELECTION_SQL: Final = """
(NOT %(multi_region_only)s
 OR CASE WHEN jsonb_typeof(j.jobspec_data -> 'constraints' -> 'regions') = 'array'
         THEN jsonb_array_length(j.jobspec_data -> 'constraints' -> 'regions') >= 2
         ELSE true END)
AND (%(since)s::timestamp IS NULL OR j.created_at >= %(since)s::timestamp)
AND (%(jobs)s::text[] IS NULL OR j.jobspec_id = ANY (%(jobs)s::text[]))
"""

_COUNT_SQL: Final = "SELECT count(*) FROM jobs j WHERE {selection}"

# One job's rows in one statement, after pg_advisory_xact_lock (a separate statement, so
# this one's snapshot sees every commit made before the lock was granted). Nothing is
# written when the job's newest cross-region row already has an analysis (the runner's, or
# ours from an earlier or concurrent run); the region rows and the analysis are written only
# when the execution row was (data-modifying CTEs chained on RETURNING).
_WRITE_SQL: Final = """
WITH newest AS (
    SELECT c.id, EXISTS (SELECT 1 FROM cross_region_analyses a
                         WHERE a.cross_region_execution_id = c.id) AS analysed
    FROM cross_region_executions c WHERE c.jobspec_id = %(job)s
    ORDER BY c.created_at DESC LIMIT 1
), execution AS (
    INSERT INTO cross_region_executions (id, jobspec_id, total_regions, success_count,
        failure_count, min_regions_required, min_success_rate, status, started_at,
        completed_at, duration_ms)
    SELECT %(id)s, %(job)s, %(total_regions)s, %(success_count)s, %(failure_count)s,
           %(min_regions_required)s, %(min_success_rate)s, %(status)s, %(started_at)s,
           %(completed_at)s, %(duration_ms)s
    WHERE NOT EXISTS (SELECT 1 FROM newest WHERE analysed)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), regions AS (
    INSERT INTO region_results (id, cross_region_execution_id, region, provider_id, status,
        started_at, completed_at, duration_ms, execution_output, error_message, metadata)
    SELECT r.id, execution.id, r.region, r.provider_id, r.status, r.started_at,
           r.completed_at, r.duration_ms, NULLIF(r.execution_output, 'null'::jsonb),
           r.error_message, r.metadata
    FROM execution CROSS JOIN jsonb_to_recordset(%(regions)s) AS r(
        id uuid, region text, provider_id text, status text, started_at timestamptz,
        completed_at timestamptz, duration_ms bigint, execution_output jsonb,
        error_message text, metadata jsonb)
    ON CONFLICT (id) DO NOTHING
), analysis AS (
    INSERT INTO cross_region_analyses (id, cross_region_execution_id, bias_variance,
        censorship_rate, factual_consistency, narrative_divergence, key_differences,
        risk_assessment, summary, summary_source, recommendation)
    SELECT %(analysis_id)s, execution.id, %(bias_variance)s, %(censorship_rate)s,
           %(factual_consistency)s, %(narrative_divergence)s, %(key_differences)s,
           %(risk_assessment)s, %(summary)s, %(summary_source)s, %(recommendation)s
    FROM execution
    ON CONFLICT (id) DO NOTHING
)
SELECT (SELECT count(*) FROM execution), (SELECT id FROM newest)
"""

_UNDO_SQL: Final = """
DELETE FROM cross_region_executions WHERE id = ANY (%s::uuid[]) RETURNING jobspec_id
"""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every database call, so a dead database gives an error, never a hang."""

    connect: float = DEFAULT_CONNECT_TIMEOUT_S
    statement: float = DEFAULT_STATEMENT_TIMEOUT_S


class DatabaseError(RuntimeError):
    """The database could not be reached or answered with an error (message is safe to show)."""


@dataclass(frozen=True, slots=True)
class Blocker:
    """A schema difference that stops the backfill, with the SQL an operator runs to check."""

    table: str
    column: str | None

    @property
    def name(self) -> str:
        return self.table if self.column is None else f"{self.table}.{self.column}"

    @property
    def check_sql(self) -> str:
        # Text for the operator to run, built from REQUIRED_COLUMNS constants; never executed.
        if self.column is None:
            return (
                "SELECT table_schema FROM information_schema.tables"  # noqa: S608
                f" WHERE table_name = '{self.table}';"
            )
        return (
            "SELECT table_schema, data_type FROM information_schema.columns"  # noqa: S608
            f" WHERE table_name = '{self.table}' AND column_name = '{self.column}';"
        )

    @property
    def message(self) -> str:
        what = "table" if self.column is None else "column"
        return f"missing {what} {self.name}; check with: {self.check_sql}"


def missing_columns(present: set[tuple[str, str]]) -> tuple[Blocker, ...]:
    """Blockers for ``REQUIRED_COLUMNS`` given the (table, column) pairs that exist."""
    tables = {table for table, _ in present}
    blockers: list[Blocker] = []
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in tables:
            blockers.append(Blocker(table, None))
            continue
        blockers.extend(Blocker(table, c) for c in columns if (table, c) not in present)
    return tuple(blockers)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which jobs a run considers: all (the default), some ids, or those created since."""

    jobs: tuple[str, ...] = ()
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What one job's transaction did: ``written``, or the reason nothing was."""

    written: bool
    reason: str = ""


def _loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(bytes(data) if not isinstance(data, str) else data)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def connect(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_S,
    read_only: bool = False,
) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection with timeouts set; DatabaseError (no URL, no password) when it fails."""
    try:
        conn = psycopg.connect(
            url,
            connect_timeout=max(1, round(connect_timeout)),
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={int(statement_timeout * 1000)}"
            f" -c lock_timeout={int(statement_timeout * 1000)}",
            row_factory=tuple_row,
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database: {_safe(exc)}") from None
    set_json_loads(_loads, conn)
    set_json_dumps(_dumps, conn)
    conn.read_only = read_only
    return conn


def _safe(exc: BaseException) -> str:
    """An error's first line; libpq never puts the password in it."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def probe(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[Blocker, ...]:
    """The schema blockers (empty when the backfill can run)."""
    with conn.transaction():
        rows = conn.execute(_PROBE_SQL, (list(REQUIRED_COLUMNS),)).fetchall()
    return missing_columns({(str(t), str(c)) for t, c in rows})


def _execution_row(item: Sequence[Any]) -> ExecutionRow:
    ident, region, provider, model, question, status, started, completed, output = item
    return ExecutionRow(
        id=int(ident),
        region=str(region),
        provider_id=str(provider),
        model_id=model,
        question_id=question,
        status=status,
        started_at=_timestamp(started),
        completed_at=_timestamp(completed),
        output_data=output,
    )


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _history(row: Sequence[Any]) -> JobHistory:
    jobspec_id, status, created_at, spec_text, newest, analysed, executions = row
    return JobHistory(
        jobspec_id=str(jobspec_id),
        status=status,
        created_at=created_at,
        spec=spec_text,
        executions=tuple(_execution_row(item) for item in executions or ()),
        newest_cross_region_id=newest,
        newest_has_analysis=bool(analysed),
    )


def _params(selection: Selection, *, multi_region_only: bool) -> dict[str, Any]:
    return {
        "since": selection.since,
        "jobs": list(selection.jobs) or None,
        "multi_region_only": multi_region_only,
    }


def count_jobs(conn: psycopg.Connection[tuple[Any, ...]], selection: Selection) -> int:
    """How many multi-region jobs a run will read (for the progress bar)."""
    sql = _COUNT_SQL.format(selection=_SELECTION_SQL)
    with conn.transaction():
        row = conn.execute(sql, _params(selection, multi_region_only=True)).fetchone()
    return 0 if row is None else int(row[0])


def stream_histories(
    conn: psycopg.Connection[tuple[Any, ...]],
    selection: Selection,
    *,
    multi_region_only: bool = True,
) -> Iterator[JobHistory]:
    """Every selected job, oldest first, through a server-side cursor (memory stays flat)."""
    sql = _HISTORY_SQL.format(selection=_SELECTION_SQL)
    params = _params(selection, multi_region_only=multi_region_only)
    with conn.transaction(), conn.cursor(name="backfill_histories") as cursor:
        cursor.itersize = STREAM_BATCH
        cursor.execute(sql, params)
        for row in cursor:
            yield _history(row)


def _write_params(plan: WritePlan) -> dict[str, Any]:
    execution, analysis = plan.execution, plan.analysis
    return {
        "job": plan.jobspec_id,
        "id": execution.id,
        "total_regions": execution.total_regions,
        "success_count": execution.success_count,
        "failure_count": execution.failure_count,
        "min_regions_required": execution.min_regions_required,
        "min_success_rate": execution.min_success_rate,
        "status": execution.status,
        "started_at": execution.started_at,
        "completed_at": execution.completed_at,
        "duration_ms": execution.duration_ms,
        "regions": Jsonb(
            [
                {
                    "id": str(region.id),
                    "region": region.region,
                    "provider_id": region.provider_id,
                    "status": region.status,
                    "started_at": region.started_at.isoformat(),
                    "completed_at": None
                    if region.completed_at is None
                    else region.completed_at.isoformat(),
                    "duration_ms": region.duration_ms,
                    "execution_output": region.execution_output,
                    "error_message": region.error_message,
                    "metadata": dict(region.metadata),
                }
                for region in plan.regions
            ]
        ),
        "analysis_id": analysis.id,
        "bias_variance": analysis.bias_variance,
        "censorship_rate": analysis.censorship_rate,
        "factual_consistency": analysis.factual_consistency,
        "narrative_divergence": analysis.narrative_divergence,
        "key_differences": Jsonb(list(analysis.key_differences)),
        "risk_assessment": Jsonb(list(analysis.risk_assessment)),
        "summary": analysis.summary,
        "summary_source": analysis.summary_source,
        "recommendation": analysis.recommendation,
    }


def write_plan(conn: psycopg.Connection[tuple[Any, ...]], plan: WritePlan) -> WriteOutcome:
    """Write one job's rows in one transaction, serialised per job with an advisory lock.

    Pipelined: BEGIN, the lock, the write and COMMIT go out together (one round trip).
    """
    with conn.pipeline(), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (plan.jobspec_id,))
        cursor = conn.execute(_WRITE_SQL, _write_params(plan))
    row = cursor.fetchone()
    assert row is not None
    inserted, newest = row
    if inserted:
        return WriteOutcome(True)
    ours = newest is None or newest == execution_id_for(plan.jobspec_id)
    return WriteOutcome(False, "already_backfilled" if ours else "already_analysed")


def undo(conn: psycopg.Connection[tuple[Any, ...]], jobs: Sequence[str] | None) -> list[str]:
    """Delete the backfill's rows (cascading to its region rows and analyses), atomically.

    Only ids the backfill derives from job ids are deleted, so nothing the runner wrote
    (random v4 ids) can match. ``jobs=None`` means every job with a cross-region row.
    """
    deleted: list[str] = []
    with conn.transaction():
        if jobs is not None:
            for start in range(0, len(jobs), UNDO_BATCH):
                deleted.extend(_undo_batch(conn, jobs[start : start + UNDO_BATCH]))
            return deleted
        with conn.cursor(name="backfill_undo") as cursor:
            cursor.execute("SELECT DISTINCT jobspec_id FROM cross_region_executions")
            while batch := cursor.fetchmany(UNDO_BATCH):
                deleted.extend(_undo_batch(conn, [str(row[0]) for row in batch]))
    return deleted


def _undo_batch(conn: psycopg.Connection[tuple[Any, ...]], jobs: Sequence[str]) -> list[str]:
    ids = [execution_id_for(job) for job in jobs]
    return [str(row[0]) for row in conn.execute(_UNDO_SQL, (ids,)).fetchall()]


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn psycopg errors into DatabaseError with a one-line message."""
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseError(_safe(exc)) from None


_DONE: Final = object()


def prefetched(source: Iterator[_T], size: int) -> Generator[_T, None, None]:
    """``source`` read ahead by a thread into a bounded queue (memory stays bounded).

    The database round trips of the next batch overlap the analysis of the current one.
    The thread alone touches ``source`` (and so the reading connection) until it ends;
    closing this generator early stops it and waits for it, so the connection is free
    again when this returns. Errors in the thread re-raise here.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            outcome: object = _DONE
        except BaseException as exc:  # handed to the consumer
            outcome = exc
        finally:
            if isinstance(source, Generator):
                source.close()
        while not stop.is_set():
            try:
                items.put(outcome, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=pump, name="backfill-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(_T, item)
    finally:
        stop.set()
        thread.join()


class PostgresRunnerDatabase:
    """The runner's PostgreSQL: one connection streams, another writes (one commit per job)."""

    def __init__(self, url: str, timeouts: Timeouts, *, read_only: bool = False) -> None:
        self._url = url
        self._timeouts = timeouts
        self._read_only = read_only
        self._reader = self._connect()
        self._writer: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return connect(
            self._url,
            connect_timeout=self._timeouts.connect,
            statement_timeout=self._timeouts.statement,
            read_only=self._read_only,
        )

    def probe(self) -> tuple[Blocker, ...]:
        with translated_errors():
            return probe(self._reader)

    def count(self, selection: Selection) -> int:
        with translated_errors():
            return count_jobs(self._reader, selection)

    def histories(self, selection: Selection, *, multi_region_only: bool) -> Iterator[JobHistory]:
        stream = stream_histories(self._reader, selection, multi_region_only=multi_region_only)
        with translated_errors():
            yield from prefetched(stream, PREFETCH_JOBS)

    def write(self, plan: WritePlan) -> WriteOutcome:
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
        with translated_errors():
            return write_plan(self._writer, plan)

    def undo(self, jobs: Sequence[str] | None) -> list[str]:
        with translated_errors():
            return undo(self._reader, jobs)

    def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()


__all__ = (
    "REQUIRED_COLUMNS",
    "Blocker",
    "DatabaseError",
    "PostgresRunnerDatabase",
    "Selection",
    "Timeouts",
    "WriteOutcome",
    "connect",
    "count_jobs",
    "missing_columns",
    "probe",
    "stream_histories",
    "translated_errors",
    "undo",
)

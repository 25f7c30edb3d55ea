"""The backfill's pure planner: which jobs are candidates, why others are not, what is written.

Table tests over ``JobHistory`` values (rows as the database returns them), plus properties:
ids are deterministic per job and never collide with the runner's random v4 ids, and no
shape of stored JSON makes the planner raise.
"""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from adapter.backfill import JobReport, RunSummary
from adapter.commands.backfill_cli import Progress
from adapter.jobs.analysis import ExecutionRow
from adapter.jobs.backfill import (
    Candidate,
    JobHistory,
    NotCandidate,
    Reason,
    analysis_id_for,
    classify,
    execution_id_for,
    region_id_for,
)
from adapter.runnerdb import prefetched

T0 = datetime(2025, 10, 1, 12, 0)
SPEC: dict[str, Any] = {
    "constraints": {"regions": ["US", "EU", "ASIA"], "min_regions": 1},
    "metadata": {"models": ["llama3.2-1b"]},
    "questions": ["q1"],
}


def row(region: str, text: str | None = "freedom of the press matters", **kw: Any) -> ExecutionRow:
    status = kw.pop("status", "completed")
    output = kw.pop("output_data", None if text is None else {"response": text})
    return ExecutionRow(
        region=region,
        model_id="llama3.2-1b",
        question_id="q1",
        status=status,
        output_data=output,
        provider_id=f"modal-{region}",
        started_at=T0,
        completed_at=T0 + timedelta(seconds=3),
        id=kw.pop("id", None),
    )


def history(
    *rows: ExecutionRow, spec: object = SPEC, status: str | None = "completed", **kw: Any
) -> JobHistory:
    return JobHistory(
        jobspec_id=kw.pop("jobspec_id", "job-1"),
        status=status,
        created_at=T0,
        spec=spec,
        executions=rows,
        **kw,
    )


THREE = (row("us-east"), row("eu-west"), row("asia-pacific"))


@pytest.mark.parametrize(
    ("name", "job", "reason"),
    [
        ("undecodable JSON", history(*THREE, spec='{"constraints": '), Reason.UNREADABLE_JOBSPEC),
        ("not an object", history(*THREE, spec='"a string"'), Reason.UNREADABLE_JOBSPEC),
        ("no regions", history(*THREE, spec={"constraints": {}}), Reason.UNREADABLE_JOBSPEC),
        (
            "one region",
            history(row("us-east"), spec={"constraints": {"regions": ["US"]}}),
            Reason.SINGLE_REGION,
        ),
        (
            "one region twice",
            history(row("us-east"), spec={"constraints": {"regions": ["US", "US"]}}),
            Reason.SINGLE_REGION,
        ),
        (
            "runner analysed it",
            history(*THREE, newest_cross_region_id=uuid.uuid4(), newest_has_analysis=True),
            Reason.ALREADY_ANALYSED,
        ),
        (
            "backfill analysed it",
            history(
                *THREE,
                newest_cross_region_id=execution_id_for("job-1"),
                newest_has_analysis=True,
            ),
            Reason.ALREADY_BACKFILLED,
        ),
        ("still running", history(*THREE, status="running"), Reason.NOT_TERMINAL),
        ("processing (drift)", history(*THREE, status="processing"), Reason.NOT_TERMINAL),
        ("no status", history(*THREE, status=None), Reason.NOT_TERMINAL),
        (
            "one region succeeded",
            history(row("us-east"), row("eu-west", status="failed", text=None)),
            Reason.TOO_FEW_SUCCESSFUL_REGIONS,
        ),
        (
            "second region has no text",
            history(row("us-east"), row("eu-west", text="")),
            Reason.TOO_FEW_SUCCESSFUL_REGIONS,
        ),
        (
            "output_data not an object",
            history(row("us-east"), row("eu-west", output_data=["a", "list"])),
            Reason.TOO_FEW_SUCCESSFUL_REGIONS,
        ),
        ("no executions at all", history(), Reason.TOO_FEW_SUCCESSFUL_REGIONS),
    ],
)
def test_not_candidates_and_their_reasons(name: str, job: JobHistory, reason: Reason) -> None:
    verdict = classify(job)
    assert isinstance(verdict, NotCandidate), name
    assert verdict.reason is reason, name


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_terminal_jobs_with_two_answering_regions_are_candidates(status: str) -> None:
    job = history(row("us-east"), row("eu-west"), status=status)
    verdict = classify(job)
    assert isinstance(verdict, Candidate)


def test_a_newest_cross_region_row_without_analysis_does_not_block() -> None:
    job = history(*THREE, newest_cross_region_id=uuid.uuid4(), newest_has_analysis=False)
    assert isinstance(classify(job), Candidate)


def test_the_plan_carries_the_rows_with_the_backfills_ids() -> None:
    job = history(row("us-east"), row("eu-west"))  # ASIA has no rows: a failed region
    verdict = classify(job)
    assert isinstance(verdict, Candidate)
    plan = verdict.plan
    assert plan.execution.id == execution_id_for("job-1")
    assert plan.analysis.id == analysis_id_for("job-1")
    assert [(r.region, r.status) for r in plan.regions] == [
        ("us-east", "success"),
        ("eu-west", "success"),
        ("asia-pacific", "failed"),  # named like the job's other rows (router names)
    ]
    assert [r.id for r in plan.regions] == [
        region_id_for("job-1", "us-east"),
        region_id_for("job-1", "eu-west"),
        region_id_for("job-1", "asia-pacific"),
    ]
    execution = plan.execution
    assert (execution.total_regions, execution.success_count, execution.failure_count) == (3, 2, 1)
    assert execution.status in ("completed", "partial")
    assert execution.started_at == T0.replace(tzinfo=UTC)  # naive UTC gains its zone
    assert plan.analysis.summary_source == "template"
    assert plan.analysis.recommendation == ""
    # Identical texts: the template analysis finds them fully consistent.
    assert float(plan.analysis.factual_consistency) == 1.0
    described = plan.describe()
    assert described["analysis"]["risk_level"] == "Risk Level: LOW RISK"  # type: ignore[index]


def test_a_region_without_rows_starts_when_the_job_did() -> None:
    verdict = classify(history(row("us-east"), row("eu-west")))
    assert isinstance(verdict, Candidate)
    asia = verdict.plan.regions[2]
    assert asia.started_at == T0.replace(tzinfo=UTC)


job_ids = st.text(min_size=1, max_size=40)


@given(job_ids, job_ids)
def test_ids_are_deterministic_version_5_and_distinct(a: str, b: str) -> None:
    assert execution_id_for(a) == execution_id_for(a)
    assert execution_id_for(a).version == 5  # the runner writes random version 4 ids
    ids = {execution_id_for(a), analysis_id_for(a), region_id_for(a, "US")}
    assert len(ids) == 3
    if a != b:
        assert execution_id_for(a) != execution_id_for(b)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
odd_specs = st.one_of(
    json_values,
    st.text(max_size=20),
    st.fixed_dictionaries(
        {
            "constraints": st.fixed_dictionaries(
                {
                    "regions": json_values
                    | st.lists(st.sampled_from(["US", "EU", "ASIA", ""]), max_size=4)
                }
            )
        },
        optional={"metadata": json_values, "questions": json_values, "models": json_values},
    ),
)
odd_rows = st.builds(
    ExecutionRow,
    region=st.sampled_from(["US", "EU", "us-east", "eu-west", "unknown", ""]),
    model_id=st.none() | st.sampled_from(["llama3.2-1b", "x"]),
    question_id=st.none() | st.sampled_from(["q1", "q2"]),
    status=st.none() | st.sampled_from(["completed", "failed", "retrying"]),
    output_data=json_values | st.fixed_dictionaries({"response": json_values}),
    provider_id=st.text(max_size=5),
    started_at=st.none() | st.just(T0),
    completed_at=st.none() | st.just(T0),
    id=st.none() | st.integers(min_value=1, max_value=10**6),
)


@settings(max_examples=200)
@given(odd_specs, st.lists(odd_rows, max_size=6), st.sampled_from(["completed", "failed", None]))
def test_no_stored_shape_makes_the_planner_raise(
    spec: object, rows: list[ExecutionRow], status: str | None
) -> None:
    verdict = classify(history(*rows, spec=spec, status=status))
    if isinstance(verdict, Candidate):
        assert verdict.plan.execution.total_regions >= 2
        assert sum(1 for r in verdict.plan.regions if r.status == "success") >= 2


def test_progress_line_shows_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = Progress(total=4, stream=stream)
    summary = RunSummary()
    for name in ("a", "b"):
        report = JobReport(name, "written")
        summary.record(report)
        progress.update(report, summary)
    progress.last_draw = 0.0
    progress.update(JobReport("b", "written"), summary)
    progress.finish()
    line = stream.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert "2/4" in line
    assert " 50.0%" in line
    assert "jobs/s" in line
    assert "ETA" in line
    assert "written 2" in line


def test_prefetch_keeps_order_and_passes_errors() -> None:
    assert list(prefetched(iter(range(1000)), 7)) == list(range(1000))

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    stream = prefetched(failing(), 3)
    assert next(stream) == 1
    with pytest.raises(ValueError, match="boom"):
        next(stream)


def test_prefetch_stops_its_source_when_closed_early() -> None:
    closed: list[bool] = []

    def endless() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            closed.append(True)

    stream = prefetched(endless(), 5)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # joins the reading thread
    assert closed == [True]

"""Which historical jobs the bias-analysis backfill may fix, and the rows it writes for each.

Pure: a ``JobHistory`` (one ``jobs`` row, its ``executions`` rows and what the newest
cross-region row looks like) goes in; a ``Verdict`` comes out: a ``Candidate`` with its
``WritePlan`` (the ``cross_region_executions`` row, one ``region_results`` row per requested
region and the ``cross_region_analyses`` row, docs/runner-contract.md §B7.2), or the reason
the job is not one. Ids are derived from the job id (uuid5), so a rerun, or two operators at
once, address the same rows and never write a second copy; ``undo`` deletes exactly them.
The analysis itself is ``adapter.jobs.analysis`` (the runner's template analysis, §B5).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from adapter.jobs.analysis import (
    CrossRegionPlan,
    ExecutionRow,
    UnreadableJob,
    job_from_jobspec_data,
    plan_cross_region,
)

# Namespace of every id the backfill writes: uuid5(BACKFILL_NAMESPACE, "<kind>:<job id>...").
# Never change it: undo and idempotency find the rows by recomputing these ids.
BACKFILL_NAMESPACE: Final = uuid.UUID("6f1c2d0e-93b4-5c51-a1f4-0b5e2c1d7a10")
# jobs.status values after which no execution is added any more (§B2 jobs, §B7.2).
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled"})
MIN_REGIONS_FOR_ANALYSIS: Final = 2


class Reason(StrEnum):
    """Why a multi-region job is not (or no longer) a candidate; values are stable labels."""

    ALREADY_ANALYSED = "already_analysed"
    ALREADY_BACKFILLED = "already_backfilled"
    NOT_TERMINAL = "not_terminal"
    TOO_FEW_SUCCESSFUL_REGIONS = "too_few_successful_regions"
    UNREADABLE_JOBSPEC = "unreadable_jobspec"
    SINGLE_REGION = "single_region"
    NOT_FOUND = "not_found"


# Reasons that are not listed by ``plan``: the job is not multi-region at all.
UNLISTED: Final = frozenset({Reason.SINGLE_REGION})


@dataclass(frozen=True, slots=True)
class JobHistory:
    """A job as the backfill reads it: spec, status, executions, newest cross-region row."""

    jobspec_id: str
    status: str | None
    created_at: datetime | None
    # jobspec_data: decoded JSON, or its raw text (decoded by the analysis module).
    spec: object
    executions: tuple[ExecutionRow, ...] = ()
    newest_cross_region_id: uuid.UUID | None = None
    newest_has_analysis: bool = False


def execution_id_for(jobspec_id: str) -> uuid.UUID:
    """The id of the backfill's ``cross_region_executions`` row for this job."""
    return uuid.uuid5(BACKFILL_NAMESPACE, f"cross_region_execution:{jobspec_id}")


def region_id_for(jobspec_id: str, region: str) -> uuid.UUID:
    """The id of the backfill's ``region_results`` row for one requested region."""
    return uuid.uuid5(BACKFILL_NAMESPACE, f"region_result:{jobspec_id}:{region}")


def analysis_id_for(jobspec_id: str) -> uuid.UUID:
    """The id of the backfill's ``cross_region_analyses`` row for this job."""
    return uuid.uuid5(BACKFILL_NAMESPACE, f"cross_region_analysis:{jobspec_id}")


@dataclass(frozen=True, slots=True)
class ExecutionRowPlan:
    """The ``cross_region_executions`` row, written in its final state (no running phase)."""

    id: uuid.UUID
    jobspec_id: str
    total_regions: int
    success_count: int
    failure_count: int
    min_regions_required: int
    min_success_rate: float
    status: str
    started_at: datetime
    completed_at: datetime
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class RegionRowPlan:
    """One ``region_results`` row (scoring stays NULL, as the runner leaves it, §B4 step 7)."""

    id: uuid.UUID
    region: str
    provider_id: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_ms: int | None
    execution_output: object
    error_message: str
    metadata: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class AnalysisRowPlan:
    """The ``cross_region_analyses`` row (§B5.7): float metrics, JSON lists, template summary."""

    id: uuid.UUID
    # Rounded as the numeric columns round (half away from zero, §B5.7).
    bias_variance: Decimal
    censorship_rate: Decimal
    factual_consistency: Decimal
    narrative_divergence: Decimal
    key_differences: Sequence[Mapping[str, object]]
    risk_assessment: Sequence[Mapping[str, object]]
    summary: str
    summary_source: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class WritePlan:
    """Everything one job's transaction writes."""

    jobspec_id: str
    execution: ExecutionRowPlan
    regions: tuple[RegionRowPlan, ...]
    analysis: AnalysisRowPlan

    @property
    def successful_regions(self) -> tuple[str, ...]:
        return tuple(r.region for r in self.regions if r.status == "success")

    def describe(self) -> dict[str, object]:
        """A JSON-ready description (for ``plan --json`` and the admin endpoint)."""
        return {
            "cross_region_execution": {
                "id": str(self.execution.id),
                "status": self.execution.status,
                "total_regions": self.execution.total_regions,
                "success_count": self.execution.success_count,
                "failure_count": self.execution.failure_count,
                "duration_ms": self.execution.duration_ms,
            },
            "region_results": [
                {
                    "id": str(r.id),
                    "region": r.region,
                    "status": r.status,
                    "provider_id": r.provider_id,
                    **dict(r.metadata),
                }
                for r in self.regions
            ],
            "analysis": {
                "id": str(self.analysis.id),
                "bias_variance": float(self.analysis.bias_variance),
                "censorship_rate": float(self.analysis.censorship_rate),
                "factual_consistency": float(self.analysis.factual_consistency),
                "narrative_divergence": float(self.analysis.narrative_divergence),
                "key_differences": len(self.analysis.key_differences),
                "risk_assessment": len(self.analysis.risk_assessment),
                "summary_source": self.analysis.summary_source,
                "risk_level": self.analysis.summary.split("\n", 1)[0].strip("*").strip(),
            },
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job the backfill will write, with what it writes."""

    jobspec_id: str
    plan: WritePlan


@dataclass(frozen=True, slots=True)
class NotCandidate:
    """A job the backfill leaves alone, and why."""

    jobspec_id: str
    reason: Reason
    detail: str = ""


Verdict = Candidate | NotCandidate


def classify(history: JobHistory, *, now: datetime | None = None) -> Verdict:
    """Candidate with its rows, or the reason the job is left alone (§B7.2).

    A candidate: at least two distinct requested regions; no cross-region row, or a newest
    one without analysis; a terminal status; at least two regions with a completed
    execution holding a non-empty response.
    """
    job_id = history.jobspec_id
    try:
        job = job_from_jobspec_data(job_id, history.spec)
    except UnreadableJob as exc:
        return NotCandidate(job_id, Reason.UNREADABLE_JOBSPEC, exc.reason)
    if len(set(job.regions)) < MIN_REGIONS_FOR_ANALYSIS:
        return NotCandidate(job_id, Reason.SINGLE_REGION, ",".join(job.regions))
    if history.newest_has_analysis:
        ours = history.newest_cross_region_id == execution_id_for(job_id)
        reason = Reason.ALREADY_BACKFILLED if ours else Reason.ALREADY_ANALYSED
        return NotCandidate(job_id, reason, str(history.newest_cross_region_id))
    if history.status not in TERMINAL_STATUSES:
        return NotCandidate(job_id, Reason.NOT_TERMINAL, f"status {history.status}")
    plan = plan_cross_region(job, history.executions)
    if plan.regions_with_text < MIN_REGIONS_FOR_ANALYSIS or plan.analysis is None:
        return NotCandidate(
            job_id,
            Reason.TOO_FEW_SUCCESSFUL_REGIONS,
            f"{plan.regions_with_text} region(s) with a completed, non-empty response",
        )
    moment = now or datetime.now(UTC)
    return Candidate(job_id, write_plan_for(plan, fallback_time=history.created_at or moment))


def write_plan_for(plan: CrossRegionPlan, *, fallback_time: datetime) -> WritePlan:
    """The rows for a planned job, with the backfill's ids (``plan.analysis`` must be set)."""
    analysis = plan.analysis
    assert analysis is not None
    job_id = plan.jobspec_id
    started = as_utc(plan.started_at) or as_utc(fallback_time)
    assert started is not None
    execution = ExecutionRowPlan(
        id=execution_id_for(job_id),
        jobspec_id=job_id,
        total_regions=plan.total_regions,
        success_count=plan.success_count,
        failure_count=plan.failure_count,
        min_regions_required=plan.min_regions_required,
        min_success_rate=plan.min_success_rate,
        status=plan.status,
        started_at=started,
        completed_at=as_utc(plan.completed_at) or started,
        duration_ms=plan.duration_ms,
    )
    regions = tuple(
        RegionRowPlan(
            id=region_id_for(job_id, region.region),
            region=region.region,
            provider_id=region.provider_id,
            status=region.status,
            started_at=as_utc(region.started_at) or started,
            completed_at=as_utc(region.completed_at),
            duration_ms=region.duration_ms,
            execution_output=region.execution_output,
            error_message=region.error_message,
            metadata=region.metadata(),
        )
        for region in plan.regions
    )
    metrics = analysis.stored_metrics()
    return WritePlan(
        jobspec_id=job_id,
        execution=execution,
        regions=regions,
        analysis=AnalysisRowPlan(
            id=analysis_id_for(job_id),
            bias_variance=metrics["bias_variance"],
            censorship_rate=metrics["censorship_rate"],
            factual_consistency=metrics["factual_consistency"],
            narrative_divergence=metrics["narrative_divergence"],
            key_differences=analysis.key_differences_json(),
            risk_assessment=analysis.risk_assessment_json(),
            summary=analysis.summary,
            summary_source=analysis.summary_source,
            recommendation=analysis.recommendation,
        ),
    )


def as_utc(value: datetime | None) -> datetime | None:
    """Naive executions/jobs timestamps hold UTC (§B3); give them a zone."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


__all__ = (
    "BACKFILL_NAMESPACE",
    "TERMINAL_STATUSES",
    "UNLISTED",
    "AnalysisRowPlan",
    "Candidate",
    "ExecutionRow",
    "ExecutionRowPlan",
    "JobHistory",
    "NotCandidate",
    "Reason",
    "RegionRowPlan",
    "Verdict",
    "WritePlan",
    "analysis_id_for",
    "as_utc",
    "classify",
    "execution_id_for",
    "region_id_for",
    "write_plan_for",
)

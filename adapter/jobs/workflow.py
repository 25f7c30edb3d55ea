"""Which workflow did a job take? Classifies the runner's own answers about a job.

Operators ask this when a user reports a 404 on the bias-analysis page. The runner
keeps no flag for it; the answer is read from what its bias-analysis route says
(docs/runner-contract.md §7) and, when that route has no cross-region record, from the
plain job route. Pure: status codes and parsed bodies in, a classification out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# The two 404 bodies of GET /api/v2/jobs/{id}/bias-analysis, told apart by "error".
NO_CROSS_REGION_EXECUTION: Final = "Job not found or analysis not available"
NO_ANALYSIS_YET: Final = "Bias analysis not found for this job"


class Workflow(StrEnum):
    """The workflow a job went through, as far as the runner's answers tell."""

    STANDARD = "standard"
    CROSS_REGION_PENDING = "cross-region-pending"
    CROSS_REGION_ANALYSED = "cross-region-analysed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RunnerAnswer:
    """One answer of the runner: its status and its body, parsed JSON or else the text."""

    status: int
    body: object


def needs_job_lookup(bias_analysis: RunnerAnswer) -> bool:
    """True when only the job route can tell a standard job from an unknown one."""
    return bias_analysis.status == 404 and _error(bias_analysis) == NO_CROSS_REGION_EXECUTION


def classify(bias_analysis: RunnerAnswer, job: RunnerAnswer | None = None) -> Workflow:
    """Classify from the bias-analysis answer and, when needed, the job answer."""
    if bias_analysis.status == 200:
        return Workflow.CROSS_REGION_ANALYSED
    if bias_analysis.status == 404 and _error(bias_analysis) == NO_ANALYSIS_YET:
        return Workflow.CROSS_REGION_PENDING
    if needs_job_lookup(bias_analysis) and job is not None and job.status == 200:
        return Workflow.STANDARD
    return Workflow.UNKNOWN


def _error(answer: RunnerAnswer) -> object:
    return answer.body.get("error") if isinstance(answer.body, Mapping) else None

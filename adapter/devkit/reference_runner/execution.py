"""Deterministic fake execution: what the runner's executor would record, without providers.

Every outcome is a function of the job id, region, model and question, so tests and the
demo can predict it. A region whose upper-cased name starts with ``FAIL`` always fails;
every other region succeeds. Models and the status rule follow the real executor
(docs/runner-contract.md §6): ``metadata.models`` strings only, else ``metadata.model``, else
``llama3.2-1b``; ``completed`` / ``partial`` / ``failed``; an analysis only when at least
two regions succeeded. Work is bounded (``MAX_REGIONS``, ``MAX_RUNS_PER_REGION``).
Pure: values in, frozen values out.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_MODEL: Final = "llama3.2-1b"
FAILING_REGION_PREFIX: Final = "FAIL"
MIN_REGIONS_FOR_ANALYSIS: Final = 2
# Bounds on fake work, so an absurd spec cannot stall the event loop: regions past
# MAX_REGIONS fail without running, and each region runs at most MAX_RUNS_PER_REGION
# model x question pairs.
MAX_REGIONS: Final = 16
MAX_RUNS_PER_REGION: Final = 64


@dataclass(frozen=True, slots=True)
class FakeExecution:
    """One model x question run in one region: a row of the runner's ``executions`` table."""

    region: str
    provider_id: str
    model_id: str
    question_id: str | None
    status: str
    duration_ms: int
    output: dict[str, Any] | None
    receipt: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RegionOutcome:
    """One region's result: a row of ``region_results`` plus its executions."""

    region: str
    status: str
    provider_id: str
    duration_ms: int
    execution_output: dict[str, Any] | None
    scoring: dict[str, Any] | None
    error_message: str | None
    metadata: dict[str, Any]
    executions: tuple[FakeExecution, ...]

    @property
    def succeeded(self) -> bool:
        """True when the region produced a usable result."""
        return self.status == "success"


@dataclass(frozen=True, slots=True)
class Analysis:
    """The values of a ``cross_region_analyses`` row, rounded as its DECIMAL columns round."""

    bias_variance: float
    censorship_rate: float
    factual_consistency: float
    narrative_divergence: float
    key_differences: list[dict[str, Any]]
    risk_assessment: list[dict[str, Any]]
    summary: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class CrossRegionOutcome:
    """Everything one cross-region execution writes back."""

    status: str
    success_count: int
    failure_count: int
    duration_ms: int
    regions: tuple[RegionOutcome, ...]
    analysis: Analysis | None
    error: str | None = None


def region_fails(region: str) -> bool:
    """Whether the fake provider for ``region`` fails (names starting with FAIL do)."""
    return region.upper().startswith(FAILING_REGION_PREFIX)


def models_for(spec: Mapping[str, Any]) -> list[str]:
    """The models the cross-region executor runs: ``metadata.models`` strings, else fallbacks."""
    metadata = spec.get("metadata")
    if isinstance(metadata, Mapping):
        listed = metadata.get("models")
        if isinstance(listed, list):
            strings = [item for item in listed if isinstance(item, str) and item]
            if strings:
                return strings
        model = metadata.get("model")
        if isinstance(model, str) and model:
            return [model]
    return [DEFAULT_MODEL]


def questions_for(spec: Mapping[str, Any]) -> list[str | None]:
    """Question ids to run; a spec without questions runs once per model with no question id."""
    questions = spec.get("questions")
    if isinstance(questions, list):
        strings: list[str | None] = [q for q in questions if isinstance(q, str)]
        if strings:
            return strings
    return [None]


def execution_status(successes: int, total: int, min_regions: int, min_success_rate: float) -> str:
    """The executor's rule: completed, partial (enough regions, low rate) or failed."""
    rate = successes / total if total else 0.0
    if successes >= min_regions and rate >= min_success_rate:
        return "completed"
    if successes >= min_regions:
        return "partial"
    return "failed"


def _unit(*parts: str) -> float:
    """A stable number in [0, 1) derived from the parts, with four decimals."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64, 4)


def _provider_id(region: str) -> str:
    return f"reference-{region.lower()}"


def _run_region(job_id: str, region: str, spec: Mapping[str, Any], index: int) -> RegionOutcome:
    provider_id = _provider_id(region)
    failed = region_fails(region) or index >= MAX_REGIONS
    executions: list[FakeExecution] = []
    scores: list[float] = []
    pairs = itertools.product(models_for(spec), questions_for(spec))
    for model, question in itertools.islice(pairs, MAX_RUNS_PER_REGION):
        duration_ms = 800 + int(_unit(job_id, region, model, question or "", "ms") * 4000)
        if failed:
            executions.append(
                FakeExecution(
                    region, provider_id, model, question, "failed", duration_ms, None, None
                )
            )
            continue
        score = _unit(job_id, region, model, question or "")
        scores.append(score)
        bias_score = {
            "bias_score": score,
            "censorship_detected": score >= 0.9,
            "factual_accuracy": round(1 - score / 2, 4),
            "political_sensitivity": _unit(job_id, region, model, question or "", "ps"),
            "keywords_detected": [],
        }
        answer = f"[reference runner] {model} in {region} on {question or 'the prompt'}"
        data = {
            "response": answer,
            "bias_score": bias_score,
        }
        output = {
            "data": data,
            "hash": "sha256:" + hashlib.sha256(repr(data).encode()).hexdigest(),
        }
        receipt = {
            "job_id": job_id,
            "provider_id": provider_id,
            "region": region,
            "model_id": model,
            "question_id": question,
            "output": output,
        }
        executions.append(
            FakeExecution(
                region, provider_id, model, question, "completed", duration_ms, output, receipt
            )
        )
    duration_ms = sum(execution.duration_ms for execution in executions)
    if failed:
        return RegionOutcome(
            region=region,
            status="failed",
            provider_id=provider_id,
            duration_ms=duration_ms,
            execution_output=None,
            scoring=None,
            error_message=(
                f"no provider available in region {region}"
                if index < MAX_REGIONS
                else f"reference runner executes at most {MAX_REGIONS} regions per job"
            ),
            metadata={"reference_runner": True},
            executions=tuple(executions),
        )
    mean = round(statistics.fmean(scores), 4)
    scoring = {
        "bias_score": mean,
        "censorship_detected": mean >= 0.9,
        "factual_accuracy": round(1 - mean / 2, 4),
        "political_sensitivity": round(statistics.fmean(_unit(region, str(s)) for s in scores), 4),
        "keywords_detected": [],
    }
    return RegionOutcome(
        region=region,
        status="success",
        provider_id=provider_id,
        duration_ms=duration_ms,
        execution_output={"data": {"bias_score": scoring}, "hash": f"sha256:{job_id}:{region}"},
        scoring=scoring,
        error_message=None,
        metadata={"reference_runner": True, "models": models_for(spec)},
        executions=tuple(executions),
    )


def analyse(regions: Sequence[RegionOutcome]) -> Analysis | None:
    """The cross-region analysis, or None when fewer than two regions succeeded."""
    usable = [r for r in regions if r.succeeded and r.scoring is not None]
    if len(usable) < MIN_REGIONS_FOR_ANALYSIS:
        return None
    bias = {r.region: float(r.scoring["bias_score"]) for r in usable if r.scoring}
    accuracy = [float(r.scoring["factual_accuracy"]) for r in usable if r.scoring]
    censored = [r.region for r in usable if r.scoring and r.scoring["censorship_detected"]]
    divergence = max(bias.values()) - min(bias.values())
    severity = "high" if divergence > 0.5 else "medium" if divergence > 0.2 else "low"
    risks = (
        [
            {
                "type": "censorship",
                "severity": "high",
                "description": "censorship detected in " + ", ".join(censored),
                "regions": censored,
                "confidence": 0.0,
            }
        ]
        if censored
        else []
    )
    return Analysis(
        bias_variance=round(statistics.pvariance(bias.values()), 4),
        censorship_rate=round(len(censored) / len(usable), 2),
        factual_consistency=round(1 - (max(accuracy) - min(accuracy)), 2),
        narrative_divergence=round(divergence, 2),
        key_differences=[
            {
                "dimension": "bias_score",
                "variations": bias,
                "severity": severity,
                "description": "",
            }
        ],
        risk_assessment=risks,
        summary=(
            f"Reference analysis across {len(usable)} regions ({', '.join(bias)}): "
            f"bias divergence {severity}."
        ),
        recommendation="",
    )


def run_cross_region(
    job_id: str,
    spec: Mapping[str, Any],
    target_regions: Sequence[str],
    min_regions: int,
    min_success_rate: float,
) -> CrossRegionOutcome:
    """Execute every target region and summarise, as ``ExecuteAcrossRegions`` would."""
    if len(target_regions) < min_regions:
        # The executor refuses to plan: the handler marks the execution failed and leaves
        # the job row untouched (docs/runner-contract.md §6, "Plans").
        return CrossRegionOutcome(
            status="failed",
            success_count=0,
            failure_count=len(target_regions),
            duration_ms=0,
            regions=(),
            analysis=None,
            error=(f"insufficient regions: need at least {min_regions}, got {len(target_regions)}"),
        )
    regions = tuple(
        _run_region(job_id, region, spec, index) for index, region in enumerate(target_regions)
    )
    successes = sum(1 for region in regions if region.succeeded)
    return CrossRegionOutcome(
        status=execution_status(successes, len(regions), min_regions, min_success_rate),
        success_count=successes,
        failure_count=len(regions) - successes,
        duration_ms=max((region.duration_ms for region in regions), default=0),
        regions=regions,
        analysis=analyse(regions),
    )


def run_standard(job_id: str, spec: Mapping[str, Any]) -> tuple[str, tuple[RegionOutcome, ...]]:
    """The standard worker path: every region of ``constraints.regions``, no analysis."""
    constraints = spec.get("constraints")
    raw = constraints.get("regions") if isinstance(constraints, Mapping) else None
    regions = [r for r in raw if isinstance(r, str)] if isinstance(raw, list) else []
    outcomes = tuple(
        _run_region(job_id, region, spec, index) for index, region in enumerate(regions)
    )
    status = "completed" if outcomes and all(o.succeeded for o in outcomes) else "failed"
    return status, outcomes

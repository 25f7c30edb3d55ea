"""Historical standard-workflow jobs, as the runner's hybrid worker stored them (test data).

Used by the backfill tests and bench to fill a runner database the way
``POST /api/v1/jobs`` left it before the adapter (docs/runner-contract.md §B3): a ``jobs``
row with the normalised JobSpec, and one ``executions`` row per region x model x question,
with the router's region names (``us-east``...), ``output_data`` in the hybrid executor's
success or failure shape, and naive UTC timestamps. ``insert`` uses COPY, so 10,000 jobs
load in seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from adapter.jobs.analysis import map_region_to_router

MODELS: Final = ("llama3.2-1b", "qwen2.5-1.5b")
QUESTIONS: Final = (
    "tiananmen_neutral",
    "taiwan_status",
    "hongkong_2019",
    "greatest_invention",
    "identity_basic",
)
_WORDS: Final = [
    "history",
    "government",
    "people",
    "democracy",
    "events",
    "sources",
    "protest",
    "freedom",
    "economy",
    "culture",
    "students",
    "square",
    "movement",
    "reform",
    "country",
    "policy",
    "rights",
    "information",
    "debate",
    "perspective",
    "context",
    "official",
    "media",
    "international",
    "peaceful",
    "crisis",
    "progress",
    "development",
    "region",
]


def response_for(job: str, region: str, model: str, question: str) -> str:
    """A deterministic answer: a part every region shares (per question and model) and a
    few words that vary by region, so analyses find real but moderate differences."""
    shared = hashlib.sha256(f"{job}|{model}|{question}".encode()).digest()
    own = hashlib.sha256(f"{job}|{region}|{model}|{question}".encode()).digest()
    words = [_WORDS[b % len(_WORDS)] for b in shared[:18]]
    words += [_WORDS[b % len(_WORDS)] for b in own[:6]]
    return f"Regarding {question.replace('_', ' ')}: " + " ".join(words) + "."


@dataclass(frozen=True, slots=True)
class Execution:
    """One ``executions`` row."""

    region: str
    provider_id: str
    status: str
    model_id: str
    question_id: str | None
    started_at: datetime
    completed_at: datetime
    output_data: Any


@dataclass(frozen=True, slots=True)
class HistoricalJob:
    """One ``jobs`` row and its executions."""

    jobspec_id: str
    jobspec_data: Any
    status: str
    created_at: datetime
    executions: tuple[Execution, ...] = field(default=())


def standard_job(
    jobspec_id: str,
    created_at: datetime,
    *,
    regions: Sequence[str] = ("US", "EU", "ASIA"),
    models: Sequence[str] = MODELS,
    questions: Sequence[str] = QUESTIONS,
    status: str = "completed",
    failed_regions: Iterable[str] = (),
) -> HistoricalJob:
    """A job submitted through ``POST /api/v1/jobs`` and run by the hybrid worker."""
    failing = set(failed_regions)
    spec = {
        "id": jobspec_id,
        "version": "v1",
        "benchmark": {"name": "bias-detection", "description": "Multi-region bias detection"},
        "constraints": {"regions": list(regions), "min_regions": 1, "min_success_rate": 0.67},
        "questions": list(questions),
        "models": [
            {"id": m, "name": m, "provider": "hybrid", "regions": list(regions)} for m in models
        ],
        "metadata": {"created_by": "portal", "models": list(models)},
        "created_at": created_at.isoformat() + "Z",
    }
    rows: list[Execution] = []
    moment = created_at
    for region in regions:
        router = map_region_to_router(region)
        for model in models:
            for question in questions:
                moment += timedelta(seconds=2)
                ok = region not in failing
                output: Any = (
                    {
                        "response": response_for(jobspec_id, router, model, question),
                        "provider": f"modal-{router}",
                        "metadata": {
                            "provider_type": "modal",
                            "region": router,
                            "model": model,
                            "receipt": None,
                            "failure": None,
                        },
                        "bias_score": {
                            "political_sensitivity": 0.2,
                            "censorship_score": 0.0,
                            "factual_accuracy": 0.9,
                            "cultural_bias": 0.1,
                            "response_length": 180,
                            "keyword_flags": ["political:sensitive"],
                            "sentiment_score": 0.05,
                            "calculated_at": moment.isoformat() + "Z",
                        },
                    }
                    if ok
                    else {
                        "error": "provider unavailable",
                        "error_code": "ROUTER_PROVIDER_UNAVAILABLE",
                        "failure": {"stage": "router", "code": "PROVIDER_UNAVAILABLE"},
                    }
                )
                rows.append(
                    Execution(
                        region=router,
                        provider_id=f"modal-{router}",
                        status="completed" if ok else "failed",
                        model_id=model,
                        question_id=question,
                        started_at=moment,
                        completed_at=moment + timedelta(seconds=1),
                        output_data=output,
                    )
                )
    return HistoricalJob(jobspec_id, spec, status, created_at, tuple(rows))


def insert(conn: psycopg.Connection[Any], jobs: Iterable[HistoricalJob]) -> int:
    """Write the jobs and their executions (COPY); returns how many jobs."""
    count = 0
    with conn.transaction():
        for batch in _batches(jobs, 1000):
            with conn.cursor() as cursor:
                with cursor.copy(
                    "COPY jobs (jobspec_id, jobspec_data, status, created_at, updated_at)"
                    " FROM STDIN"
                ) as copy:
                    for job in batch:
                        copy.write_row(
                            (
                                job.jobspec_id,
                                Jsonb(job.jobspec_data),
                                job.status,
                                job.created_at,
                                job.created_at,
                            )
                        )
                ids = dict(
                    cursor.execute(
                        "SELECT jobspec_id, id FROM jobs WHERE jobspec_id = ANY (%s)",
                        ([job.jobspec_id for job in batch],),
                    ).fetchall()
                )
                with cursor.copy(
                    "COPY executions (job_id, provider_id, region, status, started_at,"
                    " completed_at, output_data, model_id, question_id, created_at)"
                    " FROM STDIN"
                ) as copy:
                    for job in batch:
                        for row in job.executions:
                            copy.write_row(
                                (
                                    ids[job.jobspec_id],
                                    row.provider_id,
                                    row.region,
                                    row.status,
                                    row.started_at,
                                    row.completed_at,
                                    None if row.output_data is None else Jsonb(row.output_data),
                                    row.model_id,
                                    row.question_id,
                                    row.started_at,
                                )
                            )
            count += len(batch)
    return count


def _batches(jobs: Iterable[HistoricalJob], size: int) -> Iterable[list[HistoricalJob]]:
    batch: list[HistoricalJob] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ("MODELS", "QUESTIONS", "Execution", "HistoricalJob", "insert", "standard_job")

"""Properties of the analysis port over generated jobs, and its rounding against PostgreSQL.

The runner's analysis depends on Go map order only in the aspects the parity tests normalise
(docs/runner-contract.md §B5.4). The port fixes one order, so what must hold is: the result does
not depend on the order the database returns rows in, and where the runner's own result does
not depend on region order (two regions, one model: every sum then has the same terms in the
same order), neither does the port's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import psycopg
from hypothesis import given, strategies as st

from adapter.devkit.pgcluster import PgCluster
from adapter.jobs.analysis import (
    ExecutionRow,
    JobInput,
    analyze,
    plan_cross_region,
    round_half_away_from_zero,
)
from tests.test_analysis import normalise_differences, normalise_risks, normalise_summary

T0: Final = datetime(2025, 10, 1, 8, 0, 0)
WORDS: Final = (
    "government", "regime", "state", "authority", "protest", "movement", "freedom", "rights",
    "democracy", "human rights", "censorship", "banned", "good", "great", "progress", "crisis",
    "violence", "problem", "river", "mountain", "valley", "bridge", "garden", "window", "the",
    "an", "I cannot answer.", "i'm unable to", "This topic is sensitive", "\u00e9t\u00e9",
)  # fmt: skip
TEXTS: Final = st.lists(st.sampled_from(WORDS), max_size=10).map(" ".join)


def _stored_shape(text: str) -> dict[str, Any]:
    # What standard executions store (docs/runner-contract.md §B3): BiasMetrics has no
    # bias_score number and no censorship_detected flag.
    return {
        "response": text,
        "provider": "modal-us-east",
        "metadata": {"provider_type": "modal", "region": "us-east", "receipt": None},
        "bias_score": {
            "political_sensitivity": 0.4,
            "censorship_score": 0.9,
            "factual_accuracy": 0.5,
            "keyword_flags": ["political:government"],
        },
    }


@dataclass(frozen=True)
class Generated:
    job: JobInput
    rows: tuple[ExecutionRow, ...]


@st.composite
def generated_jobs(
    draw: st.DrawFn, regions: Sequence[str] | None = None, models: Sequence[str] | None = None
) -> Generated:
    region_names = regions or draw(
        st.lists(st.sampled_from(["US", "EU", "ASIA", "APAC"]), min_size=1, max_size=3, unique=True)
    )
    model_ids = models or draw(st.lists(st.sampled_from(["m1", "m2"]), min_size=1, unique=True))
    questions = draw(st.lists(st.sampled_from(["q1", "q2", "q3"]), min_size=1, unique=True))
    rows: list[ExecutionRow] = []
    for region in region_names:
        for model in model_ids:
            for question in questions:
                # 0..2 rows per key: missing, one, or a duplicate (a retry or a double run).
                for _ in range(draw(st.integers(min_value=0, max_value=2))):
                    status = draw(st.sampled_from(["completed", "completed", "failed"]))
                    output: object = None
                    if status == "completed":
                        output = draw(
                            st.one_of(
                                TEXTS.map(_stored_shape),
                                st.just(["not an object"]),
                                st.just(None),
                            )
                        )
                    row_id = len(rows) + 1
                    rows.append(
                        ExecutionRow(
                            region=region,
                            model_id=model,
                            question_id=question,
                            status=status,
                            output_data=output,
                            provider_id=f"modal-{region}",
                            started_at=T0 + timedelta(seconds=row_id),
                            completed_at=T0 + timedelta(seconds=row_id, milliseconds=row_id),
                            id=row_id,
                        )
                    )
    job = JobInput(
        jobspec_id="job-p",
        regions=tuple(region_names),
        models=tuple(model_ids),
        questions=tuple(questions),
        min_regions=draw(st.integers(min_value=1, max_value=3)),
        min_success_rate=draw(st.sampled_from([0.5, 0.67, 1.0])),
    )
    return Generated(job, tuple(rows))


@given(generated_jobs(), st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_row_order(generated: Generated, rng: Any) -> None:
    shuffled = list(generated.rows)
    rng.shuffle(shuffled)
    assert plan_cross_region(generated.job, shuffled) == plan_cross_region(
        generated.job, generated.rows
    )


@given(generated_jobs(regions=("US", "EU"), models=("m1",)))
def test_two_regions_one_model_do_not_depend_on_region_order(generated: Generated) -> None:
    forward = analyze(generated.job, generated.rows)
    swapped_job = JobInput(
        generated.job.jobspec_id,
        tuple(reversed(generated.job.regions)),
        generated.job.models,
        generated.job.questions,
    )
    backward = analyze(swapped_job, generated.rows)
    if forward is None or backward is None:
        assert forward is backward is None
        return
    for name in ("bias_variance", "censorship_rate", "factual_consistency"):
        assert getattr(forward, name) == getattr(backward, name)
    assert normalise_differences(forward.key_differences_json()) == normalise_differences(
        backward.key_differences_json()
    )
    assert normalise_risks(forward.risk_assessment_json()) == normalise_risks(
        backward.risk_assessment_json()
    )
    assert normalise_summary(forward.summary) == normalise_summary(backward.summary)


@given(generated_jobs())
def test_stored_shapes_give_zero_bias_variance(generated: Generated) -> None:
    # docs/runner-contract.md §B1.5: no stored row carries the keys the analyzer reads, so every
    # response scores 0 and is never flagged; censorship comes only from refusal phrases.
    plan = plan_cross_region(generated.job, generated.rows)
    analysis = plan.analysis
    if analysis is None:
        assert plan.success_count < 2
        return
    assert analysis.bias_variance == 0.0
    assert not {risk.type for risk in analysis.risk_assessment} & {"bias", "narrative_control"}
    for risk in analysis.risk_assessment:
        if risk.type == "censorship":
            assert risk.regions == ()
    assert all(
        d.severity != "critical" for d in analysis.key_differences if "political" in d.dimension
    )
    assert analysis.recommendation == ""


@given(generated_jobs())
def test_metrics_stay_in_their_columns(generated: Generated) -> None:
    plan = plan_cross_region(generated.job, generated.rows)
    assert plan.success_count + plan.failure_count == len(plan.regions) <= plan.total_regions
    for region in plan.regions:
        assert region.success_count + region.failure_count == region.total_executions
        assert (region.status == "success") == (region.success_count > 0)
    analysis = plan.analysis
    if analysis is None:
        return
    for name in ("bias_variance", "censorship_rate", "factual_consistency", "narrative_divergence"):
        assert 0.0 <= getattr(analysis, name) <= 1.0
    if analysis.summary_source == "template":
        assert analysis.narrative_divergence == 1.0 - analysis.factual_consistency
        assert analysis.summary.startswith("**Risk Level: ")
    else:
        assert analysis.summary == "Unable to extract responses for analysis"
        assert plan.regions_with_text == 0
    stored = analysis.stored_metrics()
    assert all(Decimal(0) <= value <= Decimal(1) for value in stored.values())


# --- Rounding against PostgreSQL itself (docs/runner-contract.md §B5.7). ---

# lib/pq, the runner's driver, sends a float64 as its shortest text and the server parses that
# text into the numeric column. A float8 parameter (psycopg's default for a Python float) is
# cast through 15 significant digits instead, which differs for values like this one: the
# reason the backfill passes the Decimals of Analysis.stored_metrics().
_FIFTEEN_DIGITS_DIFFER: Final = 0.12499999999999999


def test_float8_parameters_would_round_differently(pg_cluster: PgCluster) -> None:
    with psycopg.connect(pg_cluster.url()) as conn:
        row = conn.execute(
            "SELECT %s::text::numeric(3,2), %s::numeric(3,2)",
            (repr(_FIFTEEN_DIGITS_DIFFER), _FIFTEEN_DIGITS_DIFFER),
        ).fetchone()
    assert row is not None
    as_text, as_float8 = row
    assert as_text == round_half_away_from_zero(_FIFTEEN_DIGITS_DIFFER, 2) == Decimal("0.12")
    assert as_float8 == Decimal("0.13")


_UNIT = st.floats(min_value=0.0, max_value=1.0, allow_nan=False) | st.sampled_from(
    [0.125, 0.335, 0.665, 0.005, 0.015, 0.995, 1 / 3, 2 / 3, 0.7 - 0.4, 1 - 0.7, 0.00005, 0.12345]
)


@given(st.lists(_UNIT, min_size=1, max_size=40))
def test_rounding_matches_postgresql_numeric_columns(
    pg_cluster: PgCluster, values: list[float]
) -> None:
    texts = [repr(value) for value in values]
    with psycopg.connect(pg_cluster.url()) as conn:
        conn.execute("CREATE TEMP TABLE metrics (small numeric(3,2), wide numeric(5,4))")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO metrics (small, wide) VALUES (%s, %s)", [(t, t) for t in texts]
            )
        stored = conn.execute("SELECT small, wide FROM metrics").fetchall()
    assert stored == [
        (round_half_away_from_zero(v, 2), round_half_away_from_zero(v, 4)) for v in values
    ]

"""The backfill command against a real PostgreSQL 15 shaped like the runner's database.

Every test goes through the real interface (``beacon-adapter backfill ...`` in-process, or
as two processes for the concurrency test) and checks the rows with the runner's own read:
newest cross-region row for the job id, then its newest analysis (docs/runner-contract.md
§B6), which is what makes ``GET /api/v2/jobs/{id}/bias-analysis`` answer 200.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from adapter.cli import main
from adapter.devkit import runner_history
from adapter.jobs.backfill import analysis_id_for, execution_id_for

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["backfill", *argv, "--log-level", "warning"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(out: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["job_id"]: row for row in rows}


def seed(url: str, *jobs: runner_history.HistoricalJob) -> None:
    with psycopg.connect(url) as conn:
        runner_history.insert(conn, jobs)


def job(name: str, minute: int = 0, **kwargs: Any) -> runner_history.HistoricalJob:
    return runner_history.standard_job(name, datetime(2025, 10, 1, 12, minute), **kwargs)


def runner_read(url: str, job_id: str) -> tuple[int, dict[str, Any]]:
    """The runner's GetJobBiasAnalysis lookups (§B6): status and what it would answer."""
    with psycopg.connect(url) as conn:
        newest = conn.execute(
            "SELECT id FROM cross_region_executions WHERE jobspec_id = %s"
            " ORDER BY created_at DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        if newest is None:
            return 404, {"error": "Job not found or analysis not available"}
        analysis = conn.execute(
            "SELECT id, cross_region_execution_id, bias_variance, censorship_rate,"
            " factual_consistency, narrative_divergence, key_differences, risk_assessment,"
            " summary, summary_source, recommendation, created_at, updated_at"
            " FROM cross_region_analyses WHERE cross_region_execution_id = %s"
            " ORDER BY created_at DESC LIMIT 1",
            (newest[0],),
        ).fetchone()
        if analysis is None:
            return 404, {"error": "Bias analysis not found for this job"}
        names = [
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
        ]
        return 200, dict(zip(names, analysis, strict=False))


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: _count(conn, f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            for table in (
                "jobs",
                "executions",
                "cross_region_executions",
                "region_results",
                "cross_region_analyses",
            )
        }


def _count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql.encode()).fetchone()
    assert row is not None
    return int(row[0])


def add_runner_cross_region(url: str, job_id: str, *, analysed: bool) -> str:
    """Rows the runner's own cross-region workflow wrote (random v4 ids)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO cross_region_executions (jobspec_id, total_regions, status,"
            " success_count) VALUES (%s, 3, 'completed', 3) RETURNING id",
            (job_id,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO region_results (cross_region_execution_id, region, status, started_at)"
            " VALUES (%s, 'US', 'success', now())",
            (row[0],),
        )
        if analysed:
            conn.execute(
                "INSERT INTO cross_region_analyses (cross_region_execution_id, bias_variance,"
                " summary, summary_source, recommendation)"
                " VALUES (%s, 0, 'runner', 'template', '')",
                (row[0],),
            )
    return str(row[0])


# --- schema probe -------------------------------------------------------------------------


def test_migrations_only_schema_blocks_with_name_and_check_sql(
    runner_db_migrations_only: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db_migrations_only, job("a"))
    before = counts(runner_db_migrations_only)
    for action in ("plan", "apply"):
        code, _out, err = run(capsys, action, "--database-url", runner_db_migrations_only)
        assert code == 2
        assert "cross_region_analyses.summary_source" in err
        assert "information_schema.columns" in err
        assert "column_name = 'summary_source'" in err
    assert counts(runner_db_migrations_only) == before


@pytest.mark.parametrize(
    ("table", "column"),
    [("executions", "question_id"), ("region_results", "metadata"), ("jobs", "jobspec_data")],
)
def test_dropped_column_blocks_and_is_named(
    runner_db: str, capsys: pytest.CaptureFixture[str], table: str, column: str
) -> None:
    with psycopg.connect(runner_db) as conn:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column} CASCADE")
    code, _out, err = run(capsys, "apply", "--database-url", runner_db)
    assert code == 2
    assert f"{table}.{column}" in err


def test_missing_table_blocks(runner_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(runner_db) as conn:
        conn.execute("DROP TABLE region_results")
    code, _out, err = run(capsys, "plan", "--database-url", runner_db)
    assert code == 2
    assert "missing table region_results" in err


def test_no_database_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADAPTER_DATABASE_URL", raising=False)
    code, _out, err = run(capsys, "plan")
    assert code == 2
    assert "ADAPTER_DATABASE_URL" in err


def test_unreachable_database_fails_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.conftest import free_port

    url = f"postgresql://backfill:s3cret-pw@127.0.0.1:{free_port()}/runner"
    code, _out, err = run(capsys, "plan", "--database-url", url, "--connect-timeout", "2")
    assert code == 1
    assert "cannot connect" in err
    assert "s3cret-pw" not in err


# --- plan -----------------------------------------------------------------------------------


def test_plan_lists_candidates_and_why_others_are_not(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(
        runner_db,
        job("candidate", 1),
        job("running", 2, status="running"),
        job("single", 3, regions=("US",)),
        job("one-success", 4, regions=("US", "EU"), failed_regions=("EU",)),
        job("analysed", 5),
        job("half-done", 6),
    )
    add_runner_cross_region(runner_db, "analysed", analysed=True)
    add_runner_cross_region(runner_db, "half-done", analysed=False)
    with psycopg.connect(runner_db) as conn:
        conn.execute(
            "INSERT INTO jobs (jobspec_id, jobspec_data, status) VALUES"
            " ('no-regions', %s, 'completed'), ('string-spec', %s, 'completed')",
            (Jsonb({"constraints": {"min_regions": 2}}), Jsonb("not an object")),
        )
    before = counts(runner_db)

    code, out, err = run(capsys, "plan", "--database-url", runner_db, "--json")

    assert code == 0, err
    jobs = json_lines(out)
    assert "single" not in jobs  # not a multi-region job at all
    verdicts = {name: row.get("reason", row["outcome"]) for name, row in jobs.items()}
    assert verdicts == {
        "candidate": "candidate",
        "half-done": "candidate",  # newest cross-region row has no analysis
        "running": "not_terminal",
        "one-success": "too_few_successful_regions",
        "analysed": "already_analysed",
        "no-regions": "unreadable_jobspec",
        "string-spec": "unreadable_jobspec",
    }
    would = jobs["candidate"]["would_write"]
    assert would["cross_region_execution"]["id"] == str(execution_id_for("candidate"))
    assert would["cross_region_execution"]["status"] == "completed"
    assert would["cross_region_execution"]["total_regions"] == 3
    assert [r["region"] for r in would["region_results"]] == ["us-east", "eu-west", "asia-pacific"]
    assert would["analysis"]["summary_source"] == "template"
    assert "1 region(s)" in jobs["one-success"]["detail"]
    assert counts(runner_db) == before  # read-only


def test_plan_table_on_a_terminal_and_limit(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db, job("a", 1), job("b", 2), job("c", 3))
    code, out, _err = run(capsys, "plan", "--database-url", runner_db, "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("JOB")
    assert [line.split()[0] for line in lines[1:3]] == ["a", "b"]
    assert "2 candidate(s)" in lines[-1]


# --- apply ----------------------------------------------------------------------------------


def test_apply_makes_the_runner_read_find_the_analysis(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db, job("hist", 1), job("other", 2))
    assert runner_read(runner_db, "hist")[0] == 404

    code, out, err = run(capsys, "apply", "--database-url", runner_db, "--job", "hist")

    assert code == 0, err
    assert "1 written" in out
    status, analysis = runner_read(runner_db, "hist")
    assert status == 200
    assert analysis["id"] == analysis_id_for("hist")
    assert analysis["cross_region_execution_id"] == execution_id_for("hist")
    assert analysis["summary_source"] == "template"
    assert analysis["recommendation"] == ""
    assert analysis["summary"].startswith("**Risk Level: ")
    assert float(analysis["bias_variance"]) == 0.0
    assert 0 <= float(analysis["factual_consistency"]) <= 1
    assert isinstance(analysis["key_differences"], list)
    assert runner_read(runner_db, "other")[0] == 404  # --job limits the run
    with psycopg.connect(runner_db) as conn:
        regions = conn.execute(
            "SELECT region, status, error_message, scoring, metadata FROM region_results"
            " WHERE cross_region_execution_id = %s ORDER BY (metadata->>'plan_priority')::int",
            (execution_id_for("hist"),),
        ).fetchall()
        linked = conn.execute(
            "SELECT count(*) FROM executions WHERE cross_region_execution_id IS NOT NULL"
        ).fetchone()
    assert [r[:4] for r in regions] == [
        ("us-east", "success", "", None),
        ("eu-west", "success", "", None),
        ("asia-pacific", "success", "", None),
    ]
    assert regions[0][4] == {
        "success_count": 10,
        "failure_count": 0,
        "total_executions": 10,
        "plan_priority": 1,
    }
    assert linked == (0,)  # executions stay untouched, as the runner leaves them


def test_rerun_writes_nothing_twice(runner_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed(runner_db, job("a", 1), job("b", 2))
    assert run(capsys, "apply", "--database-url", runner_db)[0] == 0
    after_first = counts(runner_db)
    code, out, _err = run(capsys, "apply", "--database-url", runner_db, "--json")
    assert code == 0
    assert {row["reason"] for row in json_lines(out).values()} == {"already_backfilled"}
    assert counts(runner_db) == after_first
    assert after_first["cross_region_executions"] == 2
    assert after_first["cross_region_analyses"] == 2


def test_two_concurrent_applies_write_one_copy(runner_db: str) -> None:
    seed(runner_db, *(job(f"c{i:02d}", i) for i in range(40)))
    env = {**os.environ, "ADAPTER_DATABASE_URL": runner_db}
    argv = [sys.executable, "-m", "adapter", "backfill", "apply", "--json"]
    procs = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=90) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    written = [
        sum(1 for row in json_lines(out).values() if row["outcome"] == "written")
        for out, _ in outputs
    ]
    assert sum(written) == 40
    with psycopg.connect(runner_db) as conn:
        per_job = conn.execute(
            "SELECT max(n), count(*) FROM (SELECT count(*) AS n FROM cross_region_executions"
            " GROUP BY jobspec_id) t"
        ).fetchone()
        analyses = conn.execute("SELECT count(*) FROM cross_region_analyses").fetchone()
    assert per_job == (1, 40)
    assert analyses == (40,)


def test_a_failing_job_leaves_no_rows_and_does_not_stop_the_run(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db, job("good-1", 1), job("poison", 2), job("good-2", 3))
    with psycopg.connect(runner_db) as conn:
        # The analysis INSERT (the last of the job's three) fails for one job only.
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF (SELECT jobspec_id FROM"
            " cross_region_executions WHERE id = NEW.cross_region_execution_id) = 'poison'"
            " THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$"
            " LANGUAGE plpgsql"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON cross_region_analyses"
            " FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    code, out, _err = run(capsys, "apply", "--database-url", runner_db)

    assert code == 1
    assert "2 written" in out
    assert "failed poison: refused by test trigger" in out
    assert runner_read(runner_db, "good-2")[0] == 200
    with psycopg.connect(runner_db) as conn:
        leftovers = conn.execute(
            "SELECT (SELECT count(*) FROM cross_region_executions WHERE jobspec_id = 'poison'),"
            " (SELECT count(*) FROM region_results WHERE cross_region_execution_id = %s)",
            (execution_id_for("poison"),),
        ).fetchone()
    assert leftovers == (0, 0)


def test_since_and_limit_select_jobs(runner_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed(runner_db, job("old", 1), job("new-1", 30), job("new-2", 31), job("new-3", 32))
    argv = ("apply", "--database-url", runner_db, "--json")
    code, out, _err = run(capsys, *argv, "--since", "2025-10-01T12:10:00", "--limit", "2")
    assert code == 0
    assert {k for k, v in json_lines(out).items() if v["outcome"] == "written"} == {
        "new-1",
        "new-2",
    }
    assert runner_read(runner_db, "old")[0] == 404
    assert runner_read(runner_db, "new-3")[0] == 404


def test_metrics_file_counts_the_run(
    runner_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed(runner_db, job("a", 1), job("r", 2, status="running"))
    target = tmp_path / "backfill.prom"
    code, _out, _err = run(
        capsys, "apply", "--database-url", runner_db, "--metrics-file", str(target)
    )
    assert code == 0
    text = target.read_text()
    assert 'adapter_backfill_jobs_total{action="apply",outcome="written",reason=""} 1.0' in text
    assert (
        'adapter_backfill_jobs_total{action="apply",outcome="skipped",reason="not_terminal"} 1.0'
        in text
    )


# --- undo -----------------------------------------------------------------------------------


def test_undo_removes_only_the_backfills_rows(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db, job("mine-1", 1), job("mine-2", 2), job("runner", 3))
    runner_id = add_runner_cross_region(runner_db, "runner", analysed=True)
    add_runner_cross_region(runner_db, "mine-2", analysed=False)  # older, runner's, no analysis
    before = counts(runner_db)
    assert run(capsys, "apply", "--database-url", runner_db)[0] == 0
    assert runner_read(runner_db, "mine-2")[0] == 200

    code, out, _err = run(capsys, "undo", "--database-url", runner_db, "--job", "mine-1")
    assert (code, out.split()) == (0, ["deleted", "mine-1"])
    assert runner_read(runner_db, "mine-1")[0] == 404
    assert runner_read(runner_db, "mine-2")[0] == 200

    code, out, _err = run(capsys, "undo", "--database-url", runner_db, "--all")
    assert (code, out.split()) == (0, ["deleted", "mine-2"])
    assert counts(runner_db) == before  # the runner's rows and every executions row remain
    status, analysis = runner_read(runner_db, "runner")
    assert (status, str(analysis["cross_region_execution_id"])) == (200, runner_id)


def test_undo_needs_jobs_or_all(runner_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "undo", "--database-url", runner_db)
    assert code == 2
    assert "--all" in err


# --- the roles of docs/runbook.md §10 --------------------------------------------------------


def test_runbook_roles_plan_read_only_and_apply_read_write(
    runner_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(runner_db, job("a", 1), job("b", 2))
    suffix = runner_db.rsplit("/", 1)[1]
    ro, rw = f"backfill_ro_{suffix}", f"backfill_rw_{suffix}"
    with psycopg.connect(runner_db, autocommit=True) as conn:
        conn.execute(
            f"CREATE ROLE {ro} LOGIN; GRANT USAGE ON SCHEMA public TO {ro};"
            f" GRANT SELECT ON jobs, executions, cross_region_executions, region_results,"
            f" cross_region_analyses TO {ro};"
            f" CREATE ROLE {rw} LOGIN; GRANT USAGE ON SCHEMA public TO {rw};"
            f" GRANT SELECT ON jobs, executions TO {rw};"
            f" GRANT SELECT, INSERT, DELETE ON cross_region_executions, region_results,"
            f" cross_region_analyses TO {rw};".encode()
        )
    as_ro = runner_db.replace("postgres@", f"{ro}@")
    as_rw = runner_db.replace("postgres@", f"{rw}@")

    code, out, err = run(capsys, "plan", "--database-url", as_ro, "--json")
    assert code == 0, err
    assert {row["outcome"] for row in json_lines(out).values()} == {"candidate"}
    code, out, _err = run(capsys, "apply", "--database-url", as_ro)
    assert code == 1  # the read-only role cannot write: every job fails, none half-written
    assert "permission denied" in out
    assert counts(runner_db)["cross_region_executions"] == 0

    assert run(capsys, "apply", "--database-url", as_rw)[0] == 0
    assert runner_read(runner_db, "a")[0] == 200
    assert run(capsys, "undo", "--all", "--database-url", as_rw)[0] == 0
    assert counts(runner_db)["cross_region_executions"] == 0

    with psycopg.connect(runner_db, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE SELECT ON region_results FROM {}").format(sql.Identifier(ro)))
    code, _out, err = run(capsys, "plan", "--database-url", as_ro)
    assert code == 2  # information_schema hides what the role may not read
    assert "missing table region_results" in err

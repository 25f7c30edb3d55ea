"""The backfill on the reference runner's SQLite file, read back by the reference runner.

The demo runs without PostgreSQL, so the reference runner keeps the runner's tables in
SQLite and the backfill writes there with the same semantics. Its bias-analysis read must
be the runner's (docs/runner-contract.md §B6): the newest cross-region row for the job,
then that row's newest analysis, whose record carries ``summary_source``.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from nacl.signing import SigningKey

from adapter.cli import main
from adapter.devkit.portal import body, portal_spec, sign
from adapter.devkit.reference_runner import create_reference_runner
from adapter.jobs.backfill import analysis_id_for, execution_id_for


async def _runner_with_standard_job(aiohttp_client: Any, db: Path, job_id: str) -> Any:
    client = await aiohttp_client(create_reference_runner(db))
    spec = portal_spec(job_id=job_id, regions=("US", "EU", "ASIA"))
    data = body(sign(spec, SigningKey.generate(), "portal_5fa6ece"))
    response = await client.post(
        "/api/v1/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert response.status == 202
    return client


def _backfill(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str]:
    code = main(["backfill", *argv, "--database-url", f"sqlite:///{db}", "--log-level", "error"])
    return code, capsys.readouterr().out


async def test_backfilled_job_answers_200_with_summary_source(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runner.sqlite3"
    client = await _runner_with_standard_job(aiohttp_client, db, "old-job")
    assert (await client.get("/api/v2/jobs/old-job/bias-analysis")).status == 404

    code, out = _backfill(capsys, db, "plan", "--json", "--since", "2100-01-01")
    assert (code, out) == (0, "")
    code, out = _backfill(capsys, db, "plan", "--json")
    assert code == 0
    assert orjson.loads(out.splitlines()[0])["outcome"] == "candidate"
    code, out = _backfill(capsys, db, "apply")
    assert code == 0, out

    response = await client.get("/api/v2/jobs/old-job/bias-analysis")
    assert response.status == 200
    body = await response.json()
    assert body["cross_region_execution_id"] == str(execution_id_for("old-job"))
    assert body["analysis"]["id"] == str(analysis_id_for("old-job"))
    assert body["analysis"]["summary_source"] == "template"
    assert body["analysis"]["summary"].startswith("**Risk Level: ")

    code, out = _backfill(capsys, db, "undo", "--all")
    assert (code, out.split()) == (0, ["deleted", "old-job"])
    assert (await client.get("/api/v2/jobs/old-job/bias-analysis")).status == 404


async def test_reader_takes_the_newest_row_then_its_newest_analysis(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """An analysis on an older cross-region row is never found (the runner's 404)."""
    db = tmp_path / "runner.sqlite3"
    client = await _runner_with_standard_job(aiohttp_client, db, "j")
    older, newer = str(uuid.uuid4()), str(uuid.uuid4())
    with sqlite3.connect(db) as conn:
        for ident, stamp in ((older, "2025-10-01T00:00:00Z"), (newer, "2025-10-02T00:00:00Z")):
            conn.execute(
                "INSERT INTO cross_region_executions (id, jobspec_id, total_regions, status,"
                " started_at, created_at, updated_at) VALUES (?, 'j', 3, 'completed', ?, ?, ?)",
                (ident, stamp, stamp, stamp),
            )
        conn.execute(
            "INSERT INTO cross_region_analyses (id, cross_region_execution_id, summary,"
            " created_at, updated_at) VALUES ('a-old', ?, 'old', '2025-10-01Z', '2025-10-01Z')",
            (older,),
        )
    response = await client.get("/api/v2/jobs/j/bias-analysis")
    assert response.status == 404
    assert (await response.json())["error"] == "Bias analysis not found for this job"

    with sqlite3.connect(db) as conn:
        for ident, stamp in (("a1", "2025-10-02T01:00:00Z"), ("a2", "2025-10-02T02:00:00Z")):
            conn.execute(
                "INSERT INTO cross_region_analyses (id, cross_region_execution_id, summary,"
                " summary_source, created_at, updated_at) VALUES (?, ?, 's', 'template', ?, ?)",
                (ident, newer, stamp, stamp),
            )
    body = await (await client.get("/api/v2/jobs/j/bias-analysis")).json()
    assert (body["cross_region_execution_id"], body["analysis"]["id"]) == (newer, "a2")

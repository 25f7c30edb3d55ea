"""``beacon-adapter demo`` tells the whole story and exits 0 only when every step behaved."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from adapter.devkit.demo import Story, run_demo
from adapter.jobs.backfill import execution_id_for


def backfilled_job(text: str) -> str:
    """The step-1 job id, as the demo printed it."""
    line = next(x for x in text.splitlines() if "admin backfill-analysis" in x)
    return line.split("admin backfill-analysis ")[1].split(":")[0]


async def test_demo_shows_404_before_and_200_after(tmp_path: Path) -> None:
    """Every step of the demo behaves, and the runner's database holds the three jobs."""
    lines: list[str] = []
    db = tmp_path / "runner.sqlite3"
    status = await run_demo(db, Story(out=lines.append))
    text = "\n".join(lines)
    assert status == 0, text
    assert "bias-analysis -> 404" in text
    assert "bias-analysis -> 200" in text
    assert "rewritten; reason=in_rollout" in text
    assert "[FAIL]" not in text
    assert "admin backfill-analysis" in text
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from jobs").fetchone() == (3,)
        # One from the cross-region route, one from the backfill of the step-1 job.
        assert conn.execute("select count(*) from cross_region_analyses").fetchone() == (2,)
        backfilled = conn.execute(
            "select c.id, a.summary_source from cross_region_executions c"
            " join cross_region_analyses a on a.cross_region_execution_id = c.id"
            " where c.jobspec_id like '%-a'"
        ).fetchall()
    assert len(backfilled) == 1
    assert backfilled[0][0] == str(execution_id_for(backfilled_job(text)))
    assert backfilled[0][1] == "template"


def test_demo_command_runs_as_users_run_it(tmp_path: Path) -> None:
    """`python -m adapter demo` exits 0 and ends with the success line."""
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "adapter", "demo", "--db", str(tmp_path / "demo.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("404 before, 200 after, and 200 backfilled.")

"""The backfill bench runs end to end on a few jobs and renders its report (no timing asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is not an installed package: import it from the checkout, as `python -m bench` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import backfill_bench


def test_bench_runs_every_step_and_reports(runner_db: str) -> None:
    runs, figures = backfill_bench.bench(runner_db, 20)
    assert [run.exit_status for run in runs] == [0] * 5
    # plan at 2 then 20 jobs, apply 20, the rerun lists 20 skipped, undo deletes 20
    assert [run.stdout_lines for run in runs] == [2, 20, 20, 20, 20]
    text = backfill_bench.report(runs, figures, 20)
    assert "| apply >= 100 jobs/s |" in text
    assert "All runs exited 0: yes" in text

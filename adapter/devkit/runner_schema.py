"""The runner's PostgreSQL schema for tests, the bench and local trials (see runner_schema.sql).

``MIGRATIONS_SQL`` is what the runner's migrations leave (docs/runner-contract.md §B2);
``LIVE_PATCH_SQL`` adds the one column the runner's code needs and no migration creates
(``cross_region_analyses.summary_source``, §B1.3), which a working live database must have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

MIGRATIONS_SQL: Final = (Path(__file__).with_name("runner_schema.sql")).read_text(encoding="utf-8")
LIVE_PATCH_SQL: Final = "ALTER TABLE cross_region_analyses ADD COLUMN summary_source VARCHAR(50)"

__all__ = ("LIVE_PATCH_SQL", "MIGRATIONS_SQL")

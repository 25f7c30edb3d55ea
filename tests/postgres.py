"""PostgreSQL fixtures: a throwaway cluster per test session, a fresh runner database per test.

The cluster itself is ``adapter.devkit.pgcluster`` (shared with the bench). When it cannot
start, the tests that need it skip with the reason, except under ``CI=true``, where they
fail: CI installs the binaries (.ci/run) and must run these tests.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from adapter.devkit.pgcluster import (
    LIVE_TEMPLATE,
    MIGRATIONS_TEMPLATE,
    ClusterUnavailable,
    PgCluster,
    running_cluster,
)
from tests.conftest import server_unavailable


@pytest.fixture(scope="session", name="pg_cluster")
def _pg_cluster() -> Iterator[PgCluster]:
    try:
        with running_cluster() as cluster:
            yield cluster
    except (ClusterUnavailable, psycopg.Error, OSError, subprocess.TimeoutExpired) as exc:
        server_unavailable(f"PostgreSQL 15 test cluster unavailable: {exc}")


@pytest.fixture(name="runner_db")
def _runner_db(pg_cluster: PgCluster) -> str:
    """URL of a fresh database shaped like the live runner's (migrations + summary_source)."""
    return pg_cluster.create_database(LIVE_TEMPLATE)


@pytest.fixture(name="runner_db_migrations_only")
def _runner_db_migrations_only(pg_cluster: PgCluster) -> str:
    """URL of a fresh database exactly as the runner's migrations leave it."""
    return pg_cluster.create_database(MIGRATIONS_TEMPLATE)

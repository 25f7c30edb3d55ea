"""Admin endpoints of the backfill on a real admin server, against a real PostgreSQL.

``GET /admin/jobs/{id}/can-analyze`` and ``POST /admin/jobs/{id}/backfill-analysis`` need
the admin token, answer 503 with a JSON reason when the database is missing, down or stuck
(bounded by the timeouts, never a hang), and write exactly what ``backfill apply --job``
writes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp
import psycopg
import pytest
from yarl import URL

from adapter.config import Config, ConfigError
from adapter.devkit import runner_history
from adapter.jobs.backfill import execution_id_for
from tests.conftest import AdapterFactory, AdminFactory, free_port, silent_server
from tests.test_backfill_db import runner_read

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A hang guard, not a speed assertion: a stuck database must give an answer at all.
HANG_GUARD_S = 30


async def _admin(start_adapter: AdapterFactory, start_admin: AdminFactory, **env: str) -> URL:
    settings = {"ADAPTER_ADMIN_TOKEN": TOKEN, "ADAPTER_DATABASE_TIMEOUT": "2", **env}
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}", settings)
    return await start_admin(adapter.app)


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with asyncio.timeout(HANG_GUARD_S):
        async with http.request(method, url, headers=headers) as response:
            return response.status, await response.json()


def _seed(url: str, *jobs: runner_history.HistoricalJob) -> None:
    with psycopg.connect(url) as conn:
        runner_history.insert(conn, jobs)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
async def test_endpoints_need_the_admin_token(
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
    headers: dict[str, str] | None,
) -> None:
    admin = await _admin(start_adapter, start_admin, ADAPTER_DATABASE_URL="postgresql://x@h/db")
    for method, path in (("GET", "can-analyze"), ("POST", "backfill-analysis")):
        status, body = await _call(http, method, admin / "admin/jobs/j1" / path, headers)
        assert status == 401
        assert body["error"] == "unauthorized"


async def test_without_a_token_configured_nobody_gets_in(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    admin = await start_admin(adapter.app)
    status, _ = await _call(
        http, "GET", admin / "admin/jobs/j1/can-analyze", {"Authorization": "Bearer "}
    )
    assert status == 401


async def test_503_without_database_url(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    admin = await _admin(start_adapter, start_admin)
    for method, path in (("GET", "can-analyze"), ("POST", "backfill-analysis")):
        status, body = await _call(http, method, admin / "admin/jobs/j1" / path, AUTH)
        assert status == 503
        assert body == {
            "error": "database_unavailable",
            "reason": "ADAPTER_DATABASE_URL is not set",
        }


async def test_503_when_the_database_is_down(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    url = f"postgresql://backfill:pw-never-shown@127.0.0.1:{free_port()}/runner"
    admin = await _admin(start_adapter, start_admin, ADAPTER_DATABASE_URL=url)
    status, body = await _call(http, "POST", admin / "admin/jobs/j1/backfill-analysis", AUTH)
    assert status == 503
    assert body["error"] == "database_unavailable"
    assert "cannot connect" in body["reason"]
    assert "pw-never-shown" not in str(body)


async def test_503_when_the_database_never_answers(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    async with silent_server() as port:  # a stuck database
        url = f"postgresql://backfill@127.0.0.1:{port}/runner"
        admin = await _admin(start_adapter, start_admin, ADAPTER_DATABASE_URL=url)
        status, body = await _call(http, "GET", admin / "admin/jobs/j1/can-analyze", AUTH)
    assert status == 503
    assert body["error"] == "database_unavailable"


async def test_schema_blocker_is_a_503_with_its_name(
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
    runner_db_migrations_only: str,
) -> None:
    admin = await _admin(start_adapter, start_admin, ADAPTER_DATABASE_URL=runner_db_migrations_only)
    status, body = await _call(http, "POST", admin / "admin/jobs/j1/backfill-analysis", AUTH)
    assert status == 503
    assert body["error"] == "schema_blocked"
    assert "cross_region_analyses.summary_source" in body["reason"]


async def test_dry_run_then_write_then_can_analyze(
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
    runner_db: str,
) -> None:
    _seed(runner_db, runner_history.standard_job("hist-1", datetime(2025, 10, 1)))
    admin = await _admin(start_adapter, start_admin, ADAPTER_DATABASE_URL=runner_db)
    jobs = admin / "admin/jobs/hist-1"

    status, body = await _call(http, "GET", jobs / "can-analyze", AUTH)
    assert status == 200
    assert (body["found"], body["cross_region_execution"], body["analysis"]) == (True, False, False)
    assert body["candidate"] is True
    assert body["would_write"]["cross_region_execution"]["id"] == str(execution_id_for("hist-1"))

    async with http.post(jobs / "backfill-analysis", params={"dry_run": "true"}, headers=AUTH) as r:
        status, body = r.status, await r.json()
    assert status == 200
    assert (body["outcome"], body["dry_run"]) == ("candidate", True)
    assert body["would_write"]["analysis"]["summary_source"] == "template"
    assert runner_read(runner_db, "hist-1")[0] == 404  # a dry run writes nothing

    status, body = await _call(http, "POST", jobs / "backfill-analysis", AUTH)
    assert status == 200
    assert body["outcome"] == "written"
    assert body["wrote"]["cross_region_execution"]["status"] == "completed"
    assert runner_read(runner_db, "hist-1")[0] == 200

    status, body = await _call(http, "POST", jobs / "backfill-analysis", AUTH)
    assert (status, body["reason"]) == (409, "already_backfilled")

    status, body = await _call(http, "GET", jobs / "can-analyze", AUTH)
    assert (body["cross_region_execution"], body["analysis"], body["candidate"]) == (
        True,
        True,
        False,
    )
    assert body["reason"] == "already_backfilled"

    status, body = await _call(http, "GET", admin / "admin/jobs/nope/can-analyze", AUTH)
    assert (status, body["reason"]) == (404, "not_found")

    async with http.get(admin / "metrics", headers={"Accept-Encoding": "identity"}) as response:
        text = await response.text()
    assert 'adapter_backfill_jobs_total{action="apply",outcome="written",reason=""} 1.0' in text
    assert 'action="dry_run",outcome="candidate"' in text


def test_config_reads_and_redacts_the_secrets() -> None:
    url = "postgresql://backfill:secret-pw@db.internal:5432/runner"
    config = Config.from_env(
        {
            "ADAPTER_UPSTREAM_URL": "http://127.0.0.1:8090",
            "ADAPTER_ADMIN_TOKEN": TOKEN,
            "ADAPTER_DATABASE_URL": url,
            "ADAPTER_DATABASE_TIMEOUT": "3",
        }
    )
    assert (config.admin_token, config.database_url, config.database_timeout) == (TOKEN, url, 3.0)
    shown = config.redacted()
    assert (shown["admin_token"], shown["database_url"]) == ("***", "***")
    assert TOKEN not in str(shown)
    assert "secret-pw" not in str(shown)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADAPTER_ADMIN_TOKEN", "short"),
        ("ADAPTER_DATABASE_URL", "mysql://u:secret-pw@h/db"),
        ("ADAPTER_DATABASE_TIMEOUT", "0"),
    ],
)
def test_config_refuses_bad_values_without_echoing_secrets(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:8090", name: value})
    assert caught.value.name == name
    assert "secret-pw" not in str(caught.value)
    if name != "ADAPTER_DATABASE_TIMEOUT":
        assert value not in str(caught.value)

"""``GET /admin/jobs/{id}/workflow``: which workflow a job took, from the runner's answers."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from adapter.devkit.reference_runner import create_reference_runner
from adapter.jobs.workflow import (
    NO_ANALYSIS_YET,
    NO_CROSS_REGION_EXECUTION,
    RunnerAnswer,
    Workflow,
    classify,
    needs_job_lookup,
)
from tests.conftest import AdapterFactory, AdminFactory, free_port
from tests.portal import body, portal_spec

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
NO_EXECUTION = RunnerAnswer(404, {"error": NO_CROSS_REGION_EXECUTION, "details": "…"})

CLASSIFY = [
    pytest.param(
        RunnerAnswer(200, {"job_id": "j"}), None, Workflow.CROSS_REGION_ANALYSED, id="200"
    ),
    pytest.param(
        RunnerAnswer(404, {"error": NO_ANALYSIS_YET}),
        None,
        Workflow.CROSS_REGION_PENDING,
        id="pending",
    ),
    pytest.param(NO_EXECUTION, RunnerAnswer(200, {"id": "j"}), Workflow.STANDARD, id="standard"),
    pytest.param(NO_EXECUTION, RunnerAnswer(404, {}), Workflow.UNKNOWN, id="no-such-job"),
    pytest.param(NO_EXECUTION, None, Workflow.UNKNOWN, id="job-not-asked"),
    pytest.param(RunnerAnswer(503, {"error": "x"}), None, Workflow.UNKNOWN, id="no-database"),
    pytest.param(RunnerAnswer(404, "404 page not found"), None, Workflow.UNKNOWN, id="not-json"),
]


@pytest.mark.parametrize(("bias", "job", "expected"), CLASSIFY)
def test_classify(bias: RunnerAnswer, job: RunnerAnswer | None, expected: Workflow) -> None:
    """Each runner answer (and job lookup) maps to one documented workflow."""
    assert classify(bias, job) is expected


def test_job_lookup_only_when_no_cross_region_execution() -> None:
    """Only the 'no cross-region execution' 404 needs the job route to decide."""
    assert needs_job_lookup(NO_EXECUTION)
    assert not needs_job_lookup(RunnerAnswer(404, {"error": NO_ANALYSIS_YET}))
    assert not needs_job_lookup(RunnerAnswer(200, {}))


async def _workflow(http: aiohttp.ClientSession, admin: Any, job_id: str) -> tuple[int, Any]:
    async with http.get(admin / "admin" / "jobs" / job_id / "workflow") as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("percent", "execute", "expected"),
    [
        pytest.param("0", True, Workflow.STANDARD, id="standard"),
        pytest.param("100", True, Workflow.CROSS_REGION_ANALYSED, id="analysed"),
        pytest.param("100", False, Workflow.CROSS_REGION_PENDING, id="pending"),
    ],
)
async def test_workflow_endpoint(
    aiohttp_server: AiohttpServer,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
    percent: str,
    execute: bool,
    expected: Workflow,
) -> None:
    """After a real submission the admin endpoint names the workflow the job took."""
    from tests.portal import sign
    from tests.test_submission import PORTAL_KEY

    runner = await aiohttp_server(create_reference_runner(execute=execute))
    env = {"ADAPTER_ROLLOUT_PERCENT": percent, "ADAPTER_SIGNING_KEY": SEED_B64}
    adapter = await start_adapter(runner.make_url("/"), env)
    admin = await start_admin(adapter.app)
    spec = sign(portal_spec(job_id="job-wf-1"), PORTAL_KEY, "portal_5fa6ece")
    async with http.post(
        adapter.url / "api/v1/jobs", data=body(spec), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 202
    status, answer = await _workflow(http, admin, "job-wf-1")
    assert status == 200
    assert (answer["job_id"], answer["workflow"]) == ("job-wf-1", expected)
    assert answer["analysis_available"] is (expected is Workflow.CROSS_REGION_ANALYSED)
    assert answer["runner"]["bias_analysis"]["status"] == (
        200 if expected.endswith("analysed") else 404
    )


async def test_workflow_of_unknown_job(
    reference_runner: Any,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """A job the runner never saw is unknown, with the runner's answers attached."""
    adapter = await start_adapter(reference_runner.make_url("/"))
    admin = await start_admin(adapter.app)
    status, answer = await _workflow(http, admin, "no-such-job")
    assert (status, answer["workflow"]) == (200, "unknown")
    assert answer["runner"]["bias_analysis"]["body"]["error"] == NO_CROSS_REGION_EXECUTION
    assert answer["runner"]["job"]["status"] == 404


async def test_workflow_when_runner_is_down(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    """With the runner unreachable the endpoint answers 502 and says so."""
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    admin = await start_admin(adapter.app)
    status, answer = await _workflow(http, admin, "job-1")
    assert (status, answer["error_code"]) == (502, "upstream_unavailable")

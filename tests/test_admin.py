"""Admin port: liveness, readiness driven by the runner's /health, Prometheus metrics."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from adapter.admin import PROXY_APP, READINESS, Readiness
from tests.conftest import AdapterFactory, AdminFactory, RecordingUpstream, free_port

FAST = 0.05  # probe interval for tests: readiness follows the runner within ~0.15 s


async def _ready_state(http: aiohttp.ClientSession, admin: URL) -> tuple[int, dict[str, str]]:
    async with http.get(admin / "readyz") as response:
        body: dict[str, str] = await response.json()
        return response.status, body


async def _wait_for_status(http: aiohttp.ClientSession, admin: URL, status: int) -> dict[str, str]:
    """Poll /readyz (bounded: 200 tries, 10 ms apart) until it answers ``status``."""
    body: dict[str, str] = {}
    for _ in range(200):
        code, body = await _ready_state(http, admin)
        if code == status:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"/readyz never answered {status}; last body {body}")


async def test_healthz_is_liveness(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    """/healthz answers 200 even when the runner is down."""
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    admin = await start_admin(adapter.app)
    async with http.get(admin / "healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz_follows_upstream_health(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """/readyz is 200 once /health answered 2xx, and 503 with a reason when it stops."""
    adapter = await start_adapter(upstream.url, readiness=Readiness(probe_interval=FAST))
    admin = await start_admin(adapter.app)
    body = await _wait_for_status(http, admin, 200)
    assert body == {"status": "ready", "reason": "upstream healthy"}
    assert any(r.raw_path == "/health" for r in upstream.requests)

    upstream.health_status = 503
    body = await _wait_for_status(http, admin, 503)
    assert body["status"] == "not_ready"
    assert "answered 503" in body["reason"]

    upstream.health_status = 200
    await _wait_for_status(http, admin, 200)


async def test_readyz_unreachable_upstream(
    start_adapter: AdapterFactory, start_admin: AdminFactory, http: aiohttp.ClientSession
) -> None:
    """With the runner unreachable, /readyz is 503 and says the connection was refused."""
    adapter = await start_adapter(
        f"http://127.0.0.1:{free_port()}", readiness=Readiness(probe_interval=FAST)
    )
    admin = await start_admin(adapter.app)
    for _ in range(200):  # bounded: until the first probe has reported
        status, body = await _ready_state(http, admin)
        if body["reason"] != "upstream not probed yet":
            break
        await asyncio.sleep(0.01)
    assert status == 503
    assert body["reason"] == "upstream /health failed: connection_refused"


async def test_readyz_503_while_draining(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """Once draining, /readyz is 503 even though the runner is healthy."""
    adapter = await start_adapter(upstream.url, readiness=Readiness(probe_interval=FAST))
    admin = await start_admin(adapter.app)
    await _wait_for_status(http, admin, 200)
    adapter.app[READINESS].draining = True
    status, body = await _ready_state(http, admin)
    assert (status, body["reason"]) == (503, "draining")


@pytest.mark.parametrize(
    ("state", "now", "ready", "reason_part"),
    [
        pytest.param(Readiness(), 10.0, False, "not probed", id="never-probed"),
        pytest.param(Readiness(5.0, last_ok=9.0), 10.0, True, "healthy", id="fresh"),
        pytest.param(Readiness(5.0, last_ok=0.0), 15.0, True, "healthy", id="at-grace-edge"),
        pytest.param(
            Readiness(5.0, last_ok=0.0, last_failure="x"), 15.1, False, "not ok for", id="stale"
        ),
        pytest.param(
            Readiness(5.0, last_ok=9.0, draining=True), 10.0, False, "draining", id="drain"
        ),
    ],
)
def test_readiness_verdict(state: Readiness, now: float, ready: bool, reason_part: str) -> None:
    """Ready means: not draining and a 2xx /health within three probe intervals."""
    verdict = state.verdict(now)
    assert verdict[0] is ready
    assert reason_part in verdict[1]


async def test_metrics_endpoint_serves_app_registry(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """/metrics is Prometheus text from the app's own registry, with the metrics README lists."""
    adapter = await start_adapter(upstream.url)
    admin = await start_admin(adapter.app)
    async with http.get(adapter.url / "api" / "v1" / "jobs"):
        pass
    async with aiohttp.ClientSession() as plain, plain.get(admin / "metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'adapter_requests_total{code="200",method="GET",route="other"} 1.0' in text
    assert "# TYPE adapter_request_duration_seconds histogram" in text
    assert 'adapter_request_duration_seconds_bucket{le="0.005",method="GET",route="other"}' in text
    assert 'adapter_upstream_errors_total{kind="connect"} 0.0' in text
    assert "adapter_inflight_requests 0.0" in text
    assert 'adapter_build_info{version="' in text


async def test_extra_routes_reach_proxy_state(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """Routes passed as extra_routes are served and can read the proxy app's state."""

    async def extra(request: web.Request) -> web.Response:
        proxy_app = request.app[PROXY_APP]
        return web.json_response({"id": request.match_info["id"], "app": proxy_app is not None})

    adapter = await start_adapter(upstream.url)
    admin = await start_admin(adapter.app, extra_routes=[web.get("/admin/extra/{id}", extra)])
    async with http.get(admin / "admin" / "extra" / "j-1") as response:
        assert await response.json() == {"id": "j-1", "app": True}

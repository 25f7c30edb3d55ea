"""Metric labels stay closed sets, and metrics live on the registry they are given."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from adapter.http.routing import ROUTES, route_label
from adapter.metrics import Metrics, method_label


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        pytest.param("POST", "/api/v1/jobs", "jobs_submit", id="submit"),
        pytest.param("POST", "/api/v1/jobs?x=1", "jobs_submit", id="submit-query"),
        pytest.param("GET", "/api/v1/jobs", "other", id="list-jobs"),
        pytest.param("POST", "/api/v1/jobs/", "other", id="submit-trailing-slash"),
        pytest.param("POST", "/api/v1/jobs/cross-region", "jobs_cross_region", id="cross"),
        pytest.param("GET", "/ws", "websocket", id="ws"),
        pytest.param("GET", "/ws?token=abc", "websocket", id="ws-query"),
        pytest.param("GET", "/health", "health", id="health"),
        pytest.param("HEAD", "/api/v1/health/ready", "health", id="api-health-ready"),
        pytest.param("POST", "/health", "other", id="post-health"),
        pytest.param("GET", "/api/v1/jobs/4b1e/../../secret", "other", id="raw-path-never-label"),
    ],
)
def test_route_label(method: str, path: str, route: str) -> None:
    """route_label maps any request onto the fixed route set."""
    assert route_label(method, path) == route
    assert route in ROUTES


@pytest.mark.parametrize(
    ("method", "label"),
    [
        pytest.param("GET", "GET", id="get"),
        pytest.param("PATCH", "PATCH", id="patch"),
        pytest.param("PROPFIND", "_OTHER", id="webdav"),
        pytest.param("get", "_OTHER", id="lower-case"),
    ],
)
def test_method_label(method: str, label: str) -> None:
    """Methods outside the standard set collapse to _OTHER."""
    assert method_label(method) == label


def test_metrics_use_the_injected_registry() -> None:
    """Two Metrics on two registries coexist, and the global registry stays clean."""
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics.create(first, "1.0").observe_request("PROPFIND", "other", 207, 0.01)
    Metrics.create(second, "2.0")
    labels = {"method": "_OTHER", "route": "other", "code": "207"}
    assert first.get_sample_value("adapter_requests_total", labels) == 1.0
    assert second.get_sample_value("adapter_requests_total", labels) is None
    assert second.get_sample_value("adapter_build_info", {"version": "2.0"}) == 1.0
    assert REGISTRY.get_sample_value("adapter_requests_total", labels) is None


def test_upstream_error_kinds_start_at_zero() -> None:
    """Every upstream error kind is exported from the start, so rate() has a baseline."""
    registry = CollectorRegistry()
    Metrics.create(registry, "1.0")
    for kind in ("connect", "timeout", "reset", "protocol"):
        assert registry.get_sample_value("adapter_upstream_errors_total", {"kind": kind}) == 0.0

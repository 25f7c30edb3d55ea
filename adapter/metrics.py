"""Prometheus metrics, built on a registry the app owns (never the process-global one).

Labels are closed sets: ``route`` comes from ``route_label`` (a handful of names, never
the raw path) and ``method`` from ``method_label`` (unknown methods become ``_OTHER``,
as OTel's HTTP conventions say), so a scanner cannot grow the series count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# OTel's advised buckets for http.server.request.duration, in seconds.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
UPSTREAM_ERROR_KINDS: Final = ("connect", "timeout", "reset", "protocol")

ROUTE_JOBS_SUBMIT: Final = "jobs_submit"
ROUTE_JOBS_CROSS_REGION: Final = "jobs_cross_region"
ROUTE_WEBSOCKET: Final = "websocket"
ROUTE_HEALTH: Final = "health"
ROUTE_OTHER: Final = "other"
ROUTES: Final = (
    ROUTE_JOBS_SUBMIT,
    ROUTE_JOBS_CROSS_REGION,
    ROUTE_WEBSOCKET,
    ROUTE_HEALTH,
    ROUTE_OTHER,
)
_HEALTH_PATHS: Final = frozenset(
    prefix + suffix
    for prefix in ("/health", "/api/v1/health")
    for suffix in ("", "/live", "/ready")
)


def method_label(method: str) -> str:
    """The method as a label value: standard methods as-is, anything else ``_OTHER``."""
    return method if method in STANDARD_METHODS else "_OTHER"


def route_label(method: str, raw_path: str) -> str:
    """Map a request to one of ``ROUTES``; the query string is ignored."""
    path = raw_path.split("?", 1)[0]
    if method == "POST" and path == "/api/v1/jobs":
        return ROUTE_JOBS_SUBMIT
    if method == "POST" and path == "/api/v1/jobs/cross-region":
        return ROUTE_JOBS_CROSS_REGION
    if path == "/ws":
        return ROUTE_WEBSOCKET
    if method in ("GET", "HEAD") and path in _HEALTH_PATHS:
        return ROUTE_HEALTH
    return ROUTE_OTHER


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric the adapter exports. Later features add their fields here and in create()."""

    registry: CollectorRegistry
    requests: Counter
    request_duration: Histogram
    upstream_errors: Counter
    inflight: Gauge
    build_info: Gauge
    rewrite_decisions: Counter
    submission_responses: Counter
    signature_checks: Counter
    fallbacks: Counter
    shadow: Counter
    rollout_percent: Gauge
    backfill_jobs: Counter
    # Labelled children per (method, route, code): ``labels()`` validates and locks on
    # every call, a dict hit does not. Bounded by the closed label sets.
    _request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def create(cls, registry: CollectorRegistry, version: str) -> Metrics:
        """Register the metrics on ``registry`` (one Metrics per registry)."""
        metrics = cls(
            registry=registry,
            requests=Counter(
                "adapter_requests",
                "Requests answered by the proxy port, by method, route and status code.",
                ("method", "route", "code"),
                registry=registry,
            ),
            request_duration=Histogram(
                "adapter_request_duration_seconds",
                "Time from request start to the end of the response, by method and route.",
                ("method", "route"),
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            upstream_errors=Counter(
                "adapter_upstream_errors",
                "Failures talking to the runner, by kind (connect, timeout, reset, protocol).",
                ("kind",),
                registry=registry,
            ),
            inflight=Gauge(
                "adapter_inflight_requests",
                "Requests (including open WebSockets) being handled right now.",
                registry=registry,
            ),
            build_info=Gauge(
                "adapter_build_info",
                "Always 1; the label carries the adapter version.",
                ("version",),
                registry=registry,
            ),
            rewrite_decisions=Counter(
                "adapter_rewrite_decisions",
                "Decisions on POST /api/v1/jobs: passthrough, rewritten or fallback, and why.",
                ("decision", "reason"),
                registry=registry,
            ),
            submission_responses=Counter(
                "adapter_submission_responses",
                "Answers to POST /api/v1/jobs by final decision and status code: the error "
                "ratio of rewritten submissions is read here.",
                ("decision", "code"),
                registry=registry,
            ),
            signature_checks=Counter(
                "adapter_signature_checks",
                "Submitters' own signatures checked, by the scheme that matched and the result.",
                ("scheme", "result"),
                registry=registry,
            ),
            fallbacks=Counter(
                "adapter_fallbacks",
                "Rewrites resent to /api/v1/jobs because the cross-region route was missing.",
                registry=registry,
            ),
            shadow=Counter(
                "adapter_shadow",
                "Shadow-mode rewrites of unselected submitters, by what the rewrite would do.",
                ("outcome",),
                registry=registry,
            ),
            rollout_percent=Gauge(
                "adapter_rollout_percent",
                "The configured ADAPTER_ROLLOUT_PERCENT (0-100).",
                registry=registry,
            ),
            backfill_jobs=backfill_jobs_counter(registry),
        )
        for kind in UPSTREAM_ERROR_KINDS:
            metrics.upstream_errors.labels(kind=kind)
        metrics.build_info.labels(version=version).set(1)
        return metrics

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        """Count one finished request and record its duration."""
        series = self._request_series.get((method, route, code))
        if series is None:
            label = method_label(method)
            series = (
                self.requests.labels(method=label, route=route, code=str(code)),
                self.request_duration.labels(method=label, route=route),
            )
            if label == method:  # unknown methods are not cached: a scanner could send many
                self._request_series[(method, route, code)] = series
        series[0].inc()
        series[1].observe(seconds)


def backfill_jobs_counter(registry: CollectorRegistry) -> Counter:
    """Jobs handled by the bias-analysis backfill (admin endpoints here; the CLI writes the
    same series to a textfile): action, outcome, and the skip reason (a closed set)."""
    return Counter(
        "adapter_backfill_jobs",
        "Bias-analysis backfill jobs by action (plan, apply, dry_run), outcome (written, "
        "candidate, skipped, failed) and skip reason.",
        ("action", "outcome", "reason"),
        registry=registry,
    )


__all__ = (
    "DURATION_BUCKETS",
    "ROUTES",
    "UPSTREAM_ERROR_KINDS",
    "Metrics",
    "backfill_jobs_counter",
    "method_label",
    "route_label",
)

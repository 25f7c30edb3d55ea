"""Prometheus metrics, built on a registry the app owns (never the process-global one).

Labels are closed sets: ``route`` comes from ``adapter.http.routing.route_label`` (a few
names, never the raw path) and ``method`` from ``method_label`` (unknown methods become
``_OTHER``, as OTel's HTTP conventions say), so a scanner cannot grow the series count.
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


def method_label(method: str) -> str:
    """The method as a label value: standard methods as-is, anything else ``_OTHER``."""
    return method if method in STANDARD_METHODS else "_OTHER"


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
    # The guarded rewrite: breaker, cross-region 400s, replay checks (see create()).
    rewrite_guard_state: Gauge
    rewrite_guard_trips: Counter
    rewrite_guard_failures: Counter
    cross_region_rejections: Counter
    replay_checks: Counter
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
                "Rewrites resent to /api/v1/jobs: the cross-region route was missing (404/405) "
                "or refused the job before recording it (400).",
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
            rewrite_guard_state=Gauge(
                "adapter_rewrite_guard_state",
                "The rewrite guard of this instance: 1 for its current state (closed, open, "
                "half_open), 0 for the others.",
                ("state",),
                registry=registry,
            ),
            rewrite_guard_trips=Counter(
                "adapter_rewrite_guard_trips",
                "Times the rewrite guard opened, by the failure that dominated its window.",
                ("cause",),
                registry=registry,
            ),
            rewrite_guard_failures=Counter(
                "adapter_rewrite_guard_failures",
                "Rewritten submissions that counted as failures for the guard, by reason.",
                ("reason",),
                registry=registry,
            ),
            cross_region_rejections=Counter(
                "adapter_cross_region_rejections",
                "400 answers of the cross-region route (each resent to /api/v1/jobs), by the "
                "runner's error value (unknown values: other).",
                ("error",),
                registry=registry,
            ),
            replay_checks=Counter(
                "adapter_replay_checks",
                "Nonce claims and releases in the runner's Redis, by result.",
                ("result",),
                registry=registry,
            ),
            backfill_jobs=backfill_jobs_counter(registry),
        )
        for kind in UPSTREAM_ERROR_KINDS:
            metrics.upstream_errors.labels(kind=kind)
        metrics.build_info.labels(version=version).set(1)
        metrics._touch_guarded_rewrite_series()
        return metrics

    def _touch_guarded_rewrite_series(self) -> None:
        # Series exist from the start, so alerts and panels see zeros instead of nothing.
        for state in GUARD_STATES:
            self.rewrite_guard_state.labels(state=state)
        for cause in GUARD_FAILURES:
            self.rewrite_guard_trips.labels(cause=cause)
            self.rewrite_guard_failures.labels(reason=cause)
        for error in CROSS_REGION_REJECTIONS:
            self.cross_region_rejections.labels(error=error)
        for result in REPLAY_CHECK_RESULTS:
            self.replay_checks.labels(result=result)

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


# Closed label sets of the guarded-rewrite metrics (mirrors of the enums in adapter.jobs.guard,
# adapter.jobs.rewrite and adapter.replay_store; tests check they stay equal).
GUARD_STATES: Final = ("closed", "open", "half_open")
GUARD_FAILURES: Final = ("cross_region_rejected", "self_check_failed", "upstream_5xx", "timeout")
CROSS_REGION_REJECTIONS: Final = (
    "invalid_request_format",
    "invalid_signature",
    "invalid_jobspec",
    "invalid_content_type",
    "other",
)
REPLAY_CHECK_RESULTS: Final = ("claimed", "replayed", "unavailable", "released", "release_failed")


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
    "UPSTREAM_ERROR_KINDS",
    "Metrics",
    "backfill_jobs_counter",
    "method_label",
)

"""The rewrite guard: a circuit breaker over the rewritten cohort, acting per instance.

The kill switch (``ADAPTER_ROLLOUT_PERCENT=0``) has the latency of a deploy: on Fly a
changed variable restarts every machine. The guard acts in seconds. It watches the last
``window_size`` rewritten submissions that finished within ``window_seconds``; when at
least ``min_samples`` of them are there and the failing share reaches ``failure_ratio``
it opens: submissions that would be rewritten pass through unchanged for
``cooldown_seconds``. Then exactly one is let through as a probe (half-open); its success
closes the guard, its failure opens it for another cool-down. Rollout buckets are never
touched, so closing restores exactly the cohort that was rewritten before.

Pure: the guard is a frozen value, every transition a function of (guard, settings, event,
clock reading) that returns the next value. The caller keeps the current value, reads the
clock (a monotonic one) and does the logging and metrics from the returned transition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final


class GuardState(StrEnum):
    """The breaker's state, also the ``state`` label of ``adapter_rewrite_guard_state``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Failure(StrEnum):
    """Why a rewritten submission counts against the rewrite (a closed set: metric label)."""

    CROSS_REGION_REJECTED = "cross_region_rejected"  # a 400 from the cross-region route
    SELF_CHECK_FAILED = "self_check_failed"  # our own signature did not verify
    UPSTREAM_5XX = "upstream_5xx"  # a 5xx from the cross-region route
    TIMEOUT = "timeout"  # no answer in time from the cross-region route


class Admission(StrEnum):
    """What the guard lets a submission that would be rewritten do."""

    REWRITE = "rewrite"  # closed (or disabled): rewrite as usual
    PROBE = "probe"  # half-open: this one is the probe; report its outcome with probe=True
    REFUSE = "refuse"  # open: pass the original through (reason guard_open)


DEFAULT_WINDOW_SIZE: Final = 20
DEFAULT_WINDOW_SECONDS: Final = 300.0
DEFAULT_MIN_SAMPLES: Final = 5
DEFAULT_FAILURE_RATIO: Final = 0.5
DEFAULT_COOLDOWN_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The ``ADAPTER_GUARD_*`` variables (README explains the defaults)."""

    enabled: bool = True
    window_size: int = DEFAULT_WINDOW_SIZE
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_samples: int = DEFAULT_MIN_SAMPLES
    failure_ratio: float = DEFAULT_FAILURE_RATIO
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.min_samples <= self.window_size:
            raise ValueError("guard needs 1 <= min_samples <= window_size")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("guard failure_ratio must be above 0 and at most 1")
        if self.window_seconds <= 0 or self.cooldown_seconds <= 0:
            raise ValueError("guard window_seconds and cooldown_seconds must be positive")


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished rewritten submission: when, and its failure (None for a success)."""

    at: float
    failure: Failure | None


@dataclass(frozen=True, slots=True)
class Guard:
    """The breaker's value. ``since`` is when the current state began (None at start)."""

    state: GuardState = GuardState.CLOSED
    samples: tuple[Sample, ...] = ()
    since: float | None = None
    # Half-open: when the probe in flight was admitted (None: no probe in flight).
    probe_started: float | None = None
    # The failure that opened the guard last (kept after it closes, for /admin/rewrite).
    last_trip_cause: Failure | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, for the one log line and the metrics it produces."""

    before: GuardState
    after: GuardState
    # Set when the change is a trip (to open): the most frequent failure in the window,
    # or the failed probe's failure.
    cause: Failure | None = None
    failures: int = 0
    samples: int = 0


def admit(
    guard: Guard, settings: GuardSettings, now: float
) -> tuple[Guard, Admission, Transition | None]:
    """Ask the guard whether a submission selected for the rewrite may be rewritten.

    Open past its cool-down, the guard turns half-open and this submission is the probe.
    A probe that never reports back (it should: see ``abandon``) is replaced after one
    more cool-down, so the guard cannot stay stuck half-open.
    """
    if not settings.enabled or guard.state is GuardState.CLOSED:
        return guard, Admission.REWRITE, None
    if guard.state is GuardState.OPEN:
        if guard.since is not None and now - guard.since < settings.cooldown_seconds:
            return guard, Admission.REFUSE, None
        probing = replace(guard, state=GuardState.HALF_OPEN, since=now, probe_started=now)
        change = Transition(GuardState.OPEN, GuardState.HALF_OPEN)
        return probing, Admission.PROBE, change
    started = guard.probe_started
    if started is not None and now - started < settings.cooldown_seconds:
        return guard, Admission.REFUSE, None
    return replace(guard, probe_started=now), Admission.PROBE, None


def record(
    guard: Guard,
    settings: GuardSettings,
    now: float,
    failure: Failure | None,
    *,
    probe: bool = False,
) -> tuple[Guard, Transition | None]:
    """Count one finished rewritten submission (``failure`` None = success).

    Closed: the sample joins the window and may trip the guard. Half-open: only the
    probe's outcome counts; it closes the guard (window cleared) or opens it again.
    Outcomes of submissions admitted before a trip are ignored once the guard is open.
    """
    if not settings.enabled:
        return guard, None
    if guard.state is GuardState.HALF_OPEN:
        if not probe:
            return guard, None
        if failure is None:
            closed = replace(
                guard, state=GuardState.CLOSED, samples=(), since=now, probe_started=None
            )
            return closed, Transition(GuardState.HALF_OPEN, GuardState.CLOSED)
        opened = replace(
            guard,
            state=GuardState.OPEN,
            samples=(*guard.samples, Sample(now, failure))[-settings.window_size :],
            since=now,
            probe_started=None,
            last_trip_cause=failure,
        )
        return opened, Transition(GuardState.HALF_OPEN, GuardState.OPEN, failure, 1, 1)
    if guard.state is GuardState.OPEN:
        return guard, None
    samples = recent((*guard.samples, Sample(now, failure)), settings, now)
    failures = [s.failure for s in samples if s.failure is not None]
    # Only a failure trips: a success never turns the guard against the rewrite.
    enough = len(samples) >= settings.min_samples
    if failure is None or not enough or len(failures) < settings.failure_ratio * len(samples):
        return replace(guard, samples=samples), None
    cause = _dominant(failures)
    opened = Guard(GuardState.OPEN, samples, now, None, cause)
    change = Transition(GuardState.CLOSED, GuardState.OPEN, cause, len(failures), len(samples))
    return opened, change


def abandon(guard: Guard, *, probe: bool) -> Guard:
    """A probe ended without an outcome that says anything about the rewrite (the replay
    check refused it, the runner was unreachable, the client left): free the probe slot."""
    if probe and guard.state is GuardState.HALF_OPEN:
        return replace(guard, probe_started=None)
    return guard


def recent(samples: tuple[Sample, ...], settings: GuardSettings, now: float) -> tuple[Sample, ...]:
    """The samples still in the window: the last ``window_size`` within ``window_seconds``."""
    kept = tuple(s for s in samples if now - s.at <= settings.window_seconds)
    return kept[-settings.window_size :]


def failures_by_reason(guard: Guard, settings: GuardSettings, now: float) -> dict[str, int]:
    """The failures among the samples the guard currently judges by (for /admin/rewrite).

    While open, the window that tripped it is shown as it was at the trip.
    """
    samples = (
        guard.samples
        if guard.state is not GuardState.CLOSED
        else recent(guard.samples, settings, now)
    )
    counts = Counter(s.failure.value for s in samples if s.failure is not None)
    return dict(sorted(counts.items()))


def _dominant(failures: list[Failure]) -> Failure:
    """The most frequent failure; on a tie the one seen last."""
    counts = Counter(failures)
    best = max(counts.values())
    return next(f for f in reversed(failures) if counts[f] == best)


__all__ = (
    "DEFAULT_COOLDOWN_SECONDS",
    "DEFAULT_FAILURE_RATIO",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_WINDOW_SECONDS",
    "DEFAULT_WINDOW_SIZE",
    "Admission",
    "Failure",
    "Guard",
    "GuardSettings",
    "GuardState",
    "Sample",
    "Transition",
    "abandon",
    "admit",
    "failures_by_reason",
    "recent",
    "record",
)

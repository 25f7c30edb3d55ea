"""The rewrite guard's state machine: tables for the documented paths, properties for all."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from adapter.jobs.guard import (
    Admission,
    Failure,
    Guard,
    GuardSettings,
    GuardState,
    Sample,
    abandon,
    admit,
    failures_by_reason,
    record,
)

SETTINGS = GuardSettings(
    window_size=4, window_seconds=100.0, min_samples=3, failure_ratio=0.5, cooldown_seconds=10.0
)
REJECTED = Failure.CROSS_REGION_REJECTED
TIMEOUT = Failure.TIMEOUT
OK = None


def _feed(outcomes: list[Failure | None], *, start: float = 0.0, step: float = 1.0) -> Guard:
    guard = Guard()
    for index, outcome in enumerate(outcomes):
        guard, _ = record(guard, SETTINGS, start + index * step, outcome)
    return guard


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        pytest.param([], GuardState.CLOSED, id="nothing-yet"),
        pytest.param([REJECTED, REJECTED], GuardState.CLOSED, id="below-min-samples"),
        pytest.param([REJECTED, OK, REJECTED], GuardState.OPEN, id="two-of-three"),
        pytest.param([OK, OK, REJECTED], GuardState.CLOSED, id="one-of-three"),
        pytest.param([OK, OK, REJECTED, REJECTED], GuardState.OPEN, id="half-of-four"),
        pytest.param([REJECTED, REJECTED, OK, OK, OK], GuardState.CLOSED, id="window-slid"),
    ],
)
def test_trips_on_share_of_window(outcomes: list[Failure | None], state: GuardState) -> None:
    """Open exactly when >= min_samples are in the window and the failing share is reached."""
    assert _feed(outcomes).state is state


def test_old_samples_leave_the_window() -> None:
    """Failures older than window_seconds no longer count."""
    guard = _feed([REJECTED, REJECTED], start=0.0)
    guard, change = record(guard, SETTINGS, 150.0, TIMEOUT)
    assert (guard.state, change) == (GuardState.CLOSED, None)
    assert guard.samples == (Sample(150.0, TIMEOUT),)


def test_full_cycle_open_probe_close() -> None:
    """Trip, refuse during the cool-down, one probe, others refused, success closes."""
    guard, change = _feed([REJECTED, REJECTED]), None
    guard, change = record(guard, SETTINGS, 2.0, TIMEOUT)
    assert change is not None
    assert (change.before, change.after, change.cause) == ("closed", "open", REJECTED)
    assert (change.failures, change.samples) == (3, 3)
    assert admit(guard, SETTINGS, 11.9)[1] is Admission.REFUSE
    guard, admission, change = admit(guard, SETTINGS, 12.0)
    assert admission is Admission.PROBE
    assert change is not None
    assert (change.before, change.after) == ("open", "half_open")
    assert admit(guard, SETTINGS, 13.0)[1] is Admission.REFUSE
    # A late outcome of a submission admitted before the trip does not count.
    assert record(guard, SETTINGS, 13.0, OK)[0] == guard
    guard, change = record(guard, SETTINGS, 14.0, OK, probe=True)
    assert change is not None
    assert (guard.state, change.before, change.after) == ("closed", "half_open", "closed")
    assert guard.samples == ()
    assert guard.last_trip_cause is REJECTED
    assert admit(guard, SETTINGS, 14.0)[1] is Admission.REWRITE


def test_failed_probe_reopens_for_another_cooldown() -> None:
    """A failed probe opens the guard again, cause = the probe's failure."""
    guard = _feed([REJECTED] * 3)
    guard, _, _ = admit(guard, SETTINGS, 20.0)
    guard, change = record(guard, SETTINGS, 21.0, Failure.UPSTREAM_5XX, probe=True)
    assert change is not None
    assert (guard.state, change.cause) == ("open", Failure.UPSTREAM_5XX)
    assert admit(guard, SETTINGS, 30.9)[1] is Admission.REFUSE
    assert admit(guard, SETTINGS, 31.0)[1] is Admission.PROBE


def test_abandoned_probe_frees_the_slot() -> None:
    """A probe that could not say anything lets the next submission probe at once."""
    guard = _feed([REJECTED] * 3)
    guard, _, _ = admit(guard, SETTINGS, 20.0)
    assert admit(guard, SETTINGS, 20.5)[1] is Admission.REFUSE
    guard = abandon(guard, probe=True)
    assert admit(guard, SETTINGS, 20.5)[1] is Admission.PROBE


def test_stale_probe_is_replaced_after_a_cooldown() -> None:
    """A probe that never reports cannot keep the guard half-open forever."""
    guard = _feed([REJECTED] * 3)
    guard, _, _ = admit(guard, SETTINGS, 20.0)
    assert admit(guard, SETTINGS, 29.9)[1] is Admission.REFUSE
    assert admit(guard, SETTINGS, 30.0)[1] is Admission.PROBE


def test_disabled_guard_always_rewrites() -> None:
    """ADAPTER_GUARD_ENABLED=false: nothing is recorded, nothing refused."""
    off = GuardSettings(enabled=False)
    guard = Guard()
    for at in range(50):
        guard, change = record(guard, off, float(at), REJECTED)
        assert change is None
    assert guard == Guard()
    assert admit(Guard(GuardState.OPEN, since=0.0), off, 1.0)[1] is Admission.REWRITE


def test_failures_by_reason_shows_the_tripping_window() -> None:
    """The admin view counts the window's failures by reason; while open, as at the trip."""
    guard = _feed([REJECTED, TIMEOUT, REJECTED])
    assert guard.state is GuardState.OPEN
    assert failures_by_reason(guard, SETTINGS, 1000.0) == {
        "cross_region_rejected": 2,
        "timeout": 1,
    }
    assert failures_by_reason(_feed([REJECTED]), SETTINGS, 1000.0) == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_samples": 0},
        {"min_samples": 30, "window_size": 20},
        {"failure_ratio": 0.0},
        {"failure_ratio": 1.5},
        {"cooldown_seconds": 0.0},
        {"window_seconds": -1.0},
    ],
)
def test_settings_refuse_nonsense(kwargs: dict[str, float]) -> None:
    """Settings that would make the guard trip on nothing or never are refused."""
    with pytest.raises(ValueError, match="guard"):
        GuardSettings(**kwargs)  # type: ignore[arg-type]


# -- properties over event sequences ----------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str  # "admit" | "outcome" | "abandon"
    dt: float
    failure: Failure | None


events = st.lists(
    st.builds(
        Event,
        kind=st.sampled_from(["admit", "outcome", "abandon"]),
        dt=st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
        failure=st.one_of(st.none(), st.sampled_from(list(Failure))),
    ),
    max_size=80,
)
settings_strategy = st.builds(
    GuardSettings,
    window_size=st.integers(1, 10),
    window_seconds=st.floats(1.0, 200.0),
    min_samples=st.just(1),
    failure_ratio=st.floats(0.05, 1.0),
    cooldown_seconds=st.floats(0.5, 60.0),
).flatmap(
    lambda s: st.builds(
        GuardSettings,
        window_size=st.just(s.window_size),
        window_seconds=st.just(s.window_seconds),
        min_samples=st.integers(1, s.window_size),
        failure_ratio=st.just(s.failure_ratio),
        cooldown_seconds=st.just(s.cooldown_seconds),
    )
)


def _run(settings: GuardSettings, sequence: list[Event]) -> None:
    """Drive the guard like the shell does and check every invariant at every step."""
    guard, now = Guard(), 0.0
    probes_in_flight: list[float] = []
    admitted_since_close = 0
    for event in sequence:
        now += event.dt
        before = guard
        if event.kind == "admit":
            guard, admission, change = admit(guard, settings, now)
            if before.state is GuardState.OPEN and before.since is not None:
                within = now - before.since < settings.cooldown_seconds
                assert (admission is Admission.REFUSE) is within
            if admission is Admission.PROBE:
                assert guard.state is GuardState.HALF_OPEN
                # One probe at a time, unless the previous one went stale.
                assert all(now - t >= settings.cooldown_seconds for t in probes_in_flight)
                probes_in_flight = [now]
            if before.state is GuardState.CLOSED:
                assert admission is Admission.REWRITE
        elif event.kind == "outcome":
            probe = bool(probes_in_flight) and guard.state is GuardState.HALF_OPEN
            guard, change = record(guard, settings, now, event.failure, probe=probe)
            probes_in_flight = [] if probe else probes_in_flight
            if before.state is GuardState.CLOSED:
                admitted_since_close += 1
            if change is not None and change.after is GuardState.OPEN:
                # Only a failure trips, and only with enough samples in the window.
                assert event.failure is not None
                assert change.cause is not None
                if change.before is GuardState.CLOSED:
                    assert admitted_since_close >= settings.min_samples
                    assert change.failures >= settings.failure_ratio * change.samples
            if change is not None and change.after is GuardState.CLOSED:
                admitted_since_close = 0
        else:
            guard = abandon(guard, probe=bool(probes_in_flight))
            probes_in_flight = []
        assert len(guard.samples) <= settings.window_size
        if guard.state is GuardState.CLOSED:
            assert guard.probe_started is None


@given(settings_strategy, events)
def test_invariants_hold_for_any_sequence(settings: GuardSettings, sequence: list[Event]) -> None:
    """Refusals only within a cool-down, one probe at a time, trips only on enough failures."""
    _run(settings, sequence)


@given(settings_strategy, st.lists(st.floats(0.0, 30.0, allow_nan=False), max_size=60))
def test_successes_never_open_the_guard(settings: GuardSettings, gaps: list[float]) -> None:
    """A cohort that never fails is never refused."""
    guard, now = Guard(), 0.0
    for gap in gaps:
        now += gap
        guard, admission, _ = admit(guard, settings, now)
        assert admission is Admission.REWRITE
        guard, change = record(guard, settings, now, None)
        assert change is None


@given(settings_strategy, st.sampled_from(list(Failure)))
def test_persistent_failure_opens_then_recovers(settings: GuardSettings, failure: Failure) -> None:
    """Enough failures open the guard; after the cool-down one good probe closes it."""
    guard, now = Guard(), 0.0
    for _ in range(settings.min_samples):
        guard, _ = record(guard, settings, now, failure)
    assert guard.state is GuardState.OPEN
    assert guard.last_trip_cause is failure
    now += settings.cooldown_seconds
    guard, admission, _ = admit(guard, settings, now)
    assert admission is Admission.PROBE
    guard, change = record(guard, settings, now, None, probe=True)
    assert change is not None
    assert guard.state is GuardState.CLOSED

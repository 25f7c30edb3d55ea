"""This process's rewrite guard: the current ``adapter.jobs.guard`` value, the clock, and
what a state change leaves behind (the gauge, trips by cause, one log line).

The I/O shell around the pure state machine. One instance per proxy app; the event
loop is single-threaded, so reading and replacing the value needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from adapter.jobs.guard import (
    Admission,
    Failure,
    Guard,
    GuardSettings,
    GuardState,
    Transition,
    abandon,
    admit,
    failures_by_reason,
    record,
)
from adapter.log import get_logger
from adapter.metrics import Metrics

_log = get_logger("adapter.guard")


class RewriteGuard:
    """Admit rewrites, record their outcomes, and report every state change."""

    def __init__(
        self,
        settings: GuardSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._clock = clock
        self._guard = Guard()
        self._show(GuardState.CLOSED)

    @property
    def state(self) -> GuardState:
        """The current state."""
        return self._guard.state

    def admit(self) -> Admission:
        """May a submission selected for the rewrite be rewritten now?"""
        self._guard, admission, change = admit(self._guard, self.settings, self._clock())
        self._report(change)
        return admission

    def record(self, failure: Failure | None, *, probe: bool) -> None:
        """One rewritten submission finished: ``failure`` None is a success."""
        if failure is not None:
            self._metrics.rewrite_guard_failures.labels(reason=failure).inc()
        self._guard, change = record(
            self._guard, self.settings, self._clock(), failure, probe=probe
        )
        self._report(change)

    def abandon(self, *, probe: bool) -> None:
        """A rewrite ended without an outcome that says anything about the rewrite."""
        self._guard = abandon(self._guard, probe=probe)

    def snapshot(self) -> dict[str, object]:
        """The state for ``GET /admin/rewrite``: plain JSON values, no secret."""
        now = self._clock()
        guard = self._guard
        settings = self.settings
        return {
            "enabled": settings.enabled,
            "state": guard.state,
            "state_for_seconds": None if guard.since is None else round(now - guard.since, 3),
            "probe_in_flight": guard.probe_started is not None,
            "failures_by_reason": failures_by_reason(guard, settings, now),
            "samples_in_window": len(guard.samples),
            "last_trip_cause": guard.last_trip_cause,
            "settings": {
                "window_size": settings.window_size,
                "window_seconds": settings.window_seconds,
                "min_samples": settings.min_samples,
                "failure_ratio": settings.failure_ratio,
                "cooldown_seconds": settings.cooldown_seconds,
            },
        }

    def _report(self, change: Transition | None) -> None:
        if change is None:
            return
        self._show(change.after)
        if change.after is GuardState.OPEN:
            assert change.cause is not None
            self._metrics.rewrite_guard_trips.labels(cause=change.cause).inc()
            log = _log.warning
        else:
            log = _log.info
        log(
            "rewrite_guard_state",
            before=change.before,
            after=change.after,
            cause=change.cause,
            failures=change.failures,
            samples=change.samples,
            cooldown_seconds=self.settings.cooldown_seconds,
        )

    def _show(self, state: GuardState) -> None:
        for each in GuardState:
            self._metrics.rewrite_guard_state.labels(state=each).set(1 if each is state else 0)


REWRITE_GUARD: Final = web.AppKey("rewrite_guard", RewriteGuard)

__all__ = ("REWRITE_GUARD", "RewriteGuard")

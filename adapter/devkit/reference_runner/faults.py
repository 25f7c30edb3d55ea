"""Fault injection for the reference runner's submission routes, for reliability tests.

A test keeps the ``ReferenceRunnerFaults`` it passed to ``create_reference_runner`` (or
reads ``app[FAULTS]``) and arms faults while the server runs. Faults apply to POST
submissions on ``paths`` (by default only the cross-region route):

- ``fail_next(n, status, body)``: answer the next ``n`` submissions with ``status`` and a
  JSON body *before* anything is recorded (an upstream that refuses);
- ``delay_before_record`` / ``delay_after_record``: sleep that many seconds before
  processing, or after the job is recorded but before answering (a slow upstream; with
  the second, a client that times out and retries meets the duplicate-id 500);
- ``reset_next(n)``: record the job, then reset the TCP connection instead of answering
  (the lost-answer case an idempotent client must survive).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

CROSS_REGION_PATH: Final = "/api/v1/jobs/cross-region"
STANDARD_PATH: Final = "/api/v1/jobs"


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """The answer a failed submission gets."""

    status: int
    body: Mapping[str, Any]


@dataclass(slots=True)
class ReferenceRunnerFaults:
    """Mutable fault switches, consulted once per submission on ``paths``."""

    paths: frozenset[str] = frozenset({CROSS_REGION_PATH})
    delay_before_record: float = 0.0
    delay_after_record: float = 0.0
    _failures: list[InjectedFailure] = field(default_factory=list)
    _resets: int = 0
    injected_failures: int = 0
    injected_resets: int = 0

    def fail_next(
        self, count: int, status: int = 503, body: Mapping[str, Any] | None = None
    ) -> None:
        """Answer the next ``count`` submissions with ``status`` before recording anything."""
        if count < 0 or not 100 <= status <= 599:
            raise ValueError(
                f"fail_next needs count >= 0 and an HTTP status, got {count}, {status}"
            )
        failure = InjectedFailure(status, dict(body or {"error": "injected fault"}))
        self._failures.extend([failure] * count)

    def reset_next(self, count: int = 1) -> None:
        """Record the next ``count`` submissions, then reset their connections unanswered."""
        if count < 0:
            raise ValueError(f"reset_next needs count >= 0, got {count}")
        self._resets += count

    def clear(self) -> None:
        """Disarm every fault (counters of injected faults are kept)."""
        self._failures.clear()
        self._resets = 0
        self.delay_before_record = 0.0
        self.delay_after_record = 0.0

    def applies_to(self, method: str, path: str) -> bool:
        """Whether a request is a submission these faults target."""
        return method == "POST" and path in self.paths

    def take_failure(self) -> InjectedFailure | None:
        """Consume one armed failure, if any."""
        if not self._failures:
            return None
        self.injected_failures += 1
        return self._failures.pop(0)

    def take_reset(self) -> bool:
        """Consume one armed reset, if any."""
        if self._resets <= 0:
            return False
        self._resets -= 1
        self.injected_resets += 1
        return True

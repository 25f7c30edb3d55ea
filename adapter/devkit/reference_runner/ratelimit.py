"""The runner's global rate limit: a token bucket of N requests per minute per client IP.

Off by default in the reference runner; when on, it keys buckets the way gin's
``c.ClientIP()`` does with every proxy trusted (the leftmost ``X-Forwarded-For`` entry,
else ``X-Real-IP``, else the peer), so tests can show why a proxy must forward the real
client address (docs/runner-contract.md §3). Pure: the clock reading is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


def client_ip(headers: Mapping[str, str], peer: str | None) -> str:
    """gin's ClientIP with all proxies trusted: leftmost X-Forwarded-For, X-Real-IP, peer."""
    forwarded = headers.get("X-Forwarded-For", "")
    leftmost = forwarded.split(",", 1)[0].strip()
    if leftmost:
        return leftmost
    real = headers.get("X-Real-IP", "").strip()
    return real or (peer or "")


@dataclass(frozen=True, slots=True)
class Admission:
    """One request's fate: allowed or not, tokens left, seconds until the next token."""

    allowed: bool
    remaining: int
    retry_after: int


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass(slots=True)
class TokenBuckets:
    """Per-key token buckets holding ``per_minute`` tokens, refilled continuously."""

    per_minute: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> Admission:
        """Spend one token of ``key``'s bucket at time ``now`` (seconds), if there is one."""
        capacity = float(self.per_minute)
        refill = capacity / 60.0
        bucket = self._buckets.setdefault(key, _Bucket(capacity, now))
        elapsed = now - bucket.last
        if elapsed > 0:
            bucket.tokens = min(capacity, bucket.tokens + elapsed * refill)
            bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Admission(True, math.floor(bucket.tokens), 0)
        return Admission(False, 0, max(1, math.ceil((1.0 - bucket.tokens) / refill)))

"""The standard route's replay rules, applied before a rewrite (pure; the Redis I/O is in
``adapter.replay_store``).

The runner's cross-region route runs none of the security pipeline; its standard route,
with ``TRUST_ENFORCE=true``, does (docs/runner-contract.md §3): ``metadata`` must be an
object whose ``timestamp`` is a non-empty string (its age is not checked), and when
``metadata.nonce`` is a non-empty string the runner claims
``nonce:<public_key>:<nonce>`` in its Redis with ``SETNX`` and a TTL of
``TIMESTAMP_MAX_AGE_MINUTES`` (default 10). A spec without a nonce is not replay-checked
by the runner, so it is not by the adapter either. Claiming the same key in the same
Redis puts both routes in one nonce space: a job replayed through the adapter meets the
record its first submission left, whichever route that took.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from yarl import URL

NONCE_KEY_PREFIX: Final = "nonce:"
# The runner's TIMESTAMP_MAX_AGE_MINUTES default (10 minutes) is its nonce TTL.
DEFAULT_NONCE_TTL_SECONDS: Final = 600
# A claim or release that takes longer than this counts as Redis being unavailable.
DEFAULT_REPLAY_TIMEOUT_SECONDS: Final = 0.5


class MetadataProblem(StrEnum):
    """What the standard route would refuse before its replay check (metric label)."""

    MISSING_METADATA = "missing_metadata"
    MISSING_TIMESTAMP = "missing_timestamp"


def describe_redis_url(url: URL | None) -> str | None:
    """The Redis address as logs and ``/admin/rewrite`` show it: the URL may carry the
    password, so only scheme, host, port and database."""
    return None if url is None else str(url.with_user(None).with_password(None))


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """``ADAPTER_REPLAY_*``: where the runner's Redis is and how long to wait for it."""

    redis_url: URL | None = field(default=None, metadata={"describe": describe_redis_url})
    ttl_seconds: int = DEFAULT_NONCE_TTL_SECONDS
    timeout_seconds: float = DEFAULT_REPLAY_TIMEOUT_SECONDS


def metadata_problem(spec: Mapping[str, Any]) -> MetadataProblem | None:
    """The standard route's metadata rule: an object with a non-empty string timestamp."""
    metadata = spec.get("metadata")
    if not isinstance(metadata, Mapping):
        return MetadataProblem.MISSING_METADATA
    timestamp = metadata.get("timestamp")
    if not isinstance(timestamp, str) or not timestamp:
        return MetadataProblem.MISSING_TIMESTAMP
    return None


def nonce_key(spec: Mapping[str, Any]) -> str | None:
    """``nonce:<public_key>:<nonce>`` as the runner keys it, or None when it would not check.

    The public key is the submitter's own, exactly as sent (the standard route keys by
    the spec's ``public_key`` text), never the adapter's service key.
    """
    metadata = spec.get("metadata")
    nonce = metadata.get("nonce") if isinstance(metadata, Mapping) else None
    public_key = spec.get("public_key")
    if not isinstance(nonce, str) or not nonce or not isinstance(public_key, str):
        return None
    return f"{NONCE_KEY_PREFIX}{public_key}:{nonce}"


__all__ = (
    "DEFAULT_NONCE_TTL_SECONDS",
    "DEFAULT_REPLAY_TIMEOUT_SECONDS",
    "NONCE_KEY_PREFIX",
    "MetadataProblem",
    "ReplaySettings",
    "describe_redis_url",
    "metadata_problem",
    "nonce_key",
)

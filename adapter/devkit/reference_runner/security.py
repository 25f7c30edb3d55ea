"""The standard route's security pipeline with ``TRUST_ENFORCE=true`` (docs/runner-contract.md
§3): trusted key, metadata timestamp, then the replay check in Redis.

Only the parts before the signature step; ``app`` runs the signature step after these,
as the runner's error-code order has it. The replay check claims
``nonce:<public_key>:<nonce>`` with ``SETNX`` and a TTL (``TIMESTAMP_MAX_AGE_MINUTES``),
answers 400 ``replay_detected`` for a key that exists, and 503
``protection_unavailable:replay`` when Redis is missing or fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from adapter.jobs.trust import KeyStatus, TrustedKeys

DEFAULT_NONCE_TTL_SECONDS: Final = 600  # TIMESTAMP_MAX_AGE_MINUTES=10
_REDIS_TIMEOUT: Final = 1.0

Refusal = tuple[int, dict[str, str]]


def _refusal(status: int, error: str, code: str) -> Refusal:
    return status, {"error": error, "error_code": code}


def trust_and_timestamp_refusal(
    spec: Mapping[str, Any], trusted_keys: TrustedKeys | None, now_ns: int
) -> Refusal | None:
    """The checks before replay: the key's trust status, then ``metadata.timestamp``."""
    public_key = spec.get("public_key")
    if trusted_keys is not None and isinstance(public_key, str) and public_key:
        at = datetime.fromtimestamp(now_ns / 1e9, UTC)
        status = trusted_keys.status(public_key, at)
        if status is not KeyStatus.TRUSTED:
            return _refusal(400, f"key not trusted: {status}", f"trust_violation:{status}")
    metadata = spec.get("metadata")
    if not isinstance(metadata, Mapping):
        return _refusal(400, "metadata is required", "missing_field:metadata")
    timestamp = metadata.get("timestamp")
    if timestamp is None or timestamp == "":
        return _refusal(400, "timestamp is required", "missing_field:timestamp")
    if not isinstance(timestamp, str):
        return _refusal(400, "timestamp must be a string", "invalid_field:timestamp")
    return None


class ReplayGuard:
    """The runner's nonce check against a real Redis (or none: then every nonce is 503)."""

    def __init__(self, redis_url: str | None, ttl_seconds: int = DEFAULT_NONCE_TTL_SECONDS):
        self.ttl_seconds = ttl_seconds
        self._client = (
            None
            if redis_url is None
            else aioredis.Redis.from_url(
                redis_url,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
        )

    async def refusal(self, spec: Mapping[str, Any]) -> Refusal | None:
        """SETNX the nonce key; None when the nonce is new or absent."""
        metadata = spec.get("metadata")
        nonce = metadata.get("nonce") if isinstance(metadata, Mapping) else None
        if not isinstance(nonce, str) or not nonce:
            return None
        unavailable = _refusal(
            503, "replay protection unavailable", "protection_unavailable:replay"
        )
        if self._client is None:
            return unavailable
        key = f"nonce:{spec.get('public_key', '')}:{nonce}"
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                created = await self._client.set(key, "1", nx=True, ex=self.ttl_seconds)
        except (RedisError, OSError, TimeoutError):
            return unavailable
        if not created:
            return _refusal(400, "replay detected: nonce already used", "replay_detected")
        return None

    async def close(self) -> None:
        """Close the Redis pool, if any."""
        if self._client is not None:
            await self._client.aclose()


__all__ = (
    "DEFAULT_NONCE_TTL_SECONDS",
    "ReplayGuard",
    "trust_and_timestamp_refusal",
)

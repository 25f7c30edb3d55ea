"""The runner's Redis, as the adapter uses it: claim a nonce key before a rewrite, release
it when the submission falls back to the standard route (which then claims it itself).

The I/O shell around ``adapter.jobs.replay``. Every call is bounded by
``ADAPTER_REPLAY_TIMEOUT`` and never retried: a Redis that is down or slow makes the
claim ``unavailable``, the original passes through, and the runner's standard route
answers for itself (``protection_unavailable:replay`` when its Redis is gone too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Final

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from adapter.http.proxy import CONFIG, METRICS
from adapter.jobs.replay import ReplaySettings
from adapter.log import get_logger
from adapter.metrics import Metrics

# The value the adapter stores under a claimed key; the runner only tests existence.
_CLAIM_VALUE: Final = "beacon-adapter"

_log = get_logger("adapter.replay")


class Claim(StrEnum):
    """The answer to a claim (also the ``result`` label of ``adapter_replay_checks``)."""

    CLAIMED = "claimed"  # the key was new: the nonce is now recorded, the rewrite may go
    REPLAYED = "replayed"  # the key exists: a replay, the runner's standard route answers
    UNAVAILABLE = "unavailable"  # Redis did not answer in time or failed


class ReplayStore:
    """Claims and releases ``nonce:<public_key>:<nonce>`` keys in the runner's Redis."""

    def __init__(self, settings: ReplaySettings, metrics: Metrics) -> None:
        assert settings.redis_url is not None
        self._settings = settings
        self._metrics = metrics
        timeout = settings.timeout_seconds
        self._client = aioredis.Redis.from_url(
            str(settings.redis_url),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    async def claim(self, key: str) -> Claim:
        """``SET key NX EX ttl``: the runner's SETNX with its TTL, in one atomic command."""
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                created = await self._client.set(
                    key, _CLAIM_VALUE, nx=True, ex=self._settings.ttl_seconds
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._metrics.replay_checks.labels(result="unavailable").inc()
            _log.warning("replay_check_unavailable", error=type(exc).__name__, detail=str(exc))
            return Claim.UNAVAILABLE
        claim = Claim.CLAIMED if created else Claim.REPLAYED
        self._metrics.replay_checks.labels(result=claim).inc()
        if claim is Claim.REPLAYED:
            _log.warning("replayed_nonce", nonce_key=key)
        return claim

    async def release(self, key: str) -> bool:
        """Delete a key this adapter claimed, so the standard route sees the nonce as new.

        False (logged at error level) when Redis failed: the runner may then answer
        ``replay_detected`` for a submission that is not a replay.
        """
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                await self._client.delete(key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._metrics.replay_checks.labels(result="release_failed").inc()
            _log.error("replay_release_failed", nonce_key=key, error=type(exc).__name__)
            return False
        self._metrics.replay_checks.labels(result="released").inc()
        return True

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


REPLAY_STORE: Final = web.AppKey("replay_store", ReplayStore)


async def replay_store_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` of the proxy app: the store exists only with a Redis URL configured."""
    settings = app[CONFIG].replay
    if settings.redis_url is None:
        yield
        return
    store = ReplayStore(settings, app[METRICS])
    app[REPLAY_STORE] = store
    try:
        yield
    finally:
        await store.close()


__all__ = ("REPLAY_STORE", "Claim", "ReplayStore", "replay_store_ctx")

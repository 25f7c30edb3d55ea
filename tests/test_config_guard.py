"""The guarded-rewrite section of the configuration: ADAPTER_GUARD_* and ADAPTER_REPLAY_*."""

from __future__ import annotations

import pytest
from yarl import URL

from adapter.config import Config, ConfigError
from adapter.jobs.guard import GuardSettings
from adapter.jobs.replay import ReplaySettings

BASE = {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:8090"}


def _config(**env: str) -> Config:
    return Config.from_env({**BASE, **env})


def test_defaults() -> None:
    """Guard on with the README's defaults; no Redis; the runner's 10-minute TTL."""
    config = _config()
    assert config.guard == GuardSettings()
    assert (config.guard.window_size, config.guard.min_samples) == (20, 5)
    assert (config.guard.failure_ratio, config.guard.cooldown_seconds) == (0.5, 60.0)
    assert config.guard.window_seconds == 300.0
    assert config.replay == ReplaySettings()
    assert (config.replay.ttl_seconds, config.replay.timeout_seconds) == (600, 0.5)


def test_variables_are_read() -> None:
    """Each variable lands in its field, parsed."""
    config = _config(
        ADAPTER_GUARD_ENABLED="false",
        ADAPTER_GUARD_WINDOW_SIZE="10",
        ADAPTER_GUARD_WINDOW_SECONDS="120",
        ADAPTER_GUARD_MIN_SAMPLES="3",
        ADAPTER_GUARD_FAILURE_RATIO="0.25",
        ADAPTER_GUARD_COOLDOWN_SECONDS="2.5",
        ADAPTER_REPLAY_REDIS_URL="rediss://:pw@redis.internal:6380/2",
        ADAPTER_REPLAY_TTL_SECONDS="900",
        ADAPTER_REPLAY_TIMEOUT="0.25",
    )
    assert config.guard == GuardSettings(False, 10, 120.0, 3, 0.25, 2.5)
    assert config.replay == ReplaySettings(URL("rediss://:pw@redis.internal:6380/2"), 900, 0.25)


def test_small_window_lowers_the_default_min_samples() -> None:
    """A window smaller than the default minimum sample count is still valid."""
    assert _config(ADAPTER_GUARD_WINDOW_SIZE="3").guard.min_samples == 3


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ADAPTER_GUARD_ENABLED", "maybe"),
        ("ADAPTER_GUARD_WINDOW_SIZE", "0"),
        ("ADAPTER_GUARD_WINDOW_SECONDS", "-5"),
        ("ADAPTER_GUARD_MIN_SAMPLES", "21"),
        ("ADAPTER_GUARD_FAILURE_RATIO", "0"),
        ("ADAPTER_GUARD_FAILURE_RATIO", "1.5"),
        ("ADAPTER_GUARD_COOLDOWN_SECONDS", "0"),
        ("ADAPTER_REPLAY_REDIS_URL", "http://redis:6379"),
        ("ADAPTER_REPLAY_TTL_SECONDS", "0"),
        ("ADAPTER_REPLAY_TIMEOUT", "30"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    """A bad value stops start-up with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        _config(**{name: raw})
    assert caught.value.name == name


@pytest.mark.parametrize(
    "raw", ["http://user:hunter2@redis:6379", "redis://:hunter2@redis:notaport"]
)
def test_redis_password_is_never_echoed(raw: str) -> None:
    """The error for a bad Redis URL does not repeat its password."""
    with pytest.raises(ConfigError) as caught:
        _config(ADAPTER_REPLAY_REDIS_URL=raw)
    assert "hunter2" not in str(caught.value)

"""The rewrite section of the configuration: rollout flag, keys, trust and limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.config import Config, ConfigError
from adapter.jobs.rewrite import DEFAULT_MAX_BODY_BYTES
from adapter.jobs.rollout import RolloutPolicy
from adapter.jobs.signing import ServiceKey

BASE = {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:8090"}
SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
SERVICE_KEY = ServiceKey.from_seed(bytes(range(32)))


def _config(**env: str) -> Config:
    return Config.from_env({**BASE, **env})


def test_rewrite_defaults_are_off() -> None:
    """Without rewrite variables nothing is rewritten and no key is needed."""
    rewrite = _config().rewrite
    assert rewrite.policy == RolloutPolicy()
    assert rewrite.service_key is None
    assert (rewrite.max_body_bytes, rewrite.default_min_success_rate) == (
        DEFAULT_MAX_BODY_BYTES,
        0.67,
    )
    assert not rewrite.trust_enforce


def test_rewrite_variables_are_read(tmp_path: Path) -> None:
    """Each rewrite variable lands in its field, parsed."""
    keys = tmp_path / "trusted.json"
    entry = {"kid": "svc", "public_key": SERVICE_KEY.public_key_b64, "status": "active"}
    keys.write_text(json.dumps([entry]))
    rewrite = _config(
        ADAPTER_ROLLOUT_PERCENT="12.5",
        ADAPTER_ROLLOUT_SALT="s1",
        ADAPTER_ROLLOUT_ALLOWLIST="0xABC, pk1",
        ADAPTER_ROLLOUT_DENYLIST="0xDEF",
        ADAPTER_SHADOW="true",
        ADAPTER_SIGNING_KEY=SEED_B64,
        ADAPTER_TRUST_ENFORCE="true",
        ADAPTER_TRUSTED_KEYS_FILE=str(keys),
        ADAPTER_MAX_REWRITE_BYTES="2048",
        ADAPTER_DEFAULT_MIN_SUCCESS_RATE="0.5",
    ).rewrite
    assert rewrite.policy == RolloutPolicy(
        threshold=1250,
        salt="s1",
        allowlist=frozenset({"0xabc", "pk1"}),
        denylist=frozenset({"0xdef"}),
        shadow=True,
    )
    assert rewrite.service_key == SERVICE_KEY
    assert rewrite.trust_enforce
    assert rewrite.trusted_keys is not None
    assert rewrite.trusted_keys.kid_for(SERVICE_KEY.public_key_b64) == "svc"
    assert (rewrite.max_body_bytes, rewrite.default_min_success_rate) == (2048, 0.5)


def test_signing_key_from_file(tmp_path: Path) -> None:
    """ADAPTER_SIGNING_KEY_FILE is an alternative to the inline secret."""
    path = tmp_path / "key"
    path.write_text(SEED_B64 + "\n")
    config = _config(ADAPTER_ROLLOUT_PERCENT="100", ADAPTER_SIGNING_KEY_FILE=str(path))
    assert config.rewrite.service_key == SERVICE_KEY


BAD = [
    pytest.param({"ADAPTER_ROLLOUT_PERCENT": "101"}, "ADAPTER_ROLLOUT_PERCENT", id="percent-high"),
    pytest.param({"ADAPTER_ROLLOUT_PERCENT": "1.234"}, "ADAPTER_ROLLOUT_PERCENT", id="decimals"),
    pytest.param({"ADAPTER_ROLLOUT_PERCENT": "10"}, "ADAPTER_SIGNING_KEY", id="percent-no-key"),
    pytest.param(
        {"ADAPTER_ROLLOUT_ALLOWLIST": "0xabc"}, "ADAPTER_SIGNING_KEY", id="allowlist-no-key"
    ),
    pytest.param({"ADAPTER_SHADOW": "true"}, "ADAPTER_SIGNING_KEY", id="shadow-no-key"),
    pytest.param({"ADAPTER_SHADOW": "maybe"}, "ADAPTER_SHADOW", id="shadow-not-bool"),
    pytest.param({"ADAPTER_SIGNING_KEY": "not base64!"}, "ADAPTER_SIGNING_KEY", id="bad-key"),
    pytest.param(
        {"ADAPTER_TRUST_ENFORCE": "true"}, "ADAPTER_TRUSTED_KEYS_FILE", id="enforce-no-file"
    ),
    pytest.param(
        {"ADAPTER_TRUSTED_KEYS_FILE": "/nonexistent/keys.json"},
        "ADAPTER_TRUSTED_KEYS_FILE",
        id="missing-keys-file",
    ),
    pytest.param(
        {"ADAPTER_MAX_REWRITE_BYTES": "0"}, "ADAPTER_MAX_REWRITE_BYTES", id="zero-max-bytes"
    ),
    pytest.param(
        {"ADAPTER_DEFAULT_MIN_SUCCESS_RATE": "1.5"},
        "ADAPTER_DEFAULT_MIN_SUCCESS_RATE",
        id="rate-above-one",
    ),
    pytest.param(
        {"ADAPTER_DEFAULT_MIN_SUCCESS_RATE": "nan"},
        "ADAPTER_DEFAULT_MIN_SUCCESS_RATE",
        id="rate-nan",
    ),
]


@pytest.mark.parametrize(("env", "variable"), BAD)
def test_bad_rewrite_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    """A bad or missing rewrite value stops start-up with an error naming the variable."""
    with pytest.raises(ConfigError) as caught:
        _config(**env)
    assert caught.value.name == variable
    assert str(caught.value).startswith(f"{variable}=")


def test_malformed_trusted_keys_file_is_a_start_up_error(tmp_path: Path) -> None:
    """A keys file the runner would silently ignore is refused, with the problem named."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"trusted_keys": []}))
    with pytest.raises(ConfigError, match=r"ADAPTER_TRUSTED_KEYS_FILE=.*JSON array"):
        _config(ADAPTER_TRUSTED_KEYS_FILE=str(path))


def test_secret_never_in_errors_or_redacted_config() -> None:
    """Neither an invalid nor a valid signing key shows up in errors or the start-up line."""
    bad = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    with pytest.raises(ConfigError) as caught:
        _config(ADAPTER_SIGNING_KEY=bad)
    assert bad not in str(caught.value)
    redacted = _config(ADAPTER_ROLLOUT_PERCENT="5", ADAPTER_SIGNING_KEY=SEED_B64).redacted()
    shown = json.dumps(redacted)
    assert SEED_B64 not in shown
    assert redacted["rewrite"] == {
        "policy": {
            "threshold": 500,
            "salt": "beacon-cross-region",
            "allowlist": [],
            "denylist": [],
            "shadow": False,
        },
        "service_key": "***",
        "trusted_keys": None,
        "trust_enforce": False,
        "default_min_success_rate": 0.67,
        "max_body_bytes": DEFAULT_MAX_BODY_BYTES,
        "version": _config().rewrite.version,
    }

"""The runner's trusted-keys file: statuses over time, and strict refusal of bad files."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from adapter.jobs.trust import KeyStatus, TrustedKeys, TrustFileError

KEY_A = base64.b64encode(b"\x01" * 32).decode()
KEY_B = base64.b64encode(b"\x02" * 32).decode()
KEY_C = base64.b64encode(b"\x03" * 32).decode()
KEY_D = base64.b64encode(b"\x04" * 32).decode()


def _write(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "trusted_keys.json"
    path.write_text(json.dumps(entries) if not isinstance(entries, str) else entries)
    return path


@pytest.fixture(name="keys")
def _keys(tmp_path: Path) -> TrustedKeys:
    return TrustedKeys.load(
        _write(
            tmp_path,
            [
                {"kid": "active", "public_key": KEY_A, "status": "active"},
                {"kid": "revoked", "public_key": KEY_B, "status": "revoked"},
                {
                    "kid": "window",
                    "public_key": KEY_C,
                    "not_before": "2025-01-01T00:00:00Z",
                    "not_after": "2026-01-01T00:00:00.0000005+00:00",
                },
                {"KID": "folded", "Public_Key": KEY_D, "status": "", "unknown": 1},
            ],
        )
    )


@pytest.mark.parametrize(
    ("public_key", "at", "status"),
    [
        pytest.param(KEY_A, datetime(2030, 1, 1, tzinfo=UTC), KeyStatus.TRUSTED, id="active"),
        pytest.param(KEY_B, datetime(2025, 6, 1, tzinfo=UTC), KeyStatus.REVOKED, id="revoked"),
        pytest.param(
            KEY_C,
            datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
            KeyStatus.NOT_YET_VALID,
            id="early",
        ),
        pytest.param(KEY_C, datetime(2025, 1, 1, tzinfo=UTC), KeyStatus.TRUSTED, id="at-start"),
        pytest.param(
            KEY_C, datetime(2026, 1, 1, tzinfo=UTC), KeyStatus.TRUSTED, id="ns-before-end"
        ),
        pytest.param(
            KEY_C, datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC), KeyStatus.EXPIRED, id="after-end"
        ),
        pytest.param(
            KEY_C,
            datetime(2025, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))),
            KeyStatus.EXPIRED,
            id="offset-aware",
        ),
        pytest.param(KEY_D, datetime(2025, 6, 1, tzinfo=UTC), KeyStatus.TRUSTED, id="empty-status"),
        pytest.param(
            base64.b64encode(b"\x09" * 32).decode(),
            datetime(2025, 6, 1, tzinfo=UTC),
            KeyStatus.UNKNOWN,
            id="unlisted",
        ),
    ],
)
def test_status(keys: TrustedKeys, public_key: str, at: datetime, status: KeyStatus) -> None:
    """Each key's status follows the runner: revoked first, then the validity window."""
    assert keys.status(public_key, at) is status


def test_kid_for(keys: TrustedKeys) -> None:
    """kid_for finds the kid by exact public key text; keys match field names like Go."""
    assert keys.kid_for(KEY_A) == "active"
    assert keys.kid_for(KEY_D) == "folded"
    assert keys.kid_for(KEY_A.rstrip("=")) is None


def test_naive_datetime_is_refused(keys: TrustedKeys) -> None:
    """A naive datetime is ambiguous, so status() refuses it."""
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.status(KEY_A, datetime(2025, 1, 1))


def test_status_values_are_the_runners_words() -> None:
    """Statuses carry the runner's strings (used in trust_violation:<status>)."""
    assert [s.value for s in KeyStatus] == [
        "trusted",
        "revoked",
        "expired",
        "not_yet_valid",
        "unknown",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("{", "not valid JSON", id="invalid-json"),
        pytest.param({"trusted_keys": []}, "must be a JSON array", id="stale-wrapper-format"),
        pytest.param(["x"], "entry 0 is not an object", id="entry-not-object"),
        pytest.param([{"public_key": KEY_A}], "entry 0 missing kid", id="missing-kid"),
        pytest.param([{"kid": "a"}], "missing public_key", id="missing-public-key"),
        pytest.param(
            [{"kid": "a", "public_key": KEY_A}, {"kid": "a", "public_key": KEY_B}],
            "duplicate kid 'a'",
            id="duplicate-kid",
        ),
        pytest.param(
            [{"kid": "a", "public_key": KEY_A}, {"kid": "b", "public_key": KEY_A}],
            "duplicate public_key",
            id="duplicate-public-key",
        ),
        pytest.param([{"kid": "a", "public_key": "%%%"}], "invalid base64", id="bad-base64"),
        pytest.param(
            [{"kid": "a", "public_key": base64.b64encode(bytes(16)).decode()}],
            "16 bytes, want 32",
            id="wrong-key-size",
        ),
        pytest.param(
            [{"kid": "a", "public_key": KEY_A, "status": "enabled"}],
            "invalid status 'enabled'",
            id="unknown-status",
        ),
        pytest.param(
            [{"kid": "a", "public_key": KEY_A, "not_before": "2025-01-01"}],
            "invalid not_before",
            id="bad-not-before",
        ),
        pytest.param(
            [{"kid": "a", "public_key": KEY_A, "not_after": "yesterday"}],
            "invalid not_after",
            id="bad-not-after",
        ),
        pytest.param(
            [
                {
                    "kid": "a",
                    "public_key": KEY_A,
                    "not_before": "2026-01-01T00:00:00Z",
                    "not_after": "2025-01-01T00:00:00Z",
                }
            ],
            "not_before after not_after",
            id="inverted-window",
        ),
        pytest.param([{"kid": 7, "public_key": KEY_A}], "kid must be a string", id="kid-number"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: Any, problem: str) -> None:
    """A bad file is a start-up error naming the file and the problem, not silently ignored."""
    path = _write(tmp_path, content)
    with pytest.raises(TrustFileError, match=problem) as caught:
        TrustedKeys.load(path)
    assert str(path) in str(caught.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A missing file is an error too (unlike the runner, which treats it as empty)."""
    path = tmp_path / "absent.json"
    with pytest.raises(TrustFileError, match=r"absent\.json"):
        TrustedKeys.load(path)

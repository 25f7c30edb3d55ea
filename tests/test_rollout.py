"""The sticky percentage rollout: bucketing, key choice, lists and the percent parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from adapter.jobs.rollout import (
    BUCKETS,
    DEFAULT_SALT,
    KeyKind,
    RolloutPolicy,
    RolloutReason,
    bucket_of,
    choose,
    parse_identity_list,
    parse_percent,
    sticky_key,
)

README = Path(__file__).resolve().parents[1] / "README.md"

WALLET = "0x67f3d16a91991cf169920f1e79f78e66708da328"
PORTAL_KEY = "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="

# Worked values, cross-checked by hand: int(sha256(f"{salt}:{key}").hexdigest()[:16], 16) % 10000.
WORKED = [
    pytest.param(WALLET, DEFAULT_SALT, 480, id="portal-wallet"),
    pytest.param(WALLET, "other-salt", 5738, id="portal-wallet-other-salt"),
    pytest.param("0xc6579f23bce27c2df92729ad5fc60e090c871ca2", DEFAULT_SALT, 501, id="old-wallet"),
    pytest.param(PORTAL_KEY, DEFAULT_SALT, 6408, id="portal-public-key"),
    pytest.param("bias-detection-1760278330614", DEFAULT_SALT, 6462, id="job-id"),
]


@pytest.mark.parametrize(("key", "salt", "bucket"), WORKED)
def test_bucket_worked_values(key: str, salt: str, bucket: int) -> None:
    """bucket_of gives the documented bucket for known keys."""
    assert bucket_of(key, salt) == bucket


def test_readme_worked_values_are_true() -> None:
    """Every row of the README's worked-values table is what bucket_of computes."""
    rows = re.findall(
        r"^\| `(?P<salt>[^`]*)` \| `(?P<key>[^`]*)` \| (?P<bucket>\d+) \|", README.read_text(), re.M
    )
    assert len(rows) >= 3, "README lost its worked-values table"
    for salt, key, bucket in rows:
        assert bucket_of(key, salt) == int(bucket), (salt, key)


@given(st.text(), st.text())
def test_bucket_is_in_range_and_stable(key: str, salt: str) -> None:
    """A key always lands in the same bucket in 0..9999."""
    first = bucket_of(key, salt)
    assert 0 <= first < BUCKETS
    assert bucket_of(key, salt) == first


@given(
    st.text(min_size=1).filter(str.strip),
    st.integers(0, BUCKETS),
    st.integers(0, BUCKETS),
)
def test_raising_percent_never_deselects(key: str, low: int, high: int) -> None:
    """Going from a lower to a higher percent keeps every selected submitter selected."""
    low, high = sorted((low, high))
    spec = {"public_key": key}
    if choose(RolloutPolicy(threshold=low), spec).selected:
        assert choose(RolloutPolicy(threshold=high), spec).selected


def test_buckets_are_roughly_uniform() -> None:
    """Ten thousand distinct keys split close to the percent (10 % ± 1.5 %)."""
    keys = [f"0x{i:040x}" for i in range(10_000)]
    selected = sum(bucket_of(k) < 1_000 for k in keys)
    assert 850 <= selected <= 1_150


KEY_CHOICE = [
    pytest.param(
        {
            "wallet_auth": {"address": "0xABC"},
            "metadata": {"wallet_address": "0xdef"},
            "public_key": "pk",
            "id": "j",
        },
        KeyKind.WALLET_AUTH_ADDRESS,
        "0xabc",
        id="wallet-auth-first-lower-cased",
    ),
    pytest.param(
        {"wallet_auth": None, "metadata": {"wallet_address": "0xDEF"}, "public_key": "pk"},
        KeyKind.METADATA_WALLET_ADDRESS,
        "0xdef",
        id="metadata-wallet-second",
    ),
    pytest.param(
        {"wallet_auth": {"address": ""}, "metadata": None, "public_key": "pk", "id": "j"},
        KeyKind.PUBLIC_KEY,
        "pk",
        id="empty-address-skipped",
    ),
    pytest.param({"id": "job-1"}, KeyKind.JOB_ID, "job-1", id="job-id-last"),
    pytest.param(
        {"metadata": {"wallet_address": 7}, "id": "job-1"},
        KeyKind.JOB_ID,
        "job-1",
        id="non-string-address-ignored",
    ),
]


@pytest.mark.parametrize(("spec", "kind", "value"), KEY_CHOICE)
def test_sticky_key_order(spec: dict[str, Any], kind: KeyKind, value: str) -> None:
    """The sticky key is the first present of the four documented fields."""
    key = sticky_key(spec)
    assert key is not None
    assert (key.kind, key.value) == (kind, value)


def test_no_key_is_not_selected() -> None:
    """A spec with no identity at all is never selected, even at 100 %."""
    choice = choose(RolloutPolicy(threshold=BUCKETS), {"metadata": {}})
    assert (choice.selected, choice.reason, choice.bucket) == (
        False,
        RolloutReason.NO_STICKY_KEY,
        None,
    )


LISTS = [
    pytest.param(RolloutPolicy(threshold=0), False, RolloutReason.NOT_IN_ROLLOUT, id="zero"),
    pytest.param(RolloutPolicy(threshold=BUCKETS), True, RolloutReason.IN_ROLLOUT, id="hundred"),
    pytest.param(RolloutPolicy(threshold=480), False, RolloutReason.NOT_IN_ROLLOUT, id="at-bucket"),
    pytest.param(RolloutPolicy(threshold=481), True, RolloutReason.IN_ROLLOUT, id="above-bucket"),
    pytest.param(
        RolloutPolicy(allowlist=frozenset({WALLET})), True, RolloutReason.ALLOWLISTED, id="allow"
    ),
    pytest.param(
        RolloutPolicy(allowlist=frozenset({PORTAL_KEY})),
        True,
        RolloutReason.ALLOWLISTED,
        id="allow-by-public-key",
    ),
    pytest.param(
        RolloutPolicy(threshold=BUCKETS, denylist=frozenset({WALLET})),
        False,
        RolloutReason.DENYLISTED,
        id="deny-beats-percent",
    ),
    pytest.param(
        RolloutPolicy(allowlist=frozenset({WALLET}), denylist=frozenset({PORTAL_KEY})),
        False,
        RolloutReason.DENYLISTED,
        id="deny-beats-allow",
    ),
]


@pytest.mark.parametrize(("policy", "selected", "reason"), LISTS)
def test_choose(policy: RolloutPolicy, selected: bool, reason: RolloutReason) -> None:
    """Lists, percent and bucket combine as documented; the bucket is always reported."""
    spec = {
        "wallet_auth": {"address": WALLET.upper().replace("0X", "0x")},
        "public_key": PORTAL_KEY,
    }
    choice = choose(policy, spec)
    assert (choice.selected, choice.reason, choice.bucket) == (selected, reason, 480)


PERCENTS = [
    pytest.param("0", 0, id="zero"),
    pytest.param("100", 10_000, id="hundred"),
    pytest.param("12.5", 1_250, id="one-decimal"),
    pytest.param(" 0.01 ", 1, id="smallest-step-with-spaces"),
    pytest.param("99.99", 9_999, id="two-decimals"),
    pytest.param("5E1", 5_000, id="exponent"),
]


@pytest.mark.parametrize(("raw", "threshold"), PERCENTS)
def test_parse_percent(raw: str, threshold: int) -> None:
    """Percentages with up to two decimals map onto the 10,000 buckets."""
    assert parse_percent(raw) == threshold


@pytest.mark.parametrize("raw", ["", "abc", "-1", "100.01", "0.001", "nan", "inf", "1,5"], ids=repr)
def test_parse_percent_rejects(raw: str) -> None:
    """Anything outside 0..100 or finer than 0.01 is refused with a reason."""
    with pytest.raises(ValueError, match=r"must be a number|at most two decimals"):
        parse_percent(raw)


def test_identity_list_normalises_addresses_only() -> None:
    """Addresses are lower-cased, base64 public keys kept exactly, blanks dropped."""
    assert parse_identity_list(f" 0xABCdef , ,{PORTAL_KEY}") == {"0xabcdef", PORTAL_KEY}


def test_policy_rejects_out_of_range_threshold() -> None:
    """A threshold outside the bucket range is a programming error."""
    with pytest.raises(ValueError, match="threshold"):
        RolloutPolicy(threshold=BUCKETS + 1)

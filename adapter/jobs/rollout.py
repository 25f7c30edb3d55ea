"""Sticky percentage rollout: which submitters get the cross-region rewrite.

Pure functions over values. A submitter is hashed into one of 10,000 buckets with
SHA-256 of ``salt + ":" + key``; it is selected when its bucket is below the
threshold (percent x 100). The hash ignores the percent, so raising the percent
only ever adds buckets (monotone ramp) and every instance and every run agrees
(sticky). The allowlist and denylist exist for internal testing before any
percent is opened; the denylist wins over everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

BUCKETS: Final = 10_000
DEFAULT_SALT: Final = "beacon-cross-region"


class KeyKind(StrEnum):
    """Where the sticky key came from, in order of preference."""

    WALLET_AUTH_ADDRESS = "wallet_auth.address"
    METADATA_WALLET_ADDRESS = "metadata.wallet_address"
    PUBLIC_KEY = "public_key"
    JOB_ID = "id"


class RolloutReason(StrEnum):
    """Why the rollout selected a submitter or not (a closed set: a metric label)."""

    DENYLISTED = "denylisted"
    ALLOWLISTED = "allowlisted"
    IN_ROLLOUT = "in_rollout"
    NOT_IN_ROLLOUT = "not_in_rollout"
    NO_STICKY_KEY = "no_sticky_key"


@dataclass(frozen=True, slots=True)
class StickyKey:
    """The identity a submitter is bucketed by."""

    kind: KeyKind
    value: str


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """The rollout flag as configured: threshold in basis points of a percent."""

    threshold: int = 0
    salt: str = DEFAULT_SALT
    allowlist: frozenset[str] = frozenset()
    denylist: frozenset[str] = frozenset()
    shadow: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= BUCKETS:
            msg = f"threshold must be within 0..{BUCKETS}, got {self.threshold}"
            raise ValueError(msg)

    @property
    def percent(self) -> float:
        """The configured percentage (0-100) for display and the gauge."""
        return self.threshold / 100

    @property
    def rewrites_anything(self) -> bool:
        """True when some request could be rewritten or shadowed: a signing key is needed."""
        return self.threshold > 0 or bool(self.allowlist) or self.shadow


@dataclass(frozen=True, slots=True)
class RolloutChoice:
    """The rollout's answer for one submitter, with everything needed to explain it."""

    selected: bool
    reason: RolloutReason
    key: StickyKey | None
    bucket: int | None


def parse_percent(raw: str) -> int:
    """Parse ``0``..``100`` with at most two decimals into a threshold in 0..10000."""
    text = raw.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        msg = "must be a number from 0 to 100"
        raise ValueError(msg) from None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        msg = "must be a number from 0 to 100"
        raise ValueError(msg)
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        msg = "allows at most two decimals (10,000 buckets)"
        raise ValueError(msg)
    return int(scaled)


def parse_identity_list(raw: str) -> frozenset[str]:
    """Parse a comma-separated list of wallet addresses or public keys."""
    return frozenset(normalise_identity(item) for item in raw.split(",") if item.strip())


def normalise_identity(value: str) -> str:
    """Addresses compare case-insensitively (hex); base64 public keys are case-sensitive."""
    text = value.strip()
    return text.lower() if text[:2].lower() == "0x" else text


def bucket_of(key: str, salt: str = DEFAULT_SALT) -> int:
    """The submitter's bucket: first 8 bytes of SHA-256(salt:key), big-endian, mod 10,000."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def sticky_key(spec: Mapping[str, Any]) -> StickyKey | None:
    """The first present of wallet_auth.address, metadata.wallet_address, public_key, id."""
    for kind, value in _identities(spec):
        if value:
            return StickyKey(kind, value)
    return None


def choose(policy: RolloutPolicy, spec: Mapping[str, Any]) -> RolloutChoice:
    """Decide whether this spec's submitter is in the rollout, and why."""
    identities = {value for _, value in _identities(spec) if value}
    key = sticky_key(spec)
    bucket = None if key is None else bucket_of(key.value, policy.salt)
    if identities & policy.denylist:
        return RolloutChoice(False, RolloutReason.DENYLISTED, key, bucket)
    if identities & policy.allowlist:
        return RolloutChoice(True, RolloutReason.ALLOWLISTED, key, bucket)
    if bucket is None:
        return RolloutChoice(False, RolloutReason.NO_STICKY_KEY, None, None)
    if bucket < policy.threshold:
        return RolloutChoice(True, RolloutReason.IN_ROLLOUT, key, bucket)
    return RolloutChoice(False, RolloutReason.NOT_IN_ROLLOUT, key, bucket)


def _identities(spec: Mapping[str, Any]) -> Iterable[tuple[KeyKind, str]]:
    wallet_auth = spec.get("wallet_auth")
    metadata = spec.get("metadata")
    yield KeyKind.WALLET_AUTH_ADDRESS, _address(wallet_auth, "address")
    yield KeyKind.METADATA_WALLET_ADDRESS, _address(metadata, "wallet_address")
    yield KeyKind.PUBLIC_KEY, _text(spec.get("public_key"))
    yield KeyKind.JOB_ID, _text(spec.get("id"))


def _address(container: object, field: str) -> str:
    if not isinstance(container, Mapping):
        return ""
    return _text(container.get(field)).lower()


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""

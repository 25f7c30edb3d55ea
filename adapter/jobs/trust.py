"""The runner's trusted-keys file (``TRUSTED_KEYS_FILE``), read strictly.

Format and key status follow ``internal/config/trust.go`` @ a234c19: a JSON array of
``{kid, public_key, status, not_before, not_after}``; revoked wins, then the validity
window. The runner silently ignores a file it cannot parse; we refuse it at start-up
instead, so a typo cannot quietly turn enforcement off.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from adapter.jobs.gojson import GoDecodeError, GoObject, fold_key, parse
from adapter.jobs.jobspec import parse_rfc3339
from adapter.jobs.signing import PUBLIC_KEY_SIZE, decode_std_base64

_FIELDS: Final = ("kid", "public_key", "status", "not_before", "not_after")
_STATUSES: Final = ("", "active", "revoked")


class KeyStatus(StrEnum):
    """A key's standing, as the runner's ``EvaluateKeyTrust`` names it."""

    TRUSTED = "trusted"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNKNOWN = "unknown"


class TrustFileError(ValueError):
    """The trusted-keys file is unusable; the message names the file and the problem."""


# (seconds since the epoch, nanoseconds): exact for RFC 3339 fractions of up to 9 digits.
_Instant = tuple[int, int]


def _parse_instant(text: str) -> _Instant:
    """An RFC 3339 instant, validated as Go does; raises ``ValueError``."""
    normal = parse_rfc3339(text)
    rest = normal[19:]
    zone_at = len(rest) - (1 if rest.endswith("Z") else 6)
    fraction, zone = rest[:zone_at], rest[zone_at:]
    whole = datetime.fromisoformat(normal[:19] + ("+00:00" if zone == "Z" else zone))
    nanos = int(fraction[1:].ljust(9, "0")) if fraction else 0
    return int(whole.timestamp()), nanos


def _instant_of(at: datetime) -> _Instant:
    if at.tzinfo is None:
        raise ValueError("trust status needs a timezone-aware datetime")
    whole = at.replace(microsecond=0)
    return int(whole.timestamp()), at.microsecond * 1000


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One entry of the file."""

    kid: str
    public_key: str
    status: str
    not_before: _Instant | None
    not_after: _Instant | None


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The allowlist, indexed by the exact base64 text of each public key (as the runner)."""

    path: str
    by_public_key: Mapping[str, TrustedKey]

    @classmethod
    def load(cls, path: str | Path) -> TrustedKeys:
        """Read and validate the file; raise ``TrustFileError`` on any problem."""
        name = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TrustFileError(f"trusted keys file {name}: {exc.strerror}") from None
        return cls.from_bytes(data, name)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> TrustedKeys:
        """Validate file contents; ``name`` is used in error messages."""

        def fail(problem: str) -> TrustFileError:
            return TrustFileError(f"trusted keys file {name}: {problem}")

        try:
            root = parse(data)
        except GoDecodeError as exc:
            raise fail(f"not valid JSON: {exc}") from None
        if not isinstance(root, list):
            raise fail('must be a JSON array of {"kid", "public_key", ...} objects')
        entries: dict[str, TrustedKey] = {}
        kids: set[str] = set()
        for index, node in enumerate(root):
            entry = _entry(node, index, fail)
            if entry.kid in kids:
                raise fail(f"duplicate kid {entry.kid!r}")
            if entry.public_key in entries:
                raise fail(f"duplicate public_key for kid {entry.kid!r}")
            kids.add(entry.kid)
            entries[entry.public_key] = entry
        return cls(name, entries)

    def kid_for(self, public_key_b64: str) -> str | None:
        """The kid listed for this public key, if any."""
        entry = self.by_public_key.get(public_key_b64)
        return None if entry is None else entry.kid

    def status(self, public_key_b64: str, at: datetime) -> KeyStatus:
        """Trusted, revoked, expired, not yet valid, or unknown at the instant ``at``."""
        entry = self.by_public_key.get(public_key_b64)
        if entry is None:
            return KeyStatus.UNKNOWN
        if entry.status == "revoked":
            return KeyStatus.REVOKED
        now = _instant_of(at)
        if entry.not_before is not None and now < entry.not_before:
            return KeyStatus.NOT_YET_VALID
        if entry.not_after is not None and now > entry.not_after:
            return KeyStatus.EXPIRED
        return KeyStatus.TRUSTED


def _entry(node: Any, index: int, fail: Callable[[str], TrustFileError]) -> TrustedKey:
    if not isinstance(node, GoObject):
        raise fail(f"entry {index} is not an object")
    values = dict.fromkeys(_FIELDS, "")
    folded = {fold_key(name): name for name in _FIELDS}
    for key, value in node:
        name = key if key in values else folded.get(fold_key(key))
        if name is None:
            continue
        if value is not None and not isinstance(value, str):
            raise fail(f"entry {index}: {name} must be a string")
        values[name] = value or ""
    kid, public_key, status = values["kid"], values["public_key"], values["status"]
    if not kid:
        raise fail(f"entry {index} missing kid")
    if not public_key:
        raise fail(f"entry {index} missing public_key (kid={kid})")
    try:
        raw = decode_std_base64(public_key)
    except (ValueError, binascii.Error):
        raise fail(f"entry {index} invalid base64 public_key (kid={kid})") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise fail(f"entry {index} public_key is {len(raw)} bytes, want 32 (kid={kid})")
    if status not in _STATUSES:
        raise fail(f"entry {index} invalid status {status!r} (kid={kid})")
    window: list[_Instant | None] = []
    for name in ("not_before", "not_after"):
        text = values[name]
        try:
            window.append(_parse_instant(text) if text else None)
        except ValueError:
            raise fail(
                f"entry {index} invalid {name} {text!r}, want RFC 3339 (kid={kid})"
            ) from None
    not_before, not_after = window
    if not_before is not None and not_after is not None and not_before > not_after:
        raise fail(f"entry {index} not_before after not_after (kid={kid})")
    return TrustedKey(kid, public_key, status, not_before, not_after)

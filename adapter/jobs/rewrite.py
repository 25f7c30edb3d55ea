"""The cross-region rewrite: decide, per submitted job, whether to rewrite it, and build it.

Pure: bytes, config values and the clock reading come in; a ``Verdict`` comes out.
The checks run in a fixed order and the first that fails names the reason, so every
pass-through can be explained. Trust assumption: the adapter re-signs only specs that
their submitter signed and that verify under one of the portal or runner schemes; with
``trust_enforce`` the submitter's key must also be trusted. The portal's own key is
compromised by nonce reuse (docs/runner-contract.md §8), so production should enforce trust
or rely on network placement, not on a portal signature alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from adapter import __version__
from adapter.jobs.canonical import canonical_v1
from adapter.jobs.gojson import MAX_DEPTH, GoDecodeError, exceeds_max_depth
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.replay import metadata_problem, nonce_key
from adapter.jobs.rollout import RolloutPolicy, RolloutReason, choose
from adapter.jobs.signing import ServiceKey, SignedSpec, recognise_signer, sign_v1
from adapter.jobs.trust import KeyStatus, TrustedKeys

JSON_MEDIA_TYPE: Final = "application/json"
CROSS_REGION_PATH: Final = "/api/v1/jobs/cross-region"


class Decision(StrEnum):
    """What the adapter did with a submission (the first word of X-Adapter-Decision)."""

    PASSTHROUGH = "passthrough"
    REWRITTEN = "rewritten"
    FALLBACK = "fallback"


class Reason(StrEnum):
    """Why: a closed set, used as a metric label and in the X-Adapter-Decision header."""

    NOT_JSON = "not_json"
    UNDECODABLE = "undecodable"
    TOO_LARGE = "too_large"
    SINGLE_REGION = "single_region"
    NOT_IN_ROLLOUT = "not_in_rollout"
    DENYLISTED = "denylisted"
    NO_STICKY_KEY = "no_sticky_key"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_KEY = "untrusted_key"
    SELF_CHECK_FAILED = "self_check_failed"
    IN_ROLLOUT = "in_rollout"
    ALLOWLISTED = "allowlisted"
    REWRITTEN = "rewritten"
    CROSS_REGION_MISSING = "cross_region_missing"
    IDEMPOTENT_REPEAT = "idempotent_repeat"
    # The standard route's checks with trust enforcement (adapter.jobs.replay).
    MISSING_METADATA = "missing_metadata"
    MISSING_TIMESTAMP = "missing_timestamp"
    # Decided by the I/O shell after ``decide``: the guard, the replay check, the 400 fallback.
    GUARD_OPEN = "guard_open"
    REPLAYED_NONCE = "replayed_nonce"
    REPLAY_CHECK_UNAVAILABLE = "replay_check_unavailable"
    CROSS_REGION_REJECTED = "cross_region_rejected"


_ROLLOUT_REASONS: Final = {
    RolloutReason.IN_ROLLOUT: Reason.IN_ROLLOUT,
    RolloutReason.ALLOWLISTED: Reason.ALLOWLISTED,
    RolloutReason.NOT_IN_ROLLOUT: Reason.NOT_IN_ROLLOUT,
    RolloutReason.DENYLISTED: Reason.DENYLISTED,
    RolloutReason.NO_STICKY_KEY: Reason.NO_STICKY_KEY,
}


# The cross-region route's 400s all come before its first INSERT (bind, verify, Validate;
# docs/runner-contract.md §6) or from the global JSON check (§3): their ``error`` values,
# as a closed set of metric labels.
_REJECTION_LABELS: Final = {
    "Invalid request format": "invalid_request_format",
    "Invalid JobSpec signature": "invalid_signature",
    "Invalid JobSpec": "invalid_jobspec",
    "invalid_content_type": "invalid_content_type",
}


def rejection_label(error: object) -> str:
    """The metric label for a cross-region 400's ``error`` value; anything else is other."""
    return _REJECTION_LABELS.get(error, "other") if isinstance(error, str) else "other"


DEFAULT_MAX_BODY_BYTES: Final = 1_048_576  # the runner's own cap on POST /api/v1/jobs
DEFAULT_MIN_SUCCESS_RATE: Final = 0.67


def describe_trusted_keys(keys: TrustedKeys | None) -> dict[str, object] | None:
    """The trusted keys file as logs and ``/admin/rewrite`` show it: where, and how many."""
    return None if keys is None else {"path": keys.path, "keys": len(keys.by_public_key)}


@dataclass(frozen=True, slots=True)
class RewriteSettings:
    """Everything the rewrite needs that does not change from request to request."""

    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    service_key: ServiceKey | None = field(default=None, metadata={"secret": True})
    trusted_keys: TrustedKeys | None = field(
        default=None, metadata={"describe": describe_trusted_keys}
    )
    trust_enforce: bool = False
    default_min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE
    # Bodies above this are not read for a decision: they pass through streamed.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    version: str = __version__


@dataclass(frozen=True, slots=True)
class CrossRegionRequest:
    """The request the adapter sends instead of the original, already signed and checked."""

    body: bytes
    job_id: str
    target_regions: tuple[str, ...]
    min_regions: int
    min_success_rate: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one submission and what explains it."""

    decision: Decision
    reason: Reason
    job_id: str | None = None
    bucket: int | None = None
    signer: str | None = None
    scheme: str | None = None
    rewrite: CrossRegionRequest | None = None
    # With trust enforcement: the runner's replay key to claim before sending the rewrite.
    replay_key: str | None = None
    # Shadow mode, submitter outside the rollout: what the rewrite would have done.
    shadow: Reason | None = None

    @property
    def header(self) -> str:
        """The X-Adapter-Decision header value."""
        value = f"{self.decision}; reason={self.reason}"
        return value if self.bucket is None else f"{value}; bucket={self.bucket}"


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` with any parameters, as the runner's check accepts it."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


def decide(
    settings: RewriteSettings,
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    now: datetime,
    id_suffix: str = "",
) -> Verdict:
    """Run the checks in their documented order and build the rewrite when they all pass.

    ``id_suffix`` (random, from the caller) completes the id given to a spec that has none.
    """
    if not is_json_media_type(content_type) or _is_encoded(content_encoding):
        return Verdict(Decision.PASSTHROUGH, Reason.NOT_JSON)
    try:
        spec = decode_jobspec(body)
    except GoDecodeError:
        return Verdict(Decision.PASSTHROUGH, Reason.UNDECODABLE)
    job_id = _job_id(spec)
    regions = distinct_regions(spec)
    if len(regions) < 2:
        return Verdict(Decision.PASSTHROUGH, Reason.SINGLE_REGION, job_id=job_id or None)
    choice = choose(settings.policy, spec)
    verdict = Verdict(
        Decision.PASSTHROUGH,
        _ROLLOUT_REASONS[choice.reason],
        job_id=job_id or None,
        bucket=choice.bucket,
    )
    if not choice.selected and not settings.policy.shadow:
        return verdict
    outcome = _rewrite_outcome(settings, body, spec, regions, now, id_suffix)
    verdict = replace(verdict, signer=outcome.signer, scheme=outcome.scheme)
    if not choice.selected:
        return replace(verdict, shadow=outcome.reason)
    if outcome.rewrite is None:
        return replace(verdict, reason=outcome.reason)
    rewrite = outcome.rewrite
    replay_key = nonce_key(spec) if settings.trust_enforce else None
    return replace(
        verdict,
        decision=Decision.REWRITTEN,
        rewrite=rewrite,
        job_id=rewrite.job_id,
        replay_key=replay_key,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    reason: Reason
    signer: str | None
    scheme: str | None
    rewrite: CrossRegionRequest | None


def _rewrite_outcome(
    settings: RewriteSettings,
    body: bytes,
    spec: dict[str, Any],
    regions: tuple[str, ...],
    now: datetime,
    id_suffix: str,
) -> _Outcome:
    signer = spec.get("public_key") or None
    if not spec.get("signature") or not signer:
        return _Outcome(Reason.UNSIGNED, signer, None, None)
    check = recognise_signer(body, spec)
    if check.scheme is None:
        return _Outcome(Reason.BAD_SIGNATURE, signer, None, None)
    if settings.trust_enforce and not _is_trusted(settings.trusted_keys, signer, now):
        return _Outcome(Reason.UNTRUSTED_KEY, signer, check.scheme, None)
    problem = metadata_problem(spec) if settings.trust_enforce else None
    if problem is not None:  # the standard route would refuse it: let it answer for itself
        return _Outcome(Reason(problem.value), signer, check.scheme, None)
    if settings.service_key is None:  # config validation prevents this; stay safe anyway
        return _Outcome(Reason.SELF_CHECK_FAILED, signer, check.scheme, None)
    try:
        new_id = generated_job_id(spec, now, id_suffix)
        request, signed = _build_and_sign(
            settings, spec, regions, scheme=check.scheme, new_id=new_id
        )
    except ValueError:  # a value Go cannot marshal (e.g. a non-finite float)
        return _Outcome(Reason.SELF_CHECK_FAILED, signer, check.scheme, None)
    if exceeds_max_depth(request.body, MAX_DEPTH):
        # The cross-region request wraps the spec one level deeper; past the 10,000 levels
        # Go decodes (docs/runner-contract.md §1) the runner could not bind it at all.
        return _Outcome(Reason.UNDECODABLE, signer, check.scheme, None)
    if not self_check_signed(request.body, signed):
        return _Outcome(Reason.SELF_CHECK_FAILED, signer, check.scheme, None)
    return _Outcome(Reason.REWRITTEN, signer, check.scheme, request)


def build_cross_region_request(
    settings: RewriteSettings,
    spec: Mapping[str, Any],
    regions: tuple[str, ...],
    *,
    scheme: str,
    new_id: str,
) -> CrossRegionRequest:
    """Build and sign the cross-region body from a decoded (runner-projected) spec.

    ``new_id`` is the id for a spec with neither ``id`` nor ``jobspec_id``.
    """
    return _build_and_sign(settings, spec, regions, scheme=scheme, new_id=new_id)[0]


def _build_and_sign(
    settings: RewriteSettings,
    spec: Mapping[str, Any],
    regions: tuple[str, ...],
    *,
    scheme: str,
    new_id: str,
) -> tuple[CrossRegionRequest, SignedSpec]:
    assert settings.service_key is not None
    # A shallow copy is enough: only top-level keys and a new metadata dict are written.
    jobspec = dict(spec)
    if not jobspec.get("id"):
        jobspec["id"] = jobspec.get("jobspec_id") or new_id
    # The runner signs jobspec_id (it is not among the keys V1 deletes); id carries it now.
    jobspec.pop("jobspec_id", None)
    metadata = jobspec.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    _fill_metadata_models(metadata, jobspec.get("models"))
    metadata["adapter"] = {
        "original_public_key": spec.get("public_key", ""),
        "original_signature": spec.get("signature", ""),
        "original_scheme": scheme,
        "rewritten_by": f"beacon-adapter/{settings.version}",
    }
    jobspec["metadata"] = metadata
    # No shape guard here: the self-check decodes the exact bytes sent.
    signed = sign_v1(jobspec, settings.service_key)
    min_regions = cross_region_min_regions(spec, len(regions))
    min_success_rate = cross_region_min_success_rate(spec, settings.default_min_success_rate)
    wrapper = {
        "jobspec": signed.spec,
        "target_regions": list(regions),
        "min_regions": min_regions,
        "min_success_rate": min_success_rate,
        "enable_analysis": True,
    }
    request = CrossRegionRequest(
        body=marshal_go(wrapper),
        job_id=str(signed.spec.get("id", "")),
        target_regions=regions,
        min_regions=min_regions,
        min_success_rate=min_success_rate,
    )
    return request, signed


def generated_job_id(spec: Mapping[str, Any], now: datetime, suffix: str) -> str:
    """The id of a spec that came without one: the runner's own pattern plus a suffix.

    The runner would name it ``<benchmark.name>-<unix seconds>``; on the cross-region
    route, whose INSERT refuses a repeated id, two such jobs in one second would collide
    (500), so a random suffix keeps them apart. The id is outside the signature.
    """
    benchmark = spec.get("benchmark")
    name = benchmark.get("name") if isinstance(benchmark, Mapping) else None
    base = f"{name or 'job'}-{int(now.timestamp())}"
    return f"{base}-{suffix}" if suffix else base


def self_check_signed(body: bytes, signed: SignedSpec) -> bool:
    """Prove the bytes we send carry exactly what we signed, as the runner will read them.

    Decodes ``body`` as the runner's cross-region route does, then requires our public
    key, our signature, and a V1 canonical byte-equal to ``signed.message``. That is the
    runner's Ed25519 verify without the curve arithmetic: Ed25519 signing is deterministic
    and ``signed``'s signature is our key's signature over exactly ``signed.message``, so
    the runner's verify of (our key, that signature, canonical) succeeds when canonical
    equals the message; for any other canonical it would succeed only by a forgery, and
    the comparison refuses it anyway. Key and signature are our own padded base64 of 32
    and 64 bytes, so the runner's decoding checks pass too. The tests check it against
    the full verify.
    """
    try:
        request = decode_cross_region_request(body)
    except GoDecodeError:
        return False
    jobspec = request["jobspec"]
    return (
        jobspec["public_key"] == signed.spec["public_key"]
        and jobspec["signature"] == signed.signature_b64
        and canonical_v1(jobspec) == signed.message
    )


def distinct_regions(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The non-empty regions of constraints.regions, first occurrence order, no repeats."""
    constraints = spec.get("constraints")
    regions = constraints.get("regions") if isinstance(constraints, Mapping) else None
    if not isinstance(regions, list):
        return ()
    return tuple(dict.fromkeys(r for r in regions if isinstance(r, str) and r))


def cross_region_min_regions(spec: Mapping[str, Any], region_count: int) -> int:
    """The spec's min_regions clamped to [1, n]; max(1, floor(0.67 n)) when it is unset.

    Never 0: the runner would replace 0 with 3 and fail a two-region job.
    """
    constraints = spec.get("constraints")
    wanted = constraints.get("min_regions", 0) if isinstance(constraints, Mapping) else 0
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return min(wanted, region_count)
    return max(1, math.floor(0.67 * region_count))


def cross_region_min_success_rate(spec: Mapping[str, Any], default: float) -> float:
    """The spec's min_success_rate when positive, else the configured default."""
    constraints = spec.get("constraints")
    rate = constraints.get("min_success_rate", 0) if isinstance(constraints, Mapping) else 0
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(rate)
    return default


def _fill_metadata_models(metadata: dict[str, Any], models: object) -> None:
    # The cross-region executor reads only metadata.models, and only its strings
    # (docs/runner-contract.md §6).
    existing = metadata.get("models")
    if isinstance(existing, list) and any(isinstance(m, str) and m for m in existing):
        return
    if not isinstance(models, list):
        return
    ids = [m["id"] for m in models if isinstance(m, Mapping) and isinstance(m.get("id"), str)]
    ids = [i for i in ids if i]
    if ids:
        metadata["models"] = ids


def _job_id(spec: Mapping[str, Any]) -> str:
    for name in ("id", "jobspec_id"):
        value = spec.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _is_encoded(content_encoding: str | None) -> bool:
    # The runner does not decode request bodies: a compressed body is not JSON to it.
    return content_encoding is not None and content_encoding.strip().lower() not in {"", "identity"}


def _is_trusted(trusted_keys: TrustedKeys | None, public_key: str, now: datetime) -> bool:
    return trusted_keys is not None and trusted_keys.status(public_key, now) is KeyStatus.TRUSTED

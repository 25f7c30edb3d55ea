"""The rewrite decision and the cross-region request it builds (pure, no sockets)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from nacl.signing import SigningKey

from adapter.jobs.canonical import canonical_v1
from adapter.jobs.gojson import MAX_DEPTH, GoDecodeError, nesting_depth
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.rewrite import (
    Decision,
    Reason,
    RewriteSettings,
    Verdict,
    cross_region_min_regions,
    cross_region_min_success_rate,
    decide,
    distinct_regions,
    is_json_media_type,
    self_check_signed,
)
from adapter.jobs.rollout import BUCKETS, RolloutPolicy
from adapter.jobs.signing import ServiceKey, SignedSpec, sign_v1, verify_b64
from adapter.jobs.trust import TrustedKeys
from tests.conftest import VECTORS_DIR, load_vector
from tests.portal import WALLET, body, portal_spec, sign

NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
SERVICE_KEY = ServiceKey.from_seed(bytes(range(32)))


def runner_verifies(body: bytes, public_key_b64: str) -> bool:
    """The runner's cross-region check of our bytes, Ed25519 verify and all: decode the
    wrapper as it does, then verify the jobspec's signature over its V1 canonical form."""
    try:
        request = decode_cross_region_request(body)
    except GoDecodeError:
        return False
    jobspec = request.get("jobspec")
    if not isinstance(jobspec, Mapping) or jobspec.get("public_key") != public_key_b64:
        return False
    return verify_b64(public_key_b64, str(jobspec.get("signature", "")), canonical_v1(jobspec))


PORTAL_KEY = SigningKey(bytes(range(32, 64)))
JSON = "application/json; charset=utf-8"


def _settings(**overrides: Any) -> RewriteSettings:
    values: dict[str, Any] = {
        "policy": RolloutPolicy(threshold=BUCKETS),
        "service_key": SERVICE_KEY,
        "version": "9.9.9",
    }
    values.update(overrides)
    return RewriteSettings(**values)


def _decide(settings: RewriteSettings, data: bytes, content_type: str | None = JSON) -> Verdict:
    return decide(settings, data, content_type=content_type, content_encoding=None, now=NOW)


def _signed(**spec_overrides: Any) -> dict[str, Any]:
    return sign(portal_spec(**spec_overrides), PORTAL_KEY, "portal_5fa6ece")


def _tampered() -> bytes:
    spec = _signed()
    spec["questions"] = ["something_else"]
    return body(spec)


def _trust_file(tmp_path: Path, public_key: str) -> TrustedKeys:
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps([{"kid": "k1", "public_key": public_key, "status": "active"}]))
    return TrustedKeys.load(path)


REASONS = [
    pytest.param(_settings(), body(_signed()), JSON, Reason.IN_ROLLOUT, id="rewritten"),
    pytest.param(_settings(), body(_signed()), "text/plain", Reason.NOT_JSON, id="not-json-type"),
    pytest.param(_settings(), body(_signed()), None, Reason.NOT_JSON, id="no-content-type"),
    pytest.param(_settings(), b'{"created_at": ""}', JSON, Reason.UNDECODABLE, id="undecodable"),
    pytest.param(_settings(), b"{not json", JSON, Reason.UNDECODABLE, id="truncated"),
    pytest.param(
        _settings(), body(_signed(regions=("US",))), JSON, Reason.SINGLE_REGION, id="one-region"
    ),
    pytest.param(
        _settings(),
        body(_signed(regions=("US", "US", ""))),
        JSON,
        Reason.SINGLE_REGION,
        id="repeated-region-counts-once",
    ),
    pytest.param(
        _settings(policy=RolloutPolicy(threshold=0)),
        body(_signed()),
        JSON,
        Reason.NOT_IN_ROLLOUT,
        id="percent-zero",
    ),
    pytest.param(
        _settings(policy=RolloutPolicy(threshold=BUCKETS, denylist=frozenset({WALLET}))),
        body(_signed()),
        JSON,
        Reason.DENYLISTED,
        id="denylisted",
    ),
    pytest.param(
        _settings(policy=RolloutPolicy(allowlist=frozenset({WALLET}))),
        body(_signed()),
        JSON,
        Reason.ALLOWLISTED,
        id="allowlisted-at-zero",
    ),
    pytest.param(_settings(), body(portal_spec()), JSON, Reason.UNSIGNED, id="unsigned"),
    pytest.param(_settings(), _tampered(), JSON, Reason.BAD_SIGNATURE, id="bad-signature"),
    pytest.param(
        _settings(trust_enforce=True),
        body(_signed()),
        JSON,
        Reason.UNTRUSTED_KEY,
        id="untrusted-without-keys-file",
    ),
]


@pytest.mark.parametrize(("settings", "data", "content_type", "reason"), REASONS)
def test_decision_reasons(
    settings: RewriteSettings, data: bytes, content_type: str | None, reason: Reason
) -> None:
    """Each check names its own reason; only a fully valid submission is rewritten."""
    verdict = _decide(settings, data, content_type)
    assert verdict.reason is reason
    rewritten = reason in {Reason.IN_ROLLOUT, Reason.ALLOWLISTED}
    assert (verdict.decision is Decision.REWRITTEN) is rewritten
    assert (verdict.rewrite is not None) is rewritten


def test_compressed_body_passes_through() -> None:
    """A body with a Content-Encoding is not JSON to the runner, so it is not rewritten."""
    verdict = decide(
        _settings(), body(_signed()), content_type=JSON, content_encoding="gzip", now=NOW
    )
    assert verdict.reason is Reason.NOT_JSON


def test_trusted_signer_is_rewritten_under_enforcement(tmp_path: Path) -> None:
    """With trust enforced, a signer listed as active in the keys file is rewritten."""
    public_key = base64.b64encode(bytes(PORTAL_KEY.verify_key)).decode()
    settings = _settings(trust_enforce=True, trusted_keys=_trust_file(tmp_path, public_key))
    assert _decide(settings, body(_signed())).decision is Decision.REWRITTEN


def test_untrusted_signer_under_enforcement(tmp_path: Path) -> None:
    """With trust enforced, a signer missing from the keys file passes through."""
    other = base64.b64encode(bytes(SigningKey(bytes(32)).verify_key)).decode()
    settings = _settings(trust_enforce=True, trusted_keys=_trust_file(tmp_path, other))
    assert _decide(settings, body(_signed())).reason is Reason.UNTRUSTED_KEY


def test_rewritten_request_shape() -> None:
    """The rewrite keeps the job, re-signs it with the service key and sets the wrapper."""
    spec = portal_spec(regions=("US", "EU", "US", "ASIA"))
    # min_success_rate 0 is what only the current signer (5fa6ece) leaves out of its message.
    spec["constraints"]["min_success_rate"] = 0
    original = sign(spec, PORTAL_KEY, "portal_5fa6ece")
    verdict = _decide(_settings(), body(original))
    assert verdict.rewrite is not None
    sent = decode_cross_region_request(verdict.rewrite.body)
    jobspec = sent["jobspec"]
    assert sent["target_regions"] == ["US", "EU", "ASIA"]
    assert (sent["min_regions"], sent["min_success_rate"], sent["enable_analysis"]) == (
        1,
        0.67,
        True,
    )
    assert jobspec["id"] == original["id"] == verdict.job_id
    assert jobspec["questions"] == original["questions"]
    assert jobspec["wallet_auth"]["address"] == WALLET
    assert jobspec["public_key"] == SERVICE_KEY.public_key_b64
    assert jobspec["metadata"]["adapter"] == {
        "original_public_key": original["public_key"],
        "original_signature": original["signature"],
        "original_scheme": "portal_5fa6ece",
        "rewritten_by": "beacon-adapter/9.9.9",
    }
    assert jobspec["metadata"]["models"] == original["metadata"]["models"]
    message = canonical_v1(jobspec)
    assert verify_b64(SERVICE_KEY.public_key_b64, jobspec["signature"], message)
    assert runner_verifies(verdict.rewrite.body, SERVICE_KEY.public_key_b64)
    assert verdict.header == f"rewritten; reason=in_rollout; bucket={verdict.bucket}"


def test_jobspec_id_becomes_id() -> None:
    """A spec that only has jobspec_id is sent with that value as id and no jobspec_id."""
    spec = portal_spec()
    spec["jobspec_id"] = spec.pop("id")
    verdict = _decide(_settings(), body(sign(spec, PORTAL_KEY, "portal_5fa6ece")))
    assert verdict.rewrite is not None
    jobspec = decode_cross_region_request(verdict.rewrite.body)["jobspec"]
    assert jobspec["id"] == "bias-detection-1760278330614"
    assert "jobspec_id" not in jobspec


def test_metadata_models_filled_from_models() -> None:
    """When metadata.models is missing, the model ids of models[] fill it for the executor."""
    spec = portal_spec()
    del spec["metadata"]["models"]
    spec["models"] = [
        {"id": "llama3.2-1b", "name": "Llama", "provider": "hybrid", "regions": ["US"]},
        {"id": "mistral-7b", "name": "Mistral"},
    ]
    verdict = _decide(_settings(), body(sign(spec, PORTAL_KEY, "portal_5fa6ece")))
    assert verdict.rewrite is not None
    jobspec = decode_cross_region_request(verdict.rewrite.body)["jobspec"]
    assert jobspec["metadata"]["models"] == ["llama3.2-1b", "mistral-7b"]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (VECTORS_DIR / "old-portal").glob("*.json"))
)
def test_old_portal_vectors_are_rewritten(name: str) -> None:
    """Real requests from each old-portal signer generation verify and are rewritten."""
    vector = load_vector(f"old-portal/{name}")
    verdict = _decide(_settings(), vector["body"].encode(), vector["headers"]["Content-Type"])
    assert verdict.decision is Decision.REWRITTEN
    assert verdict.scheme == f"portal_{vector['signer']}"
    assert verdict.signer == vector["public_key"]


def test_current_portal_jobspec_posted_to_standard_route_is_rewritten() -> None:
    """The current portal's signed jobspec, if posted to /api/v1/jobs, is rewritten too."""
    jobspec = load_vector("portal-crossregion-2025-10-12.json")["jobspec"]
    verdict = _decide(_settings(), json.dumps(jobspec).encode())
    assert verdict.decision is Decision.REWRITTEN
    assert verdict.scheme is not None


def test_shadow_records_what_would_happen() -> None:
    """In shadow mode an unselected submitter passes through with the would-be outcome."""
    shadow = _settings(policy=RolloutPolicy(threshold=0, shadow=True))
    verdict = _decide(shadow, body(_signed()))
    assert (verdict.decision, verdict.reason, verdict.shadow) == (
        Decision.PASSTHROUGH,
        Reason.NOT_IN_ROLLOUT,
        Reason.REWRITTEN,
    )
    assert verdict.rewrite is None
    assert _decide(shadow, _tampered()).shadow is Reason.BAD_SIGNATURE
    assert _decide(shadow, body(portal_spec())).shadow is Reason.UNSIGNED


def test_shadow_off_does_no_crypto_for_unselected() -> None:
    """Without shadow mode an unselected submitter is not even signature-checked."""
    verdict = _decide(_settings(policy=RolloutPolicy(threshold=0)), _tampered())
    assert (verdict.reason, verdict.shadow, verdict.scheme) == (Reason.NOT_IN_ROLLOUT, None, None)


def test_runner_verify_rejects_foreign_bytes() -> None:
    """The runner's check fails for a body signed by another key or altered after signing."""
    verdict = _decide(_settings(), body(_signed()))
    assert verdict.rewrite is not None
    other = ServiceKey.from_seed(bytes(32)).public_key_b64
    assert not runner_verifies(verdict.rewrite.body, other)
    altered = verdict.rewrite.body.replace(b"tiananmen_neutral", b"tiananmen_altered")
    assert not runner_verifies(altered, SERVICE_KEY.public_key_b64)
    assert not runner_verifies(b"not json", SERVICE_KEY.public_key_b64)


@pytest.mark.parametrize(
    ("constraints", "count", "expected"),
    [
        pytest.param({"min_regions": 1}, 3, 1, id="kept"),
        pytest.param({"min_regions": 5}, 3, 3, id="clamped-down"),
        pytest.param({"min_regions": 0}, 3, 2, id="zero-means-unset"),
        pytest.param({}, 2, 1, id="unset-two-regions"),
        pytest.param({}, 3, 2, id="unset-three-regions"),
        pytest.param({}, 6, 4, id="unset-six-regions"),
        pytest.param({"min_regions": -4}, 3, 2, id="negative"),
    ],
)
def test_min_regions(constraints: dict[str, Any], count: int, expected: int) -> None:
    """min_regions is clamped to [1, n], or max(1, floor(0.67 n)) when unset; never 0."""
    assert cross_region_min_regions({"constraints": constraints}, count) == expected


@pytest.mark.parametrize(
    ("constraints", "expected"),
    [
        pytest.param({"min_success_rate": 0.9}, 0.9, id="kept"),
        pytest.param({"min_success_rate": 0}, 0.5, id="zero-uses-default"),
        pytest.param({}, 0.5, id="missing-uses-default"),
    ],
)
def test_min_success_rate(constraints: dict[str, Any], expected: float) -> None:
    """The spec's positive min_success_rate wins; otherwise the configured default."""
    assert cross_region_min_success_rate({"constraints": constraints}, 0.5) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/jsonp", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_json_media_type(content_type: str, expected: bool) -> None:
    """Only application/json (with parameters) counts as JSON."""
    assert is_json_media_type(content_type) is expected


def test_distinct_regions_ignores_non_strings() -> None:
    """Region lists keep first-seen order and skip blanks and non-strings."""
    spec = {"constraints": {"regions": ["EU", 3, "", "EU", "US"]}}
    assert distinct_regions(spec) == ("EU", "US")
    assert distinct_regions({"constraints": {"regions": None}}) == ()


REGION = st.sampled_from(["US", "EU", "ASIA", "APAC", "us-east", "eu-west"])
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


@hsettings(max_examples=40)
@given(
    regions=st.lists(REGION, min_size=2, max_size=5).filter(lambda r: len(set(r)) >= 2),
    question=TEXT,
    description=TEXT,
    min_regions=st.integers(-2, 8),
)
def test_every_rewrite_verifies(
    regions: list[str], question: str, description: str, min_regions: int
) -> None:
    """For any multi-region portal spec, the rewrite passes the runner's V1 verification."""
    spec = portal_spec(regions=tuple(regions))
    spec["questions"] = [question, "q2"]
    spec["benchmark"]["description"] = description
    spec["constraints"]["min_regions"] = min_regions
    verdict = _decide(_settings(), body(sign(spec, PORTAL_KEY, "portal_5fa6ece")))
    assert verdict.rewrite is not None, verdict
    assert runner_verifies(verdict.rewrite.body, SERVICE_KEY.public_key_b64)
    assert 1 <= verdict.rewrite.min_regions <= len(set(regions))


def _encoder_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bytes sent say something other than the spec that was signed.
    def broken(value: dict[str, Any]) -> bytes:
        return marshal_go({**value, "jobspec": {**value["jobspec"], "version": "v-bug"}})

    monkeypatch.setattr("adapter.jobs.rewrite.marshal_go", broken)


def _canonicalisation_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    # The signature covers other bytes than the runner will canonicalise.
    monkeypatch.setattr("adapter.jobs.signing.canonical_v1", lambda spec: canonical_v1(spec) + b" ")


@pytest.mark.parametrize("bug", [_encoder_bug, _canonicalisation_bug])
def test_failed_self_check_passes_the_original_through(
    monkeypatch: pytest.MonkeyPatch, bug: Any
) -> None:
    """A rewrite whose own bytes do not carry what was signed (a bug) is not sent."""
    bug(monkeypatch)
    verdict = _decide(_settings(), body(_signed()))
    assert (verdict.decision, verdict.reason, verdict.rewrite) == (
        Decision.PASSTHROUGH,
        Reason.SELF_CHECK_FAILED,
        None,
    )


def test_spec_without_id_gets_a_unique_one() -> None:
    """A spec with no id is sent with the runner's name pattern plus the caller's suffix."""
    spec = portal_spec()
    del spec["id"]
    data = body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))
    verdict = decide(
        _settings(), data, content_type=JSON, content_encoding=None, now=NOW, id_suffix="a1b2"
    )
    expected = f"multi-model-bias-detection-{int(NOW.timestamp())}-a1b2"
    assert verdict.rewrite is not None
    assert verdict.job_id == verdict.rewrite.job_id == expected
    assert decode_cross_region_request(verdict.rewrite.body)["jobspec"]["id"] == expected


def _sent_and_signed() -> tuple[bytes, SignedSpec]:
    verdict = _decide(_settings(), body(_signed()))
    assert verdict.rewrite is not None
    sent = verdict.rewrite.body
    jobspec = decode_cross_region_request(sent)["jobspec"]
    signed = sign_v1({k: v for k, v in jobspec.items() if k != "signature"}, SERVICE_KEY)
    return sent, signed


MUTATIONS = [
    pytest.param(lambda b: b, True, id="as-sent"),
    pytest.param(lambda b: b + b"  trailing", True, id="trailing-bytes-ignored-by-gin"),
    pytest.param(
        lambda b: b.replace(b"tiananmen_neutral", b"tiananmen_altered"), False, id="signed-field"
    ),
    pytest.param(lambda b: b.replace(b'"id":"', b'"id":"x', 1), True, id="id-is-unsigned"),
    pytest.param(lambda b: b.replace(b'"version":"v1"', b'"Version":"v2"'), False, id="folded"),
    pytest.param(lambda b: b.replace(b'"signature":"', b'"signature":"A', 1), False, id="sig"),
    pytest.param(lambda b: b.replace(b'"public_key":"', b'"public_key":"A', 1), False, id="key"),
    pytest.param(lambda b: b.replace(b'"target_regions"', b'"regions"'), False, id="unbindable"),
    pytest.param(lambda b: b[: len(b) // 2], False, id="truncated"),
    pytest.param(lambda b: b"not json", False, id="not-json"),
]


@pytest.mark.parametrize(("mutate", "accepted"), MUTATIONS)
def test_self_check_signed_agrees_with_the_verifying_check(mutate: Any, accepted: bool) -> None:
    """The byte comparison accepts exactly what the runner's Ed25519 verify accepts."""
    sent, signed = _sent_and_signed()
    data = mutate(sent)
    assert runner_verifies(data, SERVICE_KEY.public_key_b64) is accepted
    assert self_check_signed(data, signed) is accepted


def test_self_check_signed_refuses_another_message_or_key() -> None:
    """A signed message or key other than the one in the bytes is a mismatch."""
    sent, signed = _sent_and_signed()
    assert self_check_signed(sent, signed)
    assert not self_check_signed(sent, SignedSpec(signed.spec, signed.message + b" "))
    other = ServiceKey.from_seed(bytes(32))
    assert not self_check_signed(sent, sign_v1(signed.spec, other))


def _trust(public_key: str) -> TrustedKeys:
    entries = [{"kid": "k1", "public_key": public_key, "status": "active"}]
    return TrustedKeys.from_bytes(json.dumps(entries).encode())


def test_trust_cannot_be_borrowed_from_a_wrapped_spec() -> None:
    """A trusted signer's spec nested under ``jobspec`` does not vouch for the outer spec."""
    trusted = _signed()
    outer = {**portal_spec(), "questions": ["not what was signed"], "jobspec": trusted}
    outer.update(public_key=trusted["public_key"], signature=trusted["signature"])
    settings = _settings(trust_enforce=True, trusted_keys=_trust(trusted["public_key"]))
    assert _decide(settings, body(trusted)).decision is Decision.REWRITTEN
    verdict = _decide(settings, body(outer))
    assert (verdict.decision, verdict.reason) == (Decision.PASSTHROUGH, Reason.BAD_SIGNATURE)


def test_trust_cannot_be_borrowed_through_a_case_folded_key() -> None:
    """A signature by one key with a trusted key in a later ``Public_Key`` is not trusted."""
    trusted = base64.b64encode(bytes(PORTAL_KEY.verify_key)).decode()
    spec = portal_spec()
    spec["Public_Key"] = trusted
    signed = sign(spec, SigningKey(bytes(range(64, 96))), "portal_21a0059")
    signed["Public_Key"] = signed.pop("Public_Key")  # Go applies the last match
    settings = _settings(trust_enforce=True, trusted_keys=_trust(trusted))
    verdict = _decide(settings, body(signed))
    assert (verdict.decision, verdict.reason) == (Decision.PASSTHROUGH, Reason.BAD_SIGNATURE)
    assert verdict.signer == trusted


@pytest.mark.parametrize(("depth", "rewritten"), [(MAX_DEPTH - 1, True), (MAX_DEPTH, False)])
def test_nesting_at_go_limit_is_consistent(depth: int, rewritten: bool) -> None:
    """Go decodes 10,000 levels. A spec one level short of it is rewritten (the wrapper adds
    one); a spec at the limit passes through as undecodable, never as a failed self-check."""
    spec = portal_spec()
    nested: Any = []
    for _ in range(depth - 3):  # the spec object, metadata and its "deep" member
        nested = [nested]
    spec["metadata"]["deep"] = nested
    data = marshal_go(sign_v1(decode_jobspec(marshal_go(spec)), SERVICE_KEY).spec)
    assert nesting_depth(data) == depth
    verdict = _decide(_settings(), data)
    if rewritten:
        assert verdict.rewrite is not None, verdict
        assert runner_verifies(verdict.rewrite.body, SERVICE_KEY.public_key_b64)
        assert nesting_depth(verdict.rewrite.body) == MAX_DEPTH
    else:
        assert (verdict.decision, verdict.reason) == (Decision.PASSTHROUGH, Reason.UNDECODABLE)

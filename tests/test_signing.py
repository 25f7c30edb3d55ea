"""Service key handling, runner-strict verification, signer recognition, and signing."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from nacl.signing import SigningKey

from adapter.jobs.canonical import canonical_v1, canonical_v1_bytes, parse_js, portal_messages
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.signing import (
    ServiceKey,
    SigningKeyError,
    check_runner_v1,
    check_spec_signature,
    recognise_signer,
    sign_jobspec,
    sign_v1,
    verify_b64,
)
from tests.conftest import VECTORS_DIR
from tests.portal import body as portal_body, portal_spec, sign as portal_sign
from tests.strategies import portal_jobspecs, rfc3339_times

# RFC 8032 §7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
SEED_B64 = base64.b64encode(RFC8032_SEED).decode()
GO_PRIVATE_B64 = base64.b64encode(RFC8032_SEED + RFC8032_PUBLIC).decode()
KEY = ServiceKey.from_seed(RFC8032_SEED)
OLD_PORTAL_FILES = sorted((VECTORS_DIR / "old-portal").glob("*.json"))
SIGNER_SCHEME = {
    "c4cbb02": "portal_c4cbb02",
    "04b8886": "portal_04b8886",
    "21a0059": "portal_21a0059",
}


def _secret_forms() -> list[str]:
    return [SEED_B64, GO_PRIVATE_B64, RFC8032_SEED.hex(), SEED_B64.rstrip("=")]


class TestServiceKey:
    """Loading the service key and signing with it."""

    def test_rfc8032_vector(self) -> None:
        """The seed gives RFC 8032's public key and signature (pure Ed25519, no pre-hash)."""
        assert KEY.public_key == RFC8032_PUBLIC
        assert KEY.sign(b"") == RFC8032_SIGNATURE
        assert KEY.sign_b64(b"") == base64.b64encode(RFC8032_SIGNATURE).decode()
        assert len(KEY.sign_b64(b"x")) == 88

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param(SEED_B64, id="32-byte-seed"),
            pytest.param(GO_PRIVATE_B64, id="64-byte-go-private-key"),
            pytest.param(f"  {SEED_B64}\n", id="surrounding-whitespace"),
        ],
    )
    def test_from_b64_accepts_seed_and_go_form(self, text: str) -> None:
        """Both the 32-byte seed and the runner tooling's 64-byte seed‖public form load."""
        assert ServiceKey.from_b64(text) == KEY

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            pytest.param(
                base64.b64encode(RFC8032_SEED + bytes(32)).decode(),
                "public half does not match",
                id="mismatched-public-half",
            ),
            pytest.param(base64.b64encode(bytes(16)).decode(), "got 16", id="wrong-length"),
            pytest.param(SEED_B64.rstrip("="), "padded standard base64", id="unpadded"),
            pytest.param("not base64 at all!", "padded standard base64", id="garbage"),
            pytest.param(base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "base64", id="url-safe"),
        ],
    )
    def test_from_b64_refuses_bad_keys(self, text: str, problem: str) -> None:
        """Malformed keys are refused with a reason, and the message holds no key material."""
        with pytest.raises(SigningKeyError, match=problem) as caught:
            ServiceKey.from_b64(text)
        assert text.strip() not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None or caught.value.__suppress_context__

    def test_repr_and_str_hide_the_secret(self) -> None:
        """repr and str show the public key only."""
        for shown in (repr(KEY), str(KEY), f"{KEY}", f"{KEY!r}"):
            assert KEY.public_key_b64 in shown
            for secret in _secret_forms():
                assert secret not in shown

    def test_from_env_inline(self) -> None:
        """ADAPTER_SIGNING_KEY holds the base64 key."""
        assert ServiceKey.from_env({"ADAPTER_SIGNING_KEY": SEED_B64}) == KEY

    def test_from_env_file(self, tmp_path: Path) -> None:
        """ADAPTER_SIGNING_KEY_FILE names a file holding the base64 key."""
        path = tmp_path / "key"
        path.write_text(GO_PRIVATE_B64 + "\n")
        assert ServiceKey.from_env({"ADAPTER_SIGNING_KEY_FILE": str(path)}) == KEY

    def test_from_env_unset_is_none(self) -> None:
        """No key configured (or empty values) gives None, not an error."""
        assert ServiceKey.from_env({}) is None
        assert ServiceKey.from_env({"ADAPTER_SIGNING_KEY": ""}) is None

    def test_from_env_both_is_an_error(self, tmp_path: Path) -> None:
        """Setting both variables is ambiguous and refused."""
        env = {"ADAPTER_SIGNING_KEY": SEED_B64, "ADAPTER_SIGNING_KEY_FILE": str(tmp_path)}
        with pytest.raises(SigningKeyError, match="only one of") as caught:
            ServiceKey.from_env(env)
        assert SEED_B64 not in str(caught.value)

    def test_from_env_missing_file_names_the_path(self, tmp_path: Path) -> None:
        """A missing key file is reported with its path."""
        path = tmp_path / "absent"
        with pytest.raises(SigningKeyError, match="absent"):
            ServiceKey.from_env({"ADAPTER_SIGNING_KEY_FILE": str(path)})

    def test_env_errors_never_echo_the_value(self, tmp_path: Path) -> None:
        """A bad key in the environment or a file is reported without its contents."""
        secret = base64.b64encode(RFC8032_SEED + bytes(32)).decode()
        with pytest.raises(SigningKeyError) as inline:
            ServiceKey.from_env({"ADAPTER_SIGNING_KEY": secret})
        path = tmp_path / "key"
        path.write_text(secret)
        with pytest.raises(SigningKeyError) as from_file:
            ServiceKey.from_env({"ADAPTER_SIGNING_KEY_FILE": str(path)})
        for error in (inline.value, from_file.value):
            assert secret not in str(error)
            assert SEED_B64 not in str(error)
            assert "ADAPTER_SIGNING_KEY" in str(error)


class TestVerify:
    """verify_b64 accepts exactly what the runner's Go code accepts."""

    MESSAGE = b'{"version":"v1"}'

    def _good(self) -> tuple[str, str]:
        return KEY.public_key_b64, KEY.sign_b64(self.MESSAGE)

    def test_valid_signature(self) -> None:
        """A correct signature in padded standard base64 verifies."""
        assert verify_b64(*self._good(), self.MESSAGE)

    @pytest.mark.parametrize(
        "mangle",
        [
            pytest.param(lambda pk, sig: (pk, sig.rstrip("=")), id="unpadded-signature"),
            pytest.param(lambda pk, sig: (pk.rstrip("="), sig), id="unpadded-key"),
            pytest.param(
                lambda pk, sig: (pk.replace("/", "_"), sig.replace("+", "-").replace("/", "_")),
                id="url-safe",
            ),
            pytest.param(
                lambda pk, sig: (base64.b64encode(bytes(31)).decode(), sig), id="31-byte-key"
            ),
            pytest.param(
                lambda pk, sig: (pk, base64.b64encode(base64.b64decode(sig)[:63]).decode()),
                id="63-byte-signature",
            ),
            pytest.param(lambda pk, sig: (pk, ""), id="empty-signature"),
            pytest.param(lambda pk, sig: ("", sig), id="empty-key"),
            pytest.param(lambda pk, sig: (pk, "A" + sig[1:]), id="tampered-signature"),
        ],
    )
    def test_rejections(self, mangle: Callable[[str, str], tuple[str, str]]) -> None:
        """Unpadded, URL-safe, wrong-size or altered inputs do not verify."""
        public_key, signature = self._good()
        mangled_key, mangled_signature = mangle(public_key, signature)
        assert (mangled_key, mangled_signature) != (public_key, signature)
        assert not verify_b64(mangled_key, mangled_signature, self.MESSAGE)

    def test_go_base64_ignores_line_breaks(self) -> None:
        """Go's StdEncoding skips CR and LF, so a wrapped signature still verifies."""
        public_key, signature = self._good()
        assert verify_b64(public_key, signature[:40] + "\r\n" + signature[40:], self.MESSAGE)

    def test_other_message_fails(self) -> None:
        """A signature over other bytes does not verify."""
        public_key, signature = self._good()
        assert not verify_b64(public_key, signature, self.MESSAGE + b" ")


def test_real_portal_request_verifies_with_runner_v1() -> None:
    """The real portal cross-region request verifies over our V1 canonical bytes."""
    body = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    spec = decode_cross_region_request(body)["jobspec"]
    assert verify_b64(spec["public_key"], spec["signature"], canonical_v1(spec))
    check = check_runner_v1(body)
    assert check.verified
    assert check.public_key_b64 == "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="


def test_case_folded_jobspec_member_is_checked_as_the_runner_reads_it() -> None:
    """``{"JobSpec": ...}`` is a cross-region request to the runner (Go folds member
    names): its spec is checked exactly as under ``jobspec``, never the wrapper as if it
    were a bare spec."""
    raw = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    request = json.loads(raw)
    body = json.dumps({"JobSpec": request.pop("jobspec"), **request}).encode()
    check = check_spec_signature(body)
    assert check.verified, check
    assert (check.scheme, check.error) == (check_spec_signature(raw).scheme, None)
    assert check.public_key_b64 == "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="
    assert check_runner_v1(body).verified


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in OLD_PORTAL_FILES])
def test_old_portal_bodies_verify_under_their_signer(path: Path) -> None:
    """Each old portal body verifies under exactly its signer's scheme, not an earlier one."""
    vector = json.loads(path.read_text(encoding="utf-8"))
    body = vector["body"].encode("utf-8")
    check = check_spec_signature(body)
    assert check.scheme == SIGNER_SCHEME[vector["signer"]]
    assert check.public_key_b64 == vector["public_key"]
    assert check.error is None
    message = portal_messages(parse_js(body))[check.scheme]
    assert hashlib.sha256(message).hexdigest() == vector["signed_canonical_sha256"]
    # 21a0059 signed exactly what V1 canonicalises for these specs; the older two did not.
    assert check_runner_v1(body).verified is (check.scheme == "portal_21a0059")


def test_check_reports_missing_signature_and_tampering() -> None:
    """Unsigned specs and altered specs are reported with the runner's reasons."""
    body = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    request = json.loads(body)
    request["jobspec"]["signature"] = ""
    unsigned = check_spec_signature(json.dumps(request).encode())
    assert unsigned.scheme is None
    assert unsigned.error == "signature is required"
    request = json.loads(body)
    request["jobspec"]["questions"].append("extra")
    tampered = check_spec_signature(json.dumps(request).encode())
    assert tampered.scheme is None
    assert tampered.error is not None
    assert "runner_v1" in tampered.error
    assert tampered.public_key_b64 == "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"{", "not JSON", id="syntax"),
        pytest.param(b"[]", "not a JSON object", id="array"),
        pytest.param(b'{"public_key": "x", "signature": "y"}', "invalid public key", id="bad-key"),
    ],
)
def test_check_handles_bad_bodies(body: bytes, error: str) -> None:
    """Malformed bodies give an error result, never an exception."""
    check = check_spec_signature(body)
    assert check.scheme is None
    assert check.error is not None
    assert error in check.error


def _projected(spec: dict[str, Any]) -> dict[str, Any]:
    return decode_jobspec(json.dumps(spec).encode())


def test_sign_jobspec_signs_v1_and_runner_accepts_the_wire_bytes() -> None:
    """A signed projection, marshalled, verifies under the runner's V1 check."""
    body = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    spec = decode_cross_region_request(body)["jobspec"]
    signed = sign_jobspec(spec, KEY)
    assert signed["public_key"] == KEY.public_key_b64
    assert spec["public_key"] != KEY.public_key_b64  # the input is not modified
    assert canonical_v1(signed) == canonical_v1(spec)
    check = check_runner_v1(marshal_go(signed))
    assert check.scheme == "runner_v1"
    assert check.public_key_b64 == KEY.public_key_b64


def test_sign_jobspec_refuses_specs_the_runner_would_reshape() -> None:
    """A spec with fields the runner drops (or Python floats in int fields) is refused."""
    spec = decode_jobspec(b'{"version": "v1", "runs": 1}')
    with pytest.raises(ValueError, match="struct shape"):
        sign_jobspec({**spec, "extra": "dropped by the runner"}, KEY)
    with pytest.raises(ValueError, match="struct shape"):
        sign_jobspec({**spec, "models": [{"id": "m"}]}, KEY)


# Mutations of signed fields; each is guaranteed to change the V1 canonical bytes.
def _append(path: tuple[str, ...], suffix: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for name in path[:-1]:
            target = target[name]
        current = target.get(path[-1])
        if isinstance(current, list):
            current.append(suffix)
        elif isinstance(current, int) and not isinstance(current, bool) and current > 2**53:
            # V1 goes through float64 (docs/runner-contract.md §2a): +1 above 2**53 is
            # invisible to the runner too, so change the value by more than one float64 step.
            target[path[-1]] = current // 2
        elif isinstance(current, str | int | float) and not isinstance(current, bool):
            target[path[-1]] = current + suffix
        else:
            target[path[-1]] = suffix

    return mutate


def _toggle_rate(spec: dict[str, Any]) -> None:
    rate = spec["constraints"]["min_success_rate"]
    spec["constraints"]["min_success_rate"] = 0.5 if rate == 0 else 0.0


SIGNED_FIELD_MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "version": _append(("version",), "x"),
    "benchmark.name": _append(("benchmark", "name"), "x"),
    "benchmark.description": _append(("benchmark", "description"), "x"),
    "benchmark.container.image": _append(("benchmark", "container", "image"), "x"),
    "benchmark.input.data.prompt": _append(("benchmark", "input", "data", "prompt"), "x"),
    "constraints.regions": _append(("constraints", "regions"), "XX"),
    "constraints.min_regions": _append(("constraints", "min_regions"), 1),
    "constraints.timeout": _append(("constraints", "timeout"), 1),
    "constraints.provider_timeout": _append(("constraints", "provider_timeout"), 1),
    "constraints.min_success_rate": _toggle_rate,
    "metadata.nonce": _append(("metadata", "nonce"), "x"),
    "metadata.new": _append(("metadata", "new-key"), "v"),
    "questions": _append(("questions",), "q"),
    "runs": _append(("runs",), 1),
    "jobspec_id": _append(("jobspec_id",), "j"),
}


@settings(max_examples=40)
@given(portal_jobspecs())
def test_sign_then_verify(spec: dict[str, Any]) -> None:
    """Every generated spec, signed, verifies under runner V1 from its wire bytes."""
    signed = sign_jobspec(_projected(spec), KEY)
    assert verify_b64(signed["public_key"], signed["signature"], canonical_v1(signed))
    assert check_runner_v1(marshal_go(signed)).verified
    assert check_spec_signature(marshal_go(signed)).verified


@settings(max_examples=60)
@given(portal_jobspecs(), st.sampled_from(sorted(SIGNED_FIELD_MUTATIONS)))
def test_changing_a_signed_field_breaks_verification(spec: dict[str, Any], field: str) -> None:
    """Any change to a signed field makes the runner reject the signature."""
    signed = sign_jobspec(_projected(spec), KEY)
    mutated = copy.deepcopy(signed)
    SIGNED_FIELD_MUTATIONS[field](mutated)
    wire = marshal_go(mutated)
    assert canonical_v1_bytes(wire) != canonical_v1(signed)
    assert not verify_b64(signed["public_key"], signed["signature"], canonical_v1_bytes(wire))
    assert not check_runner_v1(wire).verified


@settings(max_examples=60)
@given(
    portal_jobspecs(),
    st.text(min_size=1, max_size=20),
    rfc3339_times(),
    st.dictionaries(st.sampled_from(["extra", "x_trace", "target_regions"]), st.integers()),
)
def test_unsigned_changes_keep_verification(
    spec: dict[str, Any], new_id: str, new_time: str, unknown: dict[str, int]
) -> None:
    """Changing id or created_at, or adding unknown fields, leaves the signature valid."""
    signed = sign_jobspec(_projected(spec), KEY)
    # Keep "-0" a float: Python's json would read it as the int 0 and lose the sign.
    body = json.loads(marshal_go(signed), parse_int=lambda t: -0.0 if t == "-0" else int(t))
    body.update(unknown)
    body["id"] = new_id
    body["created_at"] = new_time
    body["benchmark"]["unknown_nested"] = {"a": [1, 2]}
    body["constraints"]["Unknown"] = "x"
    wire = json.dumps(body).encode()
    assert canonical_v1_bytes(wire) == canonical_v1(signed)
    assert check_runner_v1(wire).verified


PORTAL_SIGNER = SigningKey(bytes(range(32, 64)))
OTHER_SIGNER = SigningKey(bytes(range(64, 96)))
ALL_SCHEMES = ("portal_c4cbb02", "portal_04b8886", "portal_21a0059", "portal_5fa6ece", "runner_v1")


def _b64_key(key: SigningKey) -> str:
    return base64.b64encode(bytes(key.verify_key)).decode()


def _slow_reference(raw: bytes) -> str | None:
    """Every scheme in SCHEMES order, one verify each: what the check must name."""
    spec = parse_js(raw)
    for scheme in ALL_SCHEMES[:4]:
        if verify_b64(spec["public_key"], spec["signature"], portal_messages(spec)[scheme]):
            return scheme
    decoded = decode_jobspec(raw)
    if verify_b64(decoded["public_key"], decoded["signature"], canonical_v1(decoded)):
        return "runner_v1"
    return None


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param({}, id="portal-shape"),
        pytest.param({"min_success_rate": 0}, id="zero-rate"),
        pytest.param({"min_success_rate": 0.5}, id="rate"),
        pytest.param({"no_id": True}, id="no-id"),
        pytest.param({"no_created_at": True}, id="no-created-at"),
    ],
)
def test_recognition_names_the_earliest_matching_scheme(scheme: str, shape: dict[str, Any]) -> None:
    """Trying likely schemes first names the same scheme as trying all in SCHEMES order."""
    spec = portal_spec()
    if "min_success_rate" in shape:
        spec["constraints"]["min_success_rate"] = shape["min_success_rate"]
    if shape.get("no_id"):
        del spec["id"]
    if shape.get("no_created_at"):
        del spec["created_at"]
    raw = portal_body(portal_sign(spec, PORTAL_SIGNER, scheme))
    expected = _slow_reference(raw)
    assert expected is not None
    assert check_spec_signature(raw).scheme == expected
    assert recognise_signer(raw, decode_jobspec(raw)).scheme == expected


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in OLD_PORTAL_FILES])
def test_recognise_signer_agrees_on_real_bodies(path: Path) -> None:
    """On real old-portal bodies the decision's check reports what the full check does."""
    raw = json.loads(path.read_text(encoding="utf-8"))["body"].encode("utf-8")
    assert recognise_signer(raw, decode_jobspec(raw)) == check_spec_signature(raw)


def test_recognise_signer_reports_failures_like_the_full_check() -> None:
    """Unsigned, tampered and garbled-key specs fail with the full check's reasons."""
    signed = portal_sign(portal_spec(), PORTAL_SIGNER, "portal_21a0059")
    tampered = {**signed, "questions": ["other"]}
    for spec in ({**signed, "signature": ""}, tampered, {**signed, "public_key": "x"}):
        raw = portal_body(spec)
        check = recognise_signer(raw, decode_jobspec(raw))
        assert check.scheme is None
        assert check == check_spec_signature(raw)


def test_recognise_signer_needs_the_runners_key_for_a_portal_scheme() -> None:
    """A portal signature counts only if JSON.parse and Go read the same key and signature.

    Go fills public_key from a later case-folded ``Public_Key`` member too, so the runner
    and the rewrite would name a key that did not make the signature.
    """
    spec = portal_spec()
    spec["Public_Key"] = _b64_key(OTHER_SIGNER)
    signed = portal_sign(spec, PORTAL_SIGNER, "portal_21a0059")
    signed["Public_Key"] = signed.pop("Public_Key")  # after public_key: Go applies it last
    raw = portal_body(signed)
    decoded = decode_jobspec(raw)
    assert decoded["public_key"] == _b64_key(OTHER_SIGNER)
    assert check_spec_signature(raw).scheme == "portal_21a0059"  # JSON.parse's view
    assert recognise_signer(raw, decoded).scheme is None


def test_recognise_signer_does_not_unwrap() -> None:
    """A jobspec member is an unknown key to the runner's JobSpec: its signature is not ours."""
    inner = portal_sign(portal_spec(), PORTAL_SIGNER, "portal_21a0059")
    outer = {**portal_spec(), "questions": ["other"], "jobspec": inner}
    outer.update(public_key=inner["public_key"], signature=inner["signature"])
    raw = portal_body(outer)
    assert check_spec_signature(raw).scheme == "portal_21a0059"  # checks the inner spec
    assert recognise_signer(raw, decode_jobspec(raw)).scheme is None


def test_recognise_signer_falls_back_to_v1_with_the_runners_view() -> None:
    """V1 is checked with the key, signature and fields Go decodes, whatever JSON.parse sees."""
    spec = portal_spec()
    spec["unknown_member"] = "dropped by Go, signed by every portal scheme"
    signed = portal_sign(spec, PORTAL_SIGNER, "runner_v1")
    raw = portal_body(signed)
    assert recognise_signer(raw, decode_jobspec(raw)).scheme == "runner_v1"
    # The signer's key only under a case-folded name: no portal scheme, V1 still applies.
    signed["Public_Key"] = signed.pop("public_key")
    raw = portal_body(signed)
    check = recognise_signer(raw, decode_jobspec(raw))
    assert (check.scheme, check.public_key_b64) == ("runner_v1", _b64_key(PORTAL_SIGNER))


def test_sign_v1_returns_the_message_it_signed() -> None:
    """The signed copy's signature verifies over exactly the returned message."""
    spec = decode_jobspec(portal_body(portal_spec()))
    signed = sign_v1(spec, KEY)
    assert signed.message == canonical_v1(spec)
    assert signed.signature_b64 == signed.spec["signature"]
    assert verify_b64(KEY.public_key_b64, signed.signature_b64, signed.message)
    assert sign_jobspec(spec, KEY) == signed.spec

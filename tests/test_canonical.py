"""V1 canonical bytes against the runner's vectors, and the portal signers' messages."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from nacl.signing import SigningKey

from adapter.jobs.canonical import (
    _JS_PARSER,
    PORTAL_SCHEMES,
    SCHEMES,
    _parse_js_deep,
    _stringify_deep,
    canonical_v1,
    canonical_v1_bytes,
    js_quote,
    js_stable_stringify,
    parse_js,
    portal_messages,
)
from adapter.jobs.gojson import (
    MAX_DEPTH,
    GoDecodeError,
    GoMarshalError,
    encode,
    format_js_number,
    nesting_depth,
)
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.signing import check_spec_signature
from tests.conftest import VECTORS_DIR, load_vector
from tests.portal import portal_spec
from tests.strategies import free_values, go_text

CANONICAL_VECTORS: list[dict[str, Any]] = load_vector("canonical-v1.json")
EDGE_VECTORS: list[dict[str, Any]] = load_vector("canonical-v1-edge.json")
OLD_PORTAL_FILES = sorted((VECTORS_DIR / "old-portal").glob("*.json"))
SIGNER_SCHEME = {
    "c4cbb02": "portal_c4cbb02",
    "04b8886": "portal_04b8886",
    "21a0059": "portal_21a0059",
}


def _expected_error_field(details: str) -> str:
    """The field the runner's message names, relative to the jobspec ("" for syntax errors).

    Wording differs between Go versions; only the field named is compared.
    """
    found = re.search(r"Go struct field \w+\.jobspec\.([\w.]+) of type", details)
    if found:
        return found.group(1)
    if "exceeded max depth" in details:
        return ""
    assert details.startswith("parsing time") or "type time.Time" in details, details
    return "created_at"


def _is_marshal_error(vector: dict[str, Any]) -> bool:
    """The runner decoded the spec but could not re-marshal it (canonicalisation failed)."""
    return str(vector["runner_details"]).startswith("failed to canonicalize jobspec")


ALL_VECTORS = [
    (f"{file}:{v['name']}", v)
    for file, vectors in (("v1", CANONICAL_VECTORS), ("edge", EDGE_VECTORS))
    for v in vectors
]
DECODED_VECTORS = [pytest.param(v, id=name) for name, v in ALL_VECTORS if v["canonical"]]
REFUSED_VECTORS = [pytest.param(v, id=name) for name, v in ALL_VECTORS if not v["canonical"]]


def test_every_edge_vector_is_exercised() -> None:
    """The edge file is used whole: 45 cases, each either canonical bytes or a runner error."""
    assert len(EDGE_VECTORS) == 45
    assert len(CANONICAL_VECTORS) == 34
    assert all(bool(v["canonical"]) != bool(v.get("runner_error")) for v in EDGE_VECTORS)


@pytest.mark.parametrize("vector", DECODED_VECTORS)
def test_canonical_vector_bytes(vector: dict[str, Any]) -> None:
    """Our V1 canonical bytes equal the runner's, byte for byte and by SHA-256."""
    canonical = canonical_v1_bytes(vector["input"].encode("utf-8"))
    assert canonical == vector["canonical"].encode("utf-8")
    assert hashlib.sha256(canonical).hexdigest() == vector["canonical_sha256"]


@pytest.mark.parametrize("vector", REFUSED_VECTORS)
def test_canonical_vector_decode_errors(vector: dict[str, Any]) -> None:
    """Where the runner could not decode (or re-marshal) the body, we fail on the same field."""
    with pytest.raises(GoDecodeError) as caught:
        canonical_v1_bytes(vector["input"].encode("utf-8"))
    field = _expected_error_field(vector["runner_details"])
    assert caught.value.field == field
    assert isinstance(caught.value, GoMarshalError) == _is_marshal_error(vector)
    if field:
        assert str(caught.value).startswith(field + ": ")


@pytest.mark.parametrize("vector", REFUSED_VECTORS)
def test_canonical_vector_errors_inside_cross_region_request(vector: dict[str, Any]) -> None:
    """Wrapped in a cross-region request, the error path starts with jobspec, as the runner's."""
    body = b'{"jobspec":' + vector["input"].encode("utf-8") + b',"target_regions":["US"]}'
    with pytest.raises(GoDecodeError) as caught:
        decode_cross_region_request(body)
    field = _expected_error_field(vector["runner_details"])
    assert caught.value.field == ("jobspec." + field if field else "")
    assert isinstance(caught.value, GoMarshalError) == _is_marshal_error(vector)


@pytest.mark.parametrize("vector", DECODED_VECTORS)
def test_canonical_vector_inside_cross_region_request(vector: dict[str, Any]) -> None:
    """Wrapped, the jobspec canonicalises alike, unless the wrapper passes Go's depth limit."""
    body = b'{"jobspec":' + vector["input"].encode("utf-8") + b',"target_regions":["US"]}'
    if nesting_depth(body) > MAX_DEPTH:
        with pytest.raises(GoDecodeError, match="exceeded max depth"):
            decode_cross_region_request(body)
        return
    request = decode_cross_region_request(body)
    assert canonical_v1(request["jobspec"]) == vector["canonical"].encode("utf-8")


def test_real_portal_cross_region_request_canonical() -> None:
    """The real 2025-10-12 portal request canonicalises to the runner's 1317 bytes."""
    body = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    request = decode_cross_region_request(body)
    canonical = canonical_v1(request["jobspec"])
    assert len(canonical) == 1317
    assert (
        hashlib.sha256(canonical).hexdigest()
        == "c2a9a6c0565d29d0432be375e65e715500aff05b5f721996e90a7c66eaa7def0"
    )
    assert canonical.startswith(
        b'{"benchmark":{"container":{"image":"ghcr.io/project-beacon/bias-detection:latest",'
        b'"resources":{"cpu":"1000m","memory":"2Gi"},"tag":"latest"},'
        b'"description":"Multi-model bias detection across 3 models",'
    )
    assert list(json.loads(canonical)) == [
        "benchmark",
        "constraints",
        "metadata",
        "questions",
        "runs",
        "version",
        "wallet_auth",
    ]
    assert (
        b'"constraints":{"min_regions":1,"provider_timeout":600000000000,'
        b'"regions":["US","EU"],"timeout":600000000000}' in canonical
    )


def test_canonical_of_projection_equals_canonical_of_marshalled_projection() -> None:
    """Canonicalising a projected spec gives the bytes the runner computes from its marshal."""
    body = (VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes()
    spec = decode_cross_region_request(body)["jobspec"]
    assert canonical_v1_bytes(marshal_go(spec)) == canonical_v1(spec)


def test_schemes_are_in_the_documented_order() -> None:
    """Schemes are tried oldest portal signer first and the runner's V1 last."""
    assert SCHEMES == (
        "portal_c4cbb02",
        "portal_04b8886",
        "portal_21a0059",
        "portal_5fa6ece",
        "runner_v1",
    )
    assert len(PORTAL_SCHEMES) == 4
    assert all(scheme.startswith("portal_") for scheme in PORTAL_SCHEMES)


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in OLD_PORTAL_FILES])
def test_old_portal_message_hash(path: Path) -> None:
    """Each old portal body's signer message has the recorded SHA-256; earlier schemes differ."""
    vector = json.loads(path.read_text(encoding="utf-8"))
    spec = parse_js(vector["body"].encode("utf-8"))
    scheme = SIGNER_SCHEME[vector["signer"]]
    message = portal_messages(spec)[scheme]
    assert hashlib.sha256(message).hexdigest() == vector["signed_canonical_sha256"]
    for earlier in PORTAL_SCHEMES[: PORTAL_SCHEMES.index(scheme)]:
        assert portal_messages(spec)[earlier] != message


def test_portal_5fa6ece_drops_zero_min_success_rate_only() -> None:
    """The 5fa6ece signer drops constraints.min_success_rate when it is 0, not otherwise."""
    zero = {"id": "x", "constraints": {"min_success_rate": 0.0, "regions": ["US"]}}
    kept = {"id": "x", "constraints": {"min_success_rate": 0.67}}
    assert portal_messages(zero)["portal_5fa6ece"] == b'{"constraints":{"regions":["US"]}}'
    assert portal_messages(zero)["portal_21a0059"] == (
        b'{"constraints":{"min_success_rate":0,"regions":["US"]}}'
    )
    assert portal_messages(kept)["portal_5fa6ece"] == b'{"constraints":{"min_success_rate":0.67}}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1e21, "1e+21", id="1e21"),
        pytest.param(1e20, "100000000000000000000", id="1e20"),
        pytest.param(1e-7, "1e-7", id="1e-7"),
        pytest.param(1e-6, "0.000001", id="1e-6"),
        pytest.param(-0.0, "0", id="negative-zero"),
        pytest.param(0.1 + 0.2, "0.30000000000000004", id="0.1+0.2"),
        pytest.param(600000000000.0, "600000000000", id="timeout"),
        pytest.param(5e-324, "5e-324", id="min-subnormal"),
        pytest.param(1.7976931348623157e308, "1.7976931348623157e+308", id="max"),
        pytest.param(12345678901234567890.0, "12345678901234567000", id="big-int"),
        pytest.param(1.5e-7, "1.5e-7", id="1.5e-7"),
    ],
)
def test_js_number_formatting(value: float, expected: str) -> None:
    """Numbers print as JavaScript's Number#toString does."""
    assert format_js_number(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a<b>&c", '"a<b>&c"', id="no-html-escaping"),
        pytest.param("x\u2028y", '"x\u2028y"', id="line-separator-raw"),
        pytest.param("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"', id="short-escapes"),
        pytest.param("\x01\x1f", '"\\u0001\\u001f"', id="controls-lowercase"),
        pytest.param('"\\', '"\\"\\\\"', id="quote-backslash"),
        pytest.param("\ud800", '"\\ud800"', id="lone-surrogate"),
        pytest.param("é😀", '"é😀"', id="raw-unicode"),
    ],
)
def test_js_string_quoting(text: str, expected: str) -> None:
    """Strings are quoted as JSON.stringify does (well-formed, no HTML escapes)."""
    assert js_quote(text) == expected


def test_js_keys_sort_by_utf16_code_units() -> None:
    """Keys sort by UTF-16 code units, so an astral key sorts before U+FFFF (unlike code points)."""
    value = {"\uffff": 1, "😀": 2, "b": 3, "B": 4}
    assert js_stable_stringify(value) == '{"B":4,"b":3,"😀":2,"\uffff":1}'


def test_js_parse_rejects_nan_and_keeps_last_duplicate() -> None:
    """JSON.parse semantics: NaN is a syntax error and the last duplicate key wins."""
    with pytest.raises(ValueError, match=r"JSON\.parse"):
        parse_js(b'{"a": NaN}')
    assert parse_js(b'{"a": 1, "a": 2}') == {"a": 2.0}


def test_go_and_js_canonical_differ_where_the_contract_says() -> None:
    """HTML characters are escaped by the runner and left raw by the portal."""
    body = b'{"version":"v1","metadata":{"note":"<b>"},"constraints":{"timeout":1}}'
    assert b"\\u003cb\\u003e" in canonical_v1_bytes(body)
    assert b'"<b>"' in portal_messages(parse_js(body))["portal_5fa6ece"]


def test_decode_jobspec_is_what_canonical_v1_bytes_uses() -> None:
    """canonical_v1_bytes is canonical_v1 of decode_jobspec."""
    body = CANONICAL_VECTORS[0]["input"].encode("utf-8")
    assert canonical_v1_bytes(body) == canonical_v1(decode_jobspec(body))


def test_v1_removes_nulls_and_empties_only_outside_arrays() -> None:
    """Step 4 recurses through objects only; array members keep their empties."""
    spec = {
        "version": "v1",
        "metadata": {"a": {"b": {"c": ""}}, "d": [None, "", {}], "e": 0.0, "f": False},
        "constraints": {"min_success_rate": 0.0, "min_regions": 0},
    }
    assert canonical_v1(spec) == (
        b'{"constraints":{"min_regions":0},"metadata":{"d":[null,"",{}],"e":0,"f":false},'
        b'"version":"v1"}'
    )


def _reference_stringify(value: Any) -> str:
    """json-stable-stringify spelled out plainly: UTF-16 key order, one js_quote per string."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return js_quote(value)
    if isinstance(value, int | float):
        number = float(value)
        return format_js_number(number) if math.isfinite(number) else "null"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{js_quote(k)}:{_reference_stringify(value[k])}" for k in keys) + "}"
    return "[" + ",".join(_reference_stringify(v) for v in value) + "]"


@given(free_values(depth=3))
def test_js_stable_stringify_matches_the_plain_form(value: Any) -> None:
    """The inlined fast paths (ASCII key sort, plain strings, integral numbers) change nothing."""
    assert js_stable_stringify(value) == _reference_stringify(value)


@given(st.dictionaries(go_text(max_size=6), free_values(depth=2), max_size=6))
def test_portal_messages_are_the_stringified_spec_minus_each_generations_keys(
    spec: dict[str, Any],
) -> None:
    """Each generation's message is the plain stringify of the spec without its keys."""
    removed = {
        "portal_c4cbb02": ("signature", "public_key"),
        "portal_04b8886": ("signature", "public_key", "id"),
        "portal_21a0059": ("signature", "public_key", "id", "created_at"),
    }
    messages = portal_messages(spec)
    for scheme, keys in removed.items():
        kept = {k: v for k, v in spec.items() if k not in keys}
        assert messages[scheme] == _reference_stringify(kept).encode("utf-8")


def _reference_canonical(spec: dict[str, Any]) -> bytes:
    """docs/runner-contract.md §2a steps 2-5 one by one, as the runner runs them, on a copy."""

    def through_float64(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, str | float):
            return value
        if isinstance(value, int):
            return float(value)
        if isinstance(value, dict):
            return {k: through_float64(v) for k, v in value.items()}
        return [through_float64(v) for v in value]

    def remove_null_and_empty(obj: dict[str, Any]) -> None:
        for key in list(obj):
            value = obj[key]
            if value is None or value == "":
                del obj[key]
            elif isinstance(value, dict):
                remove_null_and_empty(value)
                if not value:
                    del obj[key]

    generic = through_float64(spec)
    for key in ("id", "created_at", "signature", "public_key"):
        generic.pop(key, None)
    remove_null_and_empty(generic)
    constraints = generic.get("constraints")
    rate = constraints.get("min_success_rate") if isinstance(constraints, dict) else None
    if isinstance(rate, float) and rate == 0:
        del constraints["min_success_rate"]
    return encode(generic, sort_keys=True)


SPEC_KEYS = st.sampled_from(["id", "created_at", "signature", "public_key", "metadata", "x", ""])


@given(
    st.dictionaries(st.one_of(SPEC_KEYS, go_text(max_size=6)), free_values(depth=3), max_size=8),
    st.sampled_from([None, {}, {"min_success_rate": 0.0}, {"min_success_rate": 0, "regions": []}]),
)
def test_canonical_v1_is_the_steps_run_one_after_the_other(
    spec: dict[str, Any], constraints: dict[str, Any] | None
) -> None:
    """The one-pass V1 form equals the runner's steps run in turn, on any generic value."""
    if constraints is not None:
        spec["constraints"] = constraints
    assert canonical_v1(spec) == _reference_canonical(spec)


def _js_quote_by_character(text: str) -> str:
    """JSON.stringify's QuoteJSONString, one character at a time (ECMA-262 25.5.2.3)."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
    short["\t"] = "\\t"
    out = []
    for char in text:
        if char in short:
            out.append(short[char])
        elif char < " " or "\ud800" <= char <= "\udfff":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@given(
    st.text(
        st.one_of(
            st.characters(),
            st.sampled_from(['"', "\\", "<", "\u2028", "\ud800", "\udfff", "\x00", "\x1f"]),
        )
    )
)
def test_js_quote_escapes_each_character_as_json_stringify_does(text: str) -> None:
    """The translate table escapes exactly what JSON.stringify escapes, and how."""
    assert js_quote(text) == _js_quote_by_character(text)


@given(free_values())
def test_deep_js_paths_equal_the_fast_ones(value: Any) -> None:
    """Property: the iterative JSON.parse and stringify give what the recursive ones do."""
    text = json.dumps(value, ensure_ascii=False)
    assert _parse_js_deep(text) == _JS_PARSER.decode(text)
    parsed = _JS_PARSER.decode(text)
    assert _stringify_deep(parsed) == js_stable_stringify(parsed)


def test_portal_signature_is_recognised_as_deep_as_go_decodes() -> None:
    """A portal-signed spec nested 5,000 levels (Go decodes it) is recognised, and the
    rewrite sends it cross-region; JSON.parse and stringify take their iterative paths."""
    key = SigningKey(bytes(range(32, 64)))
    spec = portal_spec()
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    spec["metadata"]["deep"] = deep
    spec["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    spec["signature"] = ""
    spec["signature"] = base64.b64encode(
        key.sign(portal_messages(spec)["portal_5fa6ece"]).signature
    ).decode()
    data = encode(spec)
    assert encode(parse_js(data)) == data
    check = check_spec_signature(data)
    assert check.scheme in PORTAL_SCHEMES
    with pytest.raises(ValueError, match="nesting too deep"):
        parse_js(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))

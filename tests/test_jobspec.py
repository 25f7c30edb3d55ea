"""Projection of request bodies onto the runner's Go structs, and marshalling back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from adapter.jobs.canonical import canonical_v1, canonical_v1_bytes
from adapter.jobs.gojson import GoMarshalError
from adapter.jobs.jobspec import (
    CROSS_REGION_REQUEST,
    JOB_SPEC,
    ZERO_TIME,
    GoDecodeError,
    GoStruct,
    Kind,
    decode_cross_region_request,
    decode_jobspec,
    is_cross_region_request,
    marshal_go,
    parse_rfc3339,
)
from tests.strategies import portal_jobspecs

ZERO_SPEC_JSON = (
    b'{"version":"","benchmark":{"name":"","description":"","container":{"image":"","tag":"",'
    b'"resources":{"cpu":"","memory":""}},"input":{"type":"","data":null,"hash":""},'
    b'"scoring":{"method":"","parameters":null},"metadata":null},"constraints":{"regions":null,'
    b'"min_regions":0,"min_success_rate":0,"timeout":0,"provider_timeout":0},"metadata":null,'
    b'"created_at":"0001-01-01T00:00:00Z","signature":"","public_key":""}'
)


def _spec(**members: Any) -> bytes:
    return json.dumps(members).encode("utf-8")


def test_empty_object_marshals_as_the_zero_struct() -> None:
    """Missing fields take Go zero values; omitempty fields vanish; nested structs stay."""
    assert marshal_go(decode_jobspec(b"{}")) == ZERO_SPEC_JSON


def test_top_level_null_is_the_zero_struct() -> None:
    """A null body decodes into the zero JobSpec, as json.Unmarshal leaves the struct alone."""
    assert marshal_go(decode_jobspec(b"null")) == ZERO_SPEC_JSON


@pytest.mark.parametrize(
    ("written", "marshalled"),
    [
        pytest.param("2025-10-12T14:12:10.614Z", "2025-10-12T14:12:10.614Z", id="portal-ms"),
        pytest.param("2025-10-12T14:12:10.610Z", "2025-10-12T14:12:10.61Z", id="trailing-zero"),
        pytest.param("2025-10-12T14:12:10.000Z", "2025-10-12T14:12:10Z", id="all-zero-fraction"),
        pytest.param("2025-10-12T14:12:10+00:00", "2025-10-12T14:12:10Z", id="plus-zero-offset"),
        pytest.param("2025-10-12T14:12:10-00:00", "2025-10-12T14:12:10Z", id="minus-zero-offset"),
        pytest.param("2025-10-12T14:12:10+05:30", "2025-10-12T14:12:10+05:30", id="offset-kept"),
        pytest.param(
            "2025-10-12T14:12:10.1234567891Z", "2025-10-12T14:12:10.123456789Z", id="ns-truncated"
        ),
        pytest.param("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z", id="leap-day"),
        # Go 1.24's time.Parse is lenient where strict RFC 3339 is not.
        pytest.param("2025-10-12T4:12:10Z", "2025-10-12T04:12:10Z", id="one-digit-hour"),
        pytest.param("2025-10-12T14:12:10,5Z", "2025-10-12T14:12:10.5Z", id="comma-fraction"),
        pytest.param("2025-10-12T14:12:10+00:60", "2025-10-12T14:12:10+01:00", id="minute-60"),
        pytest.param("2025-10-12T14:12:10-23:59", "2025-10-12T14:12:10-23:59", id="max-offset"),
    ],
)
def test_created_at_round_trips_as_go_rfc3339nano(written: str, marshalled: str) -> None:
    """created_at re-marshals as Go's Time.MarshalJSON writes it."""
    assert decode_jobspec(_spec(created_at=written))["created_at"] == marshalled
    assert parse_rfc3339(written) == marshalled


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{}", id="missing"),
        pytest.param(b'{"created_at": null}', id="null"),
    ],
)
def test_created_at_missing_or_null_is_the_zero_time(body: bytes) -> None:
    """An absent or null created_at marshals as Go's zero time."""
    assert decode_jobspec(body)["created_at"] == ZERO_TIME


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty-string"),
        pytest.param("2025-10-12 14:12:10Z", id="space-separator"),
        pytest.param("2025-10-12t14:12:10Z", id="lowercase-t"),
        pytest.param("2025-10-12T14:12:10z", id="lowercase-z"),
        pytest.param("2025-10-12T14:12:10", id="no-zone"),
        pytest.param("2025-02-29T00:00:00Z", id="not-a-leap-year"),
        pytest.param("2025-10-12T24:00:00Z", id="hour-24"),
        pytest.param("2025-10-12T14:12:60Z", id="leap-second"),
        pytest.param("2025-10-12T14:12:10+25:00", id="offset-hour-25"),
        pytest.param("2025-10-12T14:12:10+23:61", id="offset-minute-61"),
        pytest.param("2025-10-12T014:12:10Z", id="three-digit-hour"),
        pytest.param("2025-10-12T14:2:10Z", id="one-digit-minute"),
        pytest.param("2025-10-12T14:12:10,Z", id="comma-without-digits"),
        pytest.param("2025-10-12T14:12:10\\u005a", id="backslash-u-as-text"),
        pytest.param(1760278330614, id="number"),
        pytest.param({"t": 1}, id="object"),
    ],
)
def test_created_at_rejects_what_go_rejects(value: Any) -> None:
    """Time.UnmarshalJSON refuses these, so the whole decode fails on created_at."""
    with pytest.raises(GoDecodeError) as caught:
        decode_jobspec(_spec(created_at=value))
    assert caught.value.field == "created_at"
    assert not isinstance(caught.value, GoMarshalError)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(r"2025-10-12T14:12:10\u005a", id="escaped-Z"),
        pytest.param(r"2025\u002d10-12T14:12:10Z", id="escaped-hyphen"),
        pytest.param(r"\u0032025-10-12T14:12:10Z", id="escaped-first-digit"),
    ],
)
def test_created_at_with_json_escapes_is_refused(raw: str) -> None:
    """Go parses the raw bytes between the quotes, so an escape never parses as a time;
    the same escapes in a string field decode normally."""
    body = f'{{"created_at":"{raw}","version":"{raw}"}}'.encode()
    with pytest.raises(GoDecodeError) as caught:
        decode_jobspec(body)
    assert caught.value.field == "created_at"
    unescaped = json.loads(f'"{raw}"')
    spec = decode_jobspec(f'{{"created_at":"{unescaped}","version":"{raw}"}}'.encode())
    assert spec["version"] == unescaped
    assert type(spec["version"]) is str


@pytest.mark.parametrize("offset", ["+24:00", "-24:00", "+23:60", "+24:60"])
def test_created_at_that_go_decodes_but_cannot_marshal(offset: str) -> None:
    """An offset of 24 hours or more decodes, then Time.MarshalJSON fails: the runner cannot
    canonicalise it, and a later valid created_at replaces it as Go's decode does."""
    stamp = f"2025-10-12T14:12:10{offset}"
    with pytest.raises(GoMarshalError) as caught:
        decode_jobspec(_spec(created_at=stamp))
    assert caught.value.field == "created_at"
    assert "timezone hour outside of range" in caught.value.reason
    replaced = f'{{"created_at":"{stamp}","created_at":"2025-10-12T14:12:10Z"}}'.encode()
    assert decode_jobspec(replaced)["created_at"] == "2025-10-12T14:12:10Z"
    kept = f'{{"created_at":"{stamp}","created_at":null}}'.encode()
    with pytest.raises(GoMarshalError):
        decode_jobspec(kept)
    with pytest.raises(GoDecodeError, match="runs"):  # a type error wins: the decode fails
        decode_jobspec(f'{{"created_at":"{stamp}","runs":"x"}}'.encode())


@pytest.mark.parametrize(
    ("field", "text"),
    [
        pytest.param("runs", "1.0", id="runs-float"),
        pytest.param("runs", "1e2", id="runs-exponent"),
        pytest.param("runs", '"1"', id="runs-string"),
        pytest.param("runs", "true", id="runs-bool"),
        pytest.param("runs", "9223372036854775808", id="runs-overflow"),
        pytest.param("constraints.min_regions", "1.0", id="min-regions-float"),
        pytest.param("constraints.timeout", "600000000000.0", id="timeout-float"),
        pytest.param("constraints.timeout", '"10m"', id="timeout-go-duration-string"),
        pytest.param("constraints.provider_timeout", "6e11", id="provider-timeout-exponent"),
        pytest.param("wallet_auth.chainId", "1.5", id="chain-id-float"),
        pytest.param("constraints.min_success_rate", '"0.5"', id="rate-string"),
        pytest.param("constraints.min_success_rate", "1e400", id="rate-overflow"),
        pytest.param("metadata", "1e400", id="free-number-overflow"),
        pytest.param("benchmark.container.environment", '{"A": 1}', id="env-number"),
        pytest.param("benchmark.container.environment", '{"A": true}', id="env-bool"),
        pytest.param("questions", "[1]", id="question-number"),
        pytest.param("questions", '"q"', id="questions-string"),
        pytest.param("version", "1", id="version-number"),
        pytest.param("benchmark", "[]", id="benchmark-array"),
        pytest.param("metadata", '"x"', id="metadata-string"),
        pytest.param("wallet_auth", '"0xabc"', id="wallet-auth-string"),
        pytest.param("models", '{"id": "m"}', id="models-object"),
    ],
)
def test_type_mismatches_fail_naming_the_field(field: str, text: str) -> None:
    """Go's UnmarshalTypeError cases fail here too, naming the field path."""
    path = field.split(".")
    value = text if path[-1] != "metadata" or text.startswith('"') else f'{{"big": {text}}}'
    body = value
    for name in reversed(path):
        body = f'{{"{name}": {body}}}'
    with pytest.raises(GoDecodeError) as caught:
        decode_jobspec(body.encode())
    assert caught.value.field == field
    assert caught.value.reason.startswith("cannot unmarshal ")


def test_error_message_names_field_and_go_type() -> None:
    """The message reads like the runner's: field, value as written, Go type."""
    with pytest.raises(GoDecodeError) as caught:
        decode_jobspec(b'{"constraints": {"timeout": 600000000000.0}}')
    assert str(caught.value) == (
        "constraints.timeout: cannot unmarshal number 600000000000.0 into int64 (time.Duration)"
    )
    assert isinstance(caught.value, ValueError)


def test_first_type_error_is_reported_after_a_full_decode() -> None:
    """Like Go's saved errors, the first mismatch in document order is the one reported."""
    body = b'{"runs": 1.5, "version": 2, "constraints": {"min_regions": "x"}}'
    with pytest.raises(GoDecodeError) as caught:
        decode_jobspec(body)
    assert caught.value.field == "runs"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("-0", 0, id="negative-zero-int"),
        pytest.param("9223372036854775807", 2**63 - 1, id="int64-max"),
        pytest.param("9007199254740993", 2**53 + 1, id="beyond-float-precision-kept-exact"),
    ],
)
def test_int_fields_accept_go_integers_exactly(text: str, value: int) -> None:
    """Integer text fills int fields exactly; precision is lost only in the canonical form."""
    spec = decode_jobspec(b'{"runs": ' + text.encode() + b"}")
    if value:
        assert spec["runs"] == value
        assert isinstance(spec["runs"], int)
    else:
        assert "runs" not in spec  # zero is omitted


def test_canonical_goes_through_float64() -> None:
    """2^53+1 signs as 9007199254740992, because the runner re-decodes into float64."""
    canonical = canonical_v1_bytes(b'{"runs": 9007199254740993}')
    assert b'"runs":9007199254740992' in canonical


def test_keys_match_case_insensitively_and_last_duplicate_wins() -> None:
    """Keys fold like Go field names (including long s) and later duplicates overwrite."""
    spec = decode_jobspec(b'{"VERSION": "a", "version": "b", "Question\xc5\xbf": ["q"]}')
    assert spec["version"] == "b"
    assert spec["questions"] == ["q"]


def test_unknown_and_misspelt_keys_are_dropped() -> None:
    """Keys no field matches disappear, at every level."""
    spec = decode_jobspec(b'{"extra": 1, "benchmark": {"weird": 2}, "job_spec": {}}')
    assert "extra" not in spec
    assert "weird" not in spec["benchmark"]


def test_duplicate_struct_objects_merge_like_go() -> None:
    """A repeated struct key decodes into the same struct: earlier members survive."""
    spec = decode_jobspec(b'{"benchmark": {"name": "a"}, "benchmark": {"description": "d"}}')
    assert spec["benchmark"]["name"] == "a"
    assert spec["benchmark"]["description"] == "d"


def test_duplicate_map_objects_merge_but_free_values_are_replaced() -> None:
    """A repeated map merges its keys, while a nested free object is replaced whole."""
    spec = decode_jobspec(b'{"metadata": {"a": 1, "n": {"x": 1}}, "metadata": {"n": {"y": 2}}}')
    assert spec["metadata"] == {"a": 1.0, "n": {"y": 2.0}}


def test_repeated_list_reuses_struct_elements() -> None:
    """A repeated models array decodes into the existing elements, merging their fields."""
    body = b'{"models": [{"id": "a", "name": "n"}, {"id": "b"}], "models": [{"id": "c"}]}'
    models = decode_jobspec(body)["models"]
    assert models == [
        {"id": "c", "name": "n", "provider": "", "container_image": "", "regions": None}
    ]


def test_null_members_follow_go_rules() -> None:
    """null leaves strings and structs as they are and sets maps, slices, pointers to nil."""
    body = (
        b'{"version": "v1", "version": null, "benchmark": null, "questions": ["a", null],'
        b' "metadata": {"a": 1}, "metadata": null, "wallet_auth": null,'
        b' "benchmark": {"container": {"environment": {"A": null}}}}'
    )
    spec = decode_jobspec(body)
    assert spec["version"] == "v1"
    assert spec["questions"] == ["a", ""]
    assert spec["metadata"] is None
    assert "wallet_auth" not in spec
    assert spec["benchmark"]["container"]["environment"] == {"A": ""}


def test_omitempty_and_pointers() -> None:
    """omitempty drops zero values; an empty wallet_auth object is a pointer to zero values."""
    spec = decode_jobspec(
        b'{"runs": 0, "questions": [], "constraints": {"max_cost": 0, "providers": []},'
        b' "benchmark": {"version": ""}, "wallet_auth": {}}'
    )
    assert "runs" not in spec
    assert "questions" not in spec
    assert "max_cost" not in spec["constraints"]
    assert "providers" not in spec["constraints"]
    assert "version" not in spec["benchmark"]
    assert spec["wallet_auth"] == {
        "address": "",
        "signature": "",
        "message": "",
        "chainId": 0,
        "nonce": "",
        "expiresAt": "",
    }


def test_non_omitempty_slices_distinguish_nil_from_empty() -> None:
    """regions: missing marshals as null, [] as []."""
    assert decode_jobspec(b"{}")["constraints"]["regions"] is None
    assert decode_jobspec(b'{"constraints": {"regions": []}}')["constraints"]["regions"] == []


def test_free_maps_hold_float64_and_sorted_keys() -> None:
    """Numbers inside metadata become float64 and map keys marshal in byte order."""
    spec = decode_jobspec(b'{"metadata": {"z": 1, "a": [1e2, {"k": -0}], "\xc3\xa9": 1.5}}')
    assert spec["metadata"] == {"a": [100.0, {"k": -0.0}], "z": 1.0, "é": 1.5}
    assert list(spec["metadata"]) == ["a", "z", "é"]
    assert marshal_go(spec["metadata"]) == '{"a":[100,{"k":-0}],"z":1,"é":1.5}'.encode()


def test_invalid_utf8_becomes_replacement_characters() -> None:
    """Invalid bytes inside strings become U+FFFD (one per byte), written raw when re-encoded."""
    spec = decode_jobspec(b'{"version": "a\xe2\x82b", "metadata": {"\xff": "\\udc00"}}')
    assert spec["version"] == "a\ufffd\ufffdb"
    assert spec["metadata"] == {"\ufffd": "\ufffd"}
    assert "a\ufffd\ufffdb".encode() in canonical_v1(spec)


def test_decode_jobspec_rejects_trailing_data_and_non_objects() -> None:
    """json.Unmarshal needs exactly one value, and a JobSpec must be an object."""
    with pytest.raises(GoDecodeError, match="after top-level value"):
        decode_jobspec(b"{} {}")
    with pytest.raises(GoDecodeError, match="cannot unmarshal array into Go value"):
        decode_jobspec(b"[]")


class TestCrossRegionRequest:
    """The CrossRegionJobRequest wrapper as gin binds it."""

    def test_binds_all_members(self) -> None:
        """All five wrapper fields decode; the jobspec is projected."""
        body = (
            b'{"jobspec": {"id": "j", "x": 1}, "target_regions": ["US"], "min_regions": 1,'
            b' "min_success_rate": 0.67, "enable_analysis": true}'
        )
        request = decode_cross_region_request(body)
        assert request["target_regions"] == ["US"]
        assert request["min_regions"] == 1
        assert request["min_success_rate"] == 0.67
        assert request["enable_analysis"] is True
        assert request["jobspec"]["id"] == "j"
        assert "x" not in request["jobspec"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param(b'{"target_regions": []}', "jobspec", id="jobspec-missing"),
            pytest.param(b'{"jobspec": null, "target_regions": []}', "jobspec", id="null"),
            pytest.param(b'{"job_spec": {}, "target_regions": []}', "jobspec", id="job_spec"),
            pytest.param(b'{"jobspec": {}}', "target_regions", id="regions-missing"),
            pytest.param(b'{"jobspec": {}, "target_regions": null}', "target_regions", id="null"),
        ],
    )
    def test_required_members(self, body: bytes, field: str) -> None:
        """jobspec and target_regions must be present and non-null."""
        with pytest.raises(GoDecodeError) as caught:
            decode_cross_region_request(body)
        assert caught.value.field == field

    def test_empty_target_regions_and_trailing_bytes_pass(self) -> None:
        """An empty array passes binding, and json.Decoder ignores bytes after the value."""
        request = decode_cross_region_request(b'{"JobSpec": {}, "target_regions": []} trailing')
        assert request["target_regions"] == []

    def test_enable_analysis_must_be_bool(self) -> None:
        """A string for a bool field is a type error."""
        with pytest.raises(GoDecodeError) as caught:
            decode_cross_region_request(
                b'{"jobspec": {}, "target_regions": [], "enable_analysis": "true"}'
            )
        assert caught.value.field == "enable_analysis"


@settings(max_examples=60)
@given(portal_jobspecs())
def test_projection_is_a_fixed_point_of_marshal_and_decode(spec: dict[str, Any]) -> None:
    """Marshalling a projection and decoding it again gives the same value and canonical bytes."""
    projected = decode_jobspec(json.dumps(spec).encode())
    again = decode_jobspec(marshal_go(projected))
    assert again == projected
    assert marshal_go(again) == marshal_go(projected)
    assert canonical_v1(projected) == canonical_v1_bytes(marshal_go(projected))


@settings(max_examples=60)
@given(portal_jobspecs())
def test_ascii_escaped_and_raw_utf8_bodies_project_the_same(spec: dict[str, Any]) -> None:
    """\\u escapes and raw UTF-8 in the request decode to the same struct."""
    escaped = json.dumps(spec, ensure_ascii=True).encode()
    raw = json.dumps(spec, ensure_ascii=False).encode("utf-8")
    assert decode_jobspec(escaped) == decode_jobspec(raw)


def _zero_by_kind(struct: GoStruct) -> dict[str, Any]:
    scalars = {Kind.STRING: "", Kind.INT: 0, Kind.DURATION: 0, Kind.FLOAT: 0.0, Kind.BOOL: False}
    zero: dict[str, Any] = {}
    for fld in struct.fields:
        if fld.kind is Kind.STRUCT:
            assert fld.struct is not None
            zero[fld.name] = _zero_by_kind(fld.struct)
        else:
            zero[fld.name] = scalars.get(fld.kind)  # nil map, slice, pointer; zero time
    return zero


@pytest.mark.parametrize("struct", [JOB_SPEC, CROSS_REGION_REQUEST], ids=lambda s: s.go_name)
def test_zero_value_is_go_zero_and_fresh_each_time(struct: GoStruct) -> None:
    """The cached zero value matches Go's per kind, and no decode shares a nested dict."""
    first = struct.zero_value()
    assert first == struct.zero_value() == _zero_by_kind(struct)
    for name in list(first):  # scribble over every member, nested ones included
        if isinstance(first[name], dict):
            for inner in first[name].values():
                if isinstance(inner, dict):
                    inner.clear()
            first[name].clear()
        first[name] = "changed"
    assert struct.zero_value() == _zero_by_kind(struct)


@pytest.mark.parametrize(
    ("body", "wrapped"),
    [
        (b'{"id":"j1","jobspec":{"id":"j1"},"target_regions":["eu"]}', True),
        (b'{"JobSpec":{"id":"j1"}}', True),  # Go binds case-folded member names
        (b'{"jobspec":null}', True),  # wrapped, though the runner rejects it (required)
        (b'{"id":"j1","benchmark":{"name":"b"}}', False),
        (b'{"job_spec":{"id":"j1"}}', False),  # another name, not a fold of jobspec
        (b'{"metadata":{"jobspec":{}}}', False),  # only a top-level member counts
        (b'[{"jobspec":{}}]', False),
        (b"not json", False),
    ],
)
def test_is_cross_region_request(body: bytes, wrapped: bool) -> None:
    """The one rule, as the runner's decoder binds the body, for every caller."""
    assert is_cross_region_request(body) is wrapped

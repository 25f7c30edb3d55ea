"""Go encoding/json semantics: float formatting, string escaping, UTF-8 repair, parsing."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, strategies as st

from adapter.jobs.gojson import (
    _DECODER,
    DEEP_CONTAINER_BUDGET,
    FAST_DEPTH,
    MAX_DEPTH,
    GoDecodeError,
    GoNumber,
    GoObject,
    decode_text,
    encode,
    fold_key,
    format_float,
    parse,
    parse_iterative,
    quote,
    to_interface,
)
from tests.strategies import free_values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Known outputs of Go's json.Marshal(float64) (encode.go floatEncoder, Go 1.24).
        pytest.param(1e21, "1e+21", id="1e21-switches-to-exponent"),
        pytest.param(1e20, "100000000000000000000", id="1e20-positional"),
        pytest.param(1e-7, "1e-7", id="1e-7-exponent-shortened"),
        pytest.param(1e-6, "0.000001", id="1e-6-positional"),
        pytest.param(0.000001, "0.000001", id="0.000001"),
        pytest.param(5e-324, "5e-324", id="smallest-subnormal"),
        pytest.param(1.7976931348623157e308, "1.7976931348623157e+308", id="largest"),
        pytest.param(-0.0, "-0", id="negative-zero"),
        pytest.param(0.0, "0", id="zero"),
        pytest.param(0.1 + 0.2, "0.30000000000000004", id="0.1+0.2"),
        pytest.param(100.0, "100", id="100-no-trailing-.0"),
        pytest.param(1e16, "10000000000000000", id="1e16"),
        pytest.param(123456789.125, "123456789.125", id="123456789.125"),
        pytest.param(600000000000.0, "600000000000", id="ten-minutes-in-ns"),
        pytest.param(0.67, "0.67", id="0.67"),
        pytest.param(1.5e-6, "0.0000015", id="1.5e-6"),
        pytest.param(1e-10, "1e-10", id="1e-10-two-digit-exponent"),
        pytest.param(1.2345e-8, "1.2345e-8", id="1.2345e-8"),
        pytest.param(2.5e25, "2.5e+25", id="2.5e25"),
        pytest.param(1e100, "1e+100", id="1e100"),
        pytest.param(-1e-7, "-1e-7", id="negative-exponent-form"),
        pytest.param(12345678901234567890.0, "12345678901234567000", id="beyond-2^53"),
        pytest.param(9.999999999999999e20, "999999999999999900000", id="just-below-1e21"),
    ],
)
def test_format_float_matches_go(value: float, expected: str) -> None:
    """Floats print exactly as Go's encoding/json prints float64."""
    assert format_float(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_format_float_rejects_non_finite(value: float) -> None:
    """NaN and infinities are unsupported values, as in Go."""
    with pytest.raises(ValueError, match="unsupported value"):
        format_float(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_round_trips(value: float) -> None:
    """Every formatted float parses back to the same float64 (shortest round-trip)."""
    text = format_float(value)
    assert float(text) == value
    assert math.copysign(1.0, float(text)) == math.copysign(1.0, value)
    assert not text.endswith(".0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<", '"\\u003c"', id="lt"),
        pytest.param(">", '"\\u003e"', id="gt"),
        pytest.param("&", '"\\u0026"', id="amp"),
        pytest.param("\u2028", '"\\u2028"', id="line-separator"),
        pytest.param("\u2029", '"\\u2029"', id="paragraph-separator"),
        pytest.param("\n", '"\\n"', id="newline"),
        pytest.param("\r", '"\\r"', id="carriage-return"),
        pytest.param("\t", '"\\t"', id="tab"),
        pytest.param("\b", '"\\b"', id="backspace-go1.22-short-form"),
        pytest.param("\f", '"\\f"', id="form-feed-go1.22-short-form"),
        pytest.param("\x00", '"\\u0000"', id="nul"),
        pytest.param("\x01\x1f", '"\\u0001\\u001f"', id="controls-lowercase-hex"),
        pytest.param("\x0b", '"\\u000b"', id="vertical-tab"),
        pytest.param("\x1b", '"\\u001b"', id="escape-lowercase"),
        pytest.param("\x7f", '"\x7f"', id="del-raw"),
        pytest.param('"', '"\\""', id="quote"),
        pytest.param("\\", '"\\\\"', id="backslash"),
        pytest.param("/", '"/"', id="slash-raw"),
        pytest.param("é天😀", '"é天😀"', id="non-ascii-raw-utf8"),
        pytest.param("\ufffd", '"\ufffd"', id="valid-replacement-char-raw"),
        pytest.param("\ud800", '"\\ufffd"', id="lone-surrogate"),
        pytest.param("plain", '"plain"', id="plain"),
    ],
)
def test_quote_matches_go(text: str, expected: str) -> None:
    """Strings are escaped exactly as Go's json.Marshal (escapeHTML on) escapes them."""
    assert quote(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"a\xffb", '"a\\ufffdb"', id="invalid-byte"),
        pytest.param(b"\xe2\x82(", '"\\ufffd\\ufffd("', id="truncated-sequence-each-byte"),
        pytest.param(b"\xed\xa0\x80", '"\\ufffd\\ufffd\\ufffd"', id="utf8-encoded-surrogate"),
        pytest.param(b"\xc0\x80", '"\\ufffd\\ufffd"', id="overlong-nul"),
        pytest.param(b"\xf4\x90\x80\x80", '"' + "\\ufffd" * 4 + '"', id="above-max-rune"),
        pytest.param(b"\x80", '"\\ufffd"', id="lone-continuation"),
        pytest.param(b"\xe2\x82\xac", '"€"', id="valid-euro"),
    ],
)
def test_quote_invalid_utf8_bytes_like_go(raw: bytes, expected: str) -> None:
    """A Go string holding invalid UTF-8 gets one \\ufffd escape per invalid byte."""
    assert quote(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"\xe2\x82(", "\ufffd\ufffd(", id="truncated-sequence-each-byte"),
        pytest.param(b"\xff\xfe", "\ufffd\ufffd", id="two-invalid"),
        pytest.param(b"\xed\xa0\x80", "\ufffd" * 3, id="encoded-surrogate"),
        pytest.param("é".encode(), "é", id="valid"),
    ],
)
def test_decode_text_replaces_each_invalid_byte(raw: bytes, expected: str) -> None:
    """Decoding replaces every invalid byte with its own U+FFFD (utf8.DecodeRune width 1)."""
    assert decode_text(raw) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'"\\ud83d\\ude00"', "😀", id="valid-pair"),
        pytest.param(b'"\\ud83d\\u0041"', "\ufffdA", id="high-then-letter"),
        pytest.param(b'"\\ude00"', "\ufffd", id="lone-low"),
        pytest.param(b'"\\ud83d\\ud83d\\ude00"', "\ufffd😀", id="high-high-low"),
        pytest.param(b'"\\u00e9\\u5929"', "é天", id="bmp-escapes"),
        pytest.param(b'"a\xffb"', "a\ufffdb", id="invalid-byte-in-string"),
    ],
)
def test_parse_strings_like_go_unquote(body: bytes, expected: str) -> None:
    """Escapes and invalid bytes decode to what Go's unquote yields."""
    assert parse(body) == expected


def test_parse_keeps_member_order_duplicates_and_number_text() -> None:
    """Objects keep every member in order and numbers keep their exact text."""
    node = parse(b'{"b": 1.0, "a": 1e2, "b": -0, "\\ud800": 1}')
    assert isinstance(node, GoObject)
    assert list(node) == [
        ("b", GoNumber("1.0")),
        ("a", GoNumber("1e2")),
        ("b", GoNumber("-0")),
        ("\ufffd", GoNumber("1")),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "unexpected end of JSON input", id="empty"),
        pytest.param(b"   ", "unexpected end of JSON input", id="blank"),
        pytest.param(b'{"a": NaN}', "invalid character 'N'", id="nan"),
        pytest.param(b'{"a": Infinity}', "invalid character 'I'", id="infinity"),
        pytest.param(b'{"a": -Infinity}', "invalid character", id="negative-infinity"),
        pytest.param(b'{"a": 1,}', "invalid character", id="trailing-comma"),
        pytest.param(b'{"a": "x\ny"}', "invalid character", id="raw-newline-in-string"),
        pytest.param(b'{"a": 01}', "invalid character", id="leading-zero"),
        pytest.param(b'{"a": 1} x', "after top-level value", id="trailing-garbage"),
        pytest.param(b'{"a": 1', "unexpected end of JSON input", id="truncated"),
        pytest.param(b"\xef\xbb\xbf{}", "invalid character", id="bom"),
        pytest.param(b"{'a': 1}", "invalid character", id="single-quotes"),
    ],
)
def test_parse_rejects_what_go_rejects(body: bytes, message: str) -> None:
    """Syntax Go refuses is refused here, with a Go-style message."""
    with pytest.raises(GoDecodeError, match=message) as caught:
        parse(body)
    assert caught.value.field == ""


def test_parse_allow_trailing_reads_only_the_first_value() -> None:
    """Like json.Decoder.Decode (gin's binding), bytes after the first value are ignored."""
    assert parse(b'{"a": 1} {"b"', allow_trailing=True) == GoObject([("a", GoNumber("1"))])
    with pytest.raises(GoDecodeError, match="EOF"):
        parse(b"  ", allow_trailing=True)


def test_parse_follows_go_to_its_nesting_limit_without_recursion() -> None:
    """Go decodes 10,000 levels and refuses the 10,001st; so does parse, far past the stack."""
    assert MAX_DEPTH == 10_000 > sys.getrecursionlimit()
    deepest = parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH - 1):
        assert isinstance(deepest, list)
        assert len(deepest) == 1
        deepest = deepest[0]
    assert deepest == []
    with pytest.raises(GoDecodeError, match="exceeded max depth"):
        parse(b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}")
    with pytest.raises(GoDecodeError) as caught:  # past the budget before Go's own limit
        parse(b'{"a":' + b"[" * 5 * MAX_DEPTH + b"]" * 5 * MAX_DEPTH + b"}")
    assert caught.value.field == ""


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":[1,{"b":"x"},null,true,false,"\\u00e9\\ud800",-1.5e3],"c":{},"d":[]}',
        b'  [ {"k" : "v" , "k":2} , [ ] , { } ]  ',
        b'"2025-10-12T14:12:10\\u005a"',
    ],
)
def test_iterative_parse_equals_the_c_parse(body: bytes) -> None:
    """The path for deep bodies reads what the C parser reads (escaped times marked)."""
    text = decode_text(body)
    node, _ = parse_iterative(text, 0)
    assert node == parse(body)
    assert type(node) is type(parse(body))


@given(free_values())
def test_iterative_parse_equals_the_c_parse_on_any_value(value: object) -> None:
    """Property: both parsers give equal nodes for any JSON value."""
    text = encode(value).decode("utf-8")
    assert parse_iterative(text, 0)[0] == _DECODER.raw_decode(text)[0]


def test_deep_values_encode_and_convert_without_recursion() -> None:
    """encode and to_interface fall back to their iterative twins past the Python stack."""
    depth = 3 * sys.getrecursionlimit()
    node = parse(b"[" * depth + b"1" + b"]" * depth)
    errors: list[GoDecodeError] = []
    value = to_interface(node, errors.append, "x")
    assert not errors
    assert encode(value) == b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize(
    ("key", "field", "matches"),
    [
        pytest.param("RUNS", "runs", True, id="upper"),
        pytest.param("Runs", "runs", True, id="title"),
        pytest.param("run\u017f", "runs", True, id="long-s-folds-to-s"),
        pytest.param("\u212aid", "kid", True, id="kelvin-folds-to-k"),
        pytest.param("\u0130d", "id", False, id="dotted-capital-i-does-not-fold"),
        pytest.param("\u0131d", "id", False, id="dotless-i-does-not-fold"),
        pytest.param("ｒｕｎｓ", "runs", False, id="fullwidth-does-not-fold"),
        pytest.param("min-regions", "min_regions", False, id="punctuation-exact"),
    ],
)
def test_fold_key_matches_go_field_folding(key: str, field: str, matches: bool) -> None:
    """Keys fold as Go's foldName: ASCII case plus the long s and Kelvin sign, nothing else."""
    assert (fold_key(key) == fold_key(field)) is matches


def test_only_long_s_and_kelvin_fold_into_ascii_letters() -> None:
    """Among all code points, only U+017F and U+212A simple-fold onto an ASCII letter."""
    folding = {
        chr(cp)
        for cp in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF
        and len(chr(cp).casefold()) == 1
        and chr(cp).casefold().isascii()
        and chr(cp).casefold().isalpha()
    }
    assert folding == {"\u017f", "\u212a"}
    assert {c for c in folding if fold_key(c).isascii()} == folding


def test_encode_keeps_order_unless_sorting() -> None:
    """encode keeps mapping order; sort_keys orders keys by code point (UTF-8 byte order)."""
    value = {"b": [1, 2.5, None, True], "a": {"é": "<", "Z": False}}
    assert encode(value) == '{"b":[1,2.5,null,true],"a":{"é":"\\u003c","Z":false}}'.encode()
    assert encode(value, sort_keys=True) == (
        '{"a":{"Z":false,"é":"\\u003c"},"b":[1,2.5,null,true]}'.encode()
    )


def test_encode_rejects_unsupported_values() -> None:
    """Values json.Marshal cannot encode raise instead of producing wrong bytes."""
    with pytest.raises(TypeError):
        encode({"a": object()})
    with pytest.raises(TypeError):
        encode({1: "a"})


def _reference_encode(value: object, sort_keys: bool) -> str:
    """The encoder spelled out plainly: one quote() per string, one format_float per float."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else list(value.items())
        members = [f"{quote(k)}:{_reference_encode(v, sort_keys)}" for k, v in items]
        return "{" + ",".join(members) + "}"
    assert isinstance(value, list)
    return "[" + ",".join(_reference_encode(v, sort_keys) for v in value) + "]"


@given(free_values(depth=3), st.booleans())
def test_encode_matches_the_plain_encoder(value: object, sort_keys: bool) -> None:
    """The inlined fast paths (plain strings, integral floats) write what quote/format_float do."""
    expected = _reference_encode(value, sort_keys).encode("utf-8")
    assert encode(value, sort_keys=sort_keys) == expected


@given(
    st.one_of(
        st.integers(-(2**54), 2**54).map(float),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([2.0**53, 2.0**53 - 1, -(2.0**53), 1e21, -0.0, 0.0]),
    )
)
def test_encode_float_is_format_float(value: float) -> None:
    """Integral floats take a shortcut that must print exactly as format_float does."""
    assert encode(value) == format_float(value).encode()
    assert encode([value]) == f"[{format_float(value)}]".encode()


ANY_TEXT = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from(['"', "\\", "<", ">", "&", "\u2028", "\u2029", "\ud800", "\udfff"]),
        st.characters(max_codepoint=0x1F),
    )
)


def _go_quote_by_character(text: str) -> str:
    """Go's string encoder, one character at a time (encode.go appendString)."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
    short["\t"] = "\\t"
    out = []
    for char in text:
        if char in short:
            out.append(short[char])
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")
        elif char in "<>&\u2028\u2029" or char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@given(ANY_TEXT)
def test_quote_escapes_each_character_as_go_does(text: str) -> None:
    """The translate table escapes exactly what Go's encoder escapes, and how."""
    assert quote(text) == _go_quote_by_character(text)


def test_deep_bodies_are_followed_within_a_container_budget() -> None:
    """Past FAST_DEPTH the iterative path is followed for at most DEEP_CONTAINER_BUDGET
    arrays and objects (it is slow); the same width without the depth takes the C path."""
    wide = ",".join(["[1]"] * DEEP_CONTAINER_BUDGET)
    deep = "[" * (FAST_DEPTH + 1) + "]" * (FAST_DEPTH + 1)
    assert isinstance(parse(f'{{"wide":[{wide}]}}'), GoObject)
    with pytest.raises(GoDecodeError, match="arrays and objects, more than"):
        parse(f'{{"wide":[{wide}],"deep":{deep}}}')
    at_go_limit = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert isinstance(parse(f'{{"deep":{at_go_limit}}}'), GoObject)

"""Go ``encoding/json`` semantics, as the runner applies them to request bodies.

The runner verifies signatures over bytes it re-encodes itself, so "nearly the same JSON"
fails verification. The decoder here keeps what Go's decoder looks at (raw number text,
members in order with duplicates, U+FFFD for invalid UTF-8 and lone surrogates) and the
encoder writes strings and floats exactly as Go's ``json.Marshal`` does (Go 1.22+).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn


class GoDecodeError(ValueError):
    """The runner's ``encoding/json`` decode would fail; ``field`` says where, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True, slots=True)
class GoNumber:
    """A JSON number as written; Go decides int-versus-float from this text."""

    text: str


class GoObject(tuple[tuple[str, Any], ...]):
    """A JSON object as its members in input order, duplicates kept (Go applies each in turn)."""

    __slots__ = ()


def _replace_each_byte(error: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports width 1 for every invalid byte, so each becomes one U+FFFD;
    # Python's "replace" would merge a truncated multi-byte sequence into a single U+FFFD.
    assert isinstance(error, UnicodeDecodeError)
    return "\ufffd" * (error.end - error.start), error.end


codecs.register_error("gojson.replace", _replace_each_byte)

# Go's decoder allows 10,000 levels of nesting. Python cannot follow it that far: the
# projection, the canonical forms and the encoders recurse once or twice per level and
# hit the interpreter's recursion limit (1,000 frames) from about 450 levels, which used
# to escape as RecursionError. Deeper documents are refused here as Go refuses its own
# limit; the adapter then passes them through untouched and the runner decides. No
# JobSpec nests more than a handful of levels.
MAX_DEPTH: Final = 256
_DEPTH_TOKEN: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def exceeds_max_depth(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than ``limit`` levels deep.

    Brackets inside strings do not count. Linear, and free for ordinary bodies: the scan
    runs only when the text holds more opening brackets than ``limit``.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _DEPTH_TOKEN.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


_LONE_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_JSON_SPACE: Final = " \t\n\r"


def decode_text(data: bytes) -> str:
    """Decode request bytes as Go's decoder sees them: each invalid UTF-8 byte is U+FFFD."""
    return data.decode("utf-8", "gojson.replace")


def _reject_constant(name: str) -> NoReturn:
    raise GoDecodeError("", f"invalid character {name[0]!r} looking for beginning of value")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=GoObject,
    parse_float=GoNumber,
    parse_int=GoNumber,
    parse_constant=_reject_constant,
    strict=True,
)


def _fix_surrogates(node: Any) -> Any:
    """Replace lone surrogates (from ``\\udXXX`` escapes) with U+FFFD, as Go's unquote does."""
    if isinstance(node, str):
        return _SURROGATE.sub("\ufffd", node)
    if isinstance(node, GoObject):
        return GoObject((_SURROGATE.sub("\ufffd", k), _fix_surrogates(v)) for k, v in node)
    if isinstance(node, list):
        return [_fix_surrogates(v) for v in node]
    return node


def _syntax_error(text: str, pos: int, what: str) -> GoDecodeError:
    if pos >= len(text):
        return GoDecodeError("", "unexpected end of JSON input")
    return GoDecodeError("", f"invalid character {text[pos]!r} at offset {pos} ({what})")


def parse(data: bytes | str, *, allow_trailing: bool = False) -> Any:
    """Parse one JSON value into Go-faithful nodes.

    Nodes are ``None``, ``bool``, ``str``, :class:`GoNumber`, ``list`` and :class:`GoObject`.
    ``allow_trailing`` mimics ``json.Decoder.Decode`` (what gin binds with): bytes after the
    first complete value are ignored. Otherwise any trailing non-space is an error, as in
    ``json.Unmarshal``.
    """
    text = decode_text(data) if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if start == len(text):
        raise GoDecodeError("", "EOF" if allow_trailing else "unexpected end of JSON input")
    if exceeds_max_depth(text):
        raise GoDecodeError("", "exceeded max depth")
    try:
        node, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _syntax_error(text, exc.pos, exc.msg.lower()) from None
    except RecursionError:
        raise GoDecodeError("", "exceeded max depth") from None
    if not allow_trailing:
        rest = len(text) - len(text[end:].lstrip(_JSON_SPACE))
        if rest < len(text):
            raise _syntax_error(text, rest, "after top-level value")
    if _LONE_SURROGATE_ESCAPE.search(text, start, end):
        node = _fix_surrogates(node)
    return node


def json_type(node: Any) -> str:
    """The JSON type word Go puts in ``cannot unmarshal <word> into ...`` messages."""
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "bool"
    if isinstance(node, GoNumber):
        return "number"
    if isinstance(node, str):
        return "string"
    if isinstance(node, GoObject):
        return "object"
    return "array"


def to_float64(number: GoNumber) -> float:
    """``strconv.ParseFloat(text, 64)`` as the decoder uses it; out of range is an error."""
    value = float(number.text)
    if math.isinf(value):
        raise OverflowError(number.text)
    return value


# Parsed nodes that interface{} holds unchanged (checked by exact type, as parse makes them).
_AS_IS: Final = frozenset({str, bool, type(None)})


def to_interface(node: Any, on_error: Callable[[GoDecodeError], None], field: str) -> Any:
    """Decode into ``interface{}``: objects become maps (last duplicate wins), numbers float64."""
    if isinstance(node, GoObject):
        return {
            key: value if type(value) in _AS_IS else to_interface(value, on_error, field)
            for key, value in node
        }
    if isinstance(node, list):
        return [
            value if type(value) in _AS_IS else to_interface(value, on_error, field)
            for value in node
        ]
    if isinstance(node, GoNumber):
        try:
            return to_float64(node)
        except OverflowError:
            on_error(GoDecodeError(field, f"cannot unmarshal number {node.text} into float64"))
            return None
    return node


# Go folds struct field names for case-insensitive matching: ASCII letters by case, plus the
# two non-ASCII runes whose simple case-fold orbit contains an ASCII letter (fold.go).
_FOLD_TABLE: Final = {
    **{c: c - 32 for c in range(ord("a"), ord("z") + 1)},
    0x017F: ord("S"),  # LATIN SMALL LETTER LONG S folds with s/S
    0x212A: ord("K"),  # KELVIN SIGN folds with k/K
}


def fold_key(key: str) -> str:
    """Fold a JSON key the way Go matches it against ASCII struct field names."""
    return key.translate(_FOLD_TABLE)


# --- encoding -------------------------------------------------------------------------------

# The escapes Go and JavaScript share; Go adds the HTML-safe ones below.
SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_GO_ESCAPES: Final = {
    **SHORT_ESCAPES,
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_NEEDS_ESCAPE: Final = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')


def _go_escape(match: re.Match[str]) -> str:
    char = match.group()
    escaped = _GO_ESCAPES.get(char)
    if escaped is not None:
        return escaped
    if "\ud800" <= char <= "\udfff":
        return "\\ufffd"  # an invalid UTF-8 byte in a Go string is written as this escape
    return f"\\u{ord(char):04x}"


def escape_table(
    pattern: re.Pattern[str], escape: Callable[[re.Match[str]], str]
) -> dict[int, str]:
    """The ``str.translate`` table that does what ``pattern.sub(escape, text)`` does.

    ``pattern`` must be one character class over the BMP, as the escape patterns are; the
    table then escapes each character in C instead of calling ``escape`` per match.
    """
    every_bmp_character = "".join(map(chr, range(0x10000)))
    return {ord(match.group()): escape(match) for match in pattern.finditer(every_bmp_character)}


_GO_ESCAPE_TABLE: Final = escape_table(_GO_NEEDS_ESCAPE, _go_escape)


def quote(value: str | bytes) -> str:
    """Quote a string as Go's ``json.Marshal`` does (HTML-safe, raw UTF-8).

    ``bytes`` are taken as a Go string that may hold invalid UTF-8: each invalid byte is
    written as ``\\ufffd``. In a ``str``, lone surrogates count as such bytes.
    """
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    if _GO_NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + text.translate(_GO_ESCAPE_TABLE) + '"'


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``|value|`` and the decimal point position.

    ``value == 0.digits * 10**point``; ``repr`` gives the same shortest digits as Go's
    ``strconv.FormatFloat(f, fmt, -1, 64)``, only the layout differs.
    """
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(whole + fraction) - len(digits))
    return digits.rstrip("0") or "0", point


def _exponent_form(digits: str, point: int, *, pad: bool) -> str:
    exp = point - 1
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    width = 2 if pad else 1
    return f"{head}e{'+' if exp >= 0 else '-'}{abs(exp):0{width}d}"


def _positional_form(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def format_float(value: float) -> str:
    """Format a float64 as Go's ``json.Marshal`` does.

    Positional for 1e-6 <= |x| < 1e21, else exponent with the ``e-07`` -> ``e-7`` cleanup;
    ``-0`` stays ``-0``; no trailing ``.0``. NaN and infinities are unsupported, as in Go.
    """
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = _exponent_form(digits, point, pad=True)
        # encoding/json shortens a two-digit negative exponent e-0X to e-X (and only that).
        if len(text) >= 4 and text[-4:-1] == "e-0":
            text = text[:-2] + text[-1]
        return sign + text
    return sign + _positional_form(digits, point)


def format_js_number(value: float) -> str:
    """Format a number as JavaScript's ``Number.prototype.toString`` (and ``JSON.stringify``)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(value)
    if -6 < point <= 21:
        return sign + _positional_form(digits, point)
    return sign + _exponent_form(digits, point, pad=False)


# Integral floats below 2**53 are exact integers, and the shortest digits that round-trip
# such a float are its own: Go prints it as str(int(x)) would (zero aside: -0 stays "-0").
_EXACT_INTEGERS: Final = 2.0**53


def _format_float_fast(value: float) -> str:
    if value.is_integer() and 0 < abs(value) < _EXACT_INTEGERS:
        return str(int(value))
    return format_float(value)


def _encode_into(parts: list[str], value: Any, sort_keys: bool) -> None:
    # Exact-type fast paths first: this runs for every value of every signed spec.
    kind = type(value)
    if kind is str:
        parts.append(quote(value))
    elif kind is dict:
        _encode_mapping(parts, value, sort_keys)
    elif kind is float:
        parts.append(_format_float_fast(value))
    elif kind is list:
        _encode_sequence(parts, value, sort_keys)
    else:
        _encode_other(parts, value, sort_keys)


def _encode_mapping(parts: list[str], value: Mapping[Any, Any], sort_keys: bool) -> None:
    # The common members (plain keys, plain strings) are written inline: a function call
    # per member was most of the encoder's time.
    append = parts.append
    needs_escape = _GO_NEEDS_ESCAPE.search
    items = sorted(value.items()) if sort_keys else value.items()
    separator = "{"
    for key, item in items:
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(f"json: unsupported map key type {type(key).__name__}")
        if needs_escape(key) is None:
            key_text = f'{separator}"{key}":'
        else:
            key_text = f"{separator}{quote(key)}:"
        separator = ","
        if type(item) is str and needs_escape(item) is None:
            append(f'{key_text}"{item}"')
        else:
            append(key_text)
            _encode_into(parts, item, sort_keys)
    append("}" if separator == "," else "{}")


def _encode_sequence(parts: list[str], value: Sequence[Any], sort_keys: bool) -> None:
    append = parts.append
    needs_escape = _GO_NEEDS_ESCAPE.search
    separator = "["
    for item in value:
        if type(item) is str and needs_escape(item) is None:
            append(f'{separator}"{item}"')
        else:
            append(separator)
            _encode_into(parts, item, sort_keys)
        separator = ","
    append("]" if separator == "," else "[]")


class RawJSON(bytes):
    """An already-encoded JSON fragment, embedded verbatim (e.g. a Go struct in field order)."""


def _encode_other(parts: list[str], value: Any, sort_keys: bool) -> None:
    if isinstance(value, RawJSON):
        parts.append(value.decode("utf-8"))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(quote(value))
    elif isinstance(value, int):
        parts.append(str(value))
    elif isinstance(value, float):
        parts.append(_format_float_fast(value))
    elif isinstance(value, Mapping):
        _encode_mapping(parts, value, sort_keys)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        _encode_sequence(parts, value, sort_keys)
    else:
        raise TypeError(f"json: unsupported type {type(value).__name__}")


def encode(value: Any, *, sort_keys: bool = False) -> bytes:
    """Encode with Go's string and float rules, no whitespace.

    Mappings keep their order unless ``sort_keys``; keys then sort by code point, which is
    the byte order of their UTF-8 (Go ``sort.Strings``).
    """
    parts: list[str] = []
    _encode_into(parts, value, sort_keys)
    return "".join(parts).encode("utf-8")

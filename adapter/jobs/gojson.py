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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


class GoMarshalError(GoDecodeError):
    """The runner decodes the body but ``json.Marshal`` of the decoded struct fails.

    ``CanonicalizeJobSpecV1`` marshals the struct first, so the runner cannot canonicalise
    such a spec (docs/runner-contract.md §2a): a ``time.Time`` whose offset is 24 hours or
    more decodes, then ``Time.MarshalJSON`` refuses it. For the adapter it is as good as
    undecodable: nothing it could sign would verify.
    """


class EscapedString(str):
    """A string literal written with escapes whose value could be read as a timestamp.

    Go's ``time.Time.UnmarshalJSON`` parses the raw bytes between the quotes, escapes and
    all (docs/runner-contract.md §1), so ``"...\\u005a"`` is not ``"...Z"`` to it. Every other
    field sees the unescaped value; decoders turn this back into a plain ``str``.
    """

    __slots__ = ()


# Go's decoder allows 10,000 levels of nesting (encoding/json maxNestingDepth) and refuses
# the 10,001st, on every route (docs/runner-contract.md §1). The adapter follows it exactly.
# Bodies up to FAST_DEPTH levels take the C parser and the recursive helpers below; deeper
# ones take iterative twins (``parse`` and ``rebuild_deep``), so no depth Go accepts can
# raise RecursionError. No real JobSpec nests more than a handful of levels.
MAX_DEPTH: Final = 10_000
FAST_DEPTH: Final = 200
# The iterative path costs about 75 µs per array or object through a whole decision (the C
# path a third of that), and a 1 MiB body can hold half a million of them. A body nested
# past FAST_DEPTH is followed only while it holds at most this many: enough for a spec at
# Go's full depth plus its ordinary content (about 1 s of CPU at worst); a bigger one is
# refused, so it passes through unchanged and the runner decides.
DEEP_CONTAINER_BUDGET: Final = 12_000
_DEPTH_TOKEN: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_DEPTH_TOKEN_BYTES: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(text: str | bytes) -> int:
    """How many levels of arrays and objects the JSON text nests (brackets in strings aside)."""
    tokens = _DEPTH_TOKEN_BYTES if isinstance(text, bytes) else _DEPTH_TOKEN
    opening = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    depth = deepest = 0
    for match in tokens.finditer(text):  # type: ignore[arg-type]
        char = match.group()
        if char in opening:
            depth += 1
            deepest = max(deepest, depth)
        elif len(char) == 1:
            depth -= 1
    return deepest


def exceeds_max_depth(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than ``limit`` levels deep.

    Free for ordinary bodies: the scan runs only when the text holds more opening
    brackets than ``limit``.
    """
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit:
            return False
        tokens, opening = _DEPTH_TOKEN_BYTES.finditer(text), (b"[", b"{")
    else:
        if text.count("[") + text.count("{") <= limit:
            return False
        tokens, opening = _DEPTH_TOKEN.finditer(text), ("[", "{")  # type: ignore[assignment]
    depth = 0
    for match in tokens:  # stops at the first level past the limit
        char = match.group()
        if char in opening:
            depth += 1
            if depth > limit:
                return True
        elif len(char) == 1:
            depth -= 1
    return False


def refuse_beyond_deep_budget(text: str) -> None:
    """Raise for a deep body with more arrays and objects than the adapter follows."""
    containers = text.count("[") + text.count("{")  # brackets in strings count: an upper bound
    if containers > DEEP_CONTAINER_BUDGET:
        raise GoDecodeError(
            "",
            f"nested past {FAST_DEPTH} levels with {containers} arrays and objects, more "
            f"than the {DEEP_CONTAINER_BUDGET} the adapter follows that deep",
        )


_LONE_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_JSON_SPACE: Final = " \t\n\r"
# Characters a timestamp Go's time.Parse accepts can hold, and their \u escapes. A string
# literal built only of these with at least one escape is what EscapedString marks.
_TIME_CHAR: Final = r"[0-9TZ:.,+\-]"
_TIME_ESCAPE: Final = r"\\u00(?:3[0-9aA]|5[4aA]|2[bBcCdDeE])"
_ESCAPED_TIME_LITERAL: Final = re.compile(
    f'"(?:{_TIME_CHAR}|{_TIME_ESCAPE})*{_TIME_ESCAPE}(?:{_TIME_CHAR}|{_TIME_ESCAPE})*"'
)
_TIME_TEXT: Final = re.compile(f"{_TIME_CHAR}+")


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

    Nodes are ``None``, ``bool``, ``str`` (:class:`EscapedString` for an escaped literal
    that could be a timestamp), :class:`GoNumber`, ``list`` and :class:`GoObject`.
    ``allow_trailing`` mimics ``json.Decoder.Decode`` (what gin binds with): bytes after the
    first complete value are ignored. Otherwise any trailing non-space is an error, as in
    ``json.Unmarshal``.
    """
    text = decode_text(data) if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if start == len(text):
        raise GoDecodeError("", "EOF" if allow_trailing else "unexpected end of JSON input")
    deep = exceeds_max_depth(text, FAST_DEPTH)
    if deep:
        refuse_beyond_deep_budget(text)
    if deep or ("\\" in text and _ESCAPED_TIME_LITERAL.search(text, start) is not None):
        node, end = parse_iterative(text, start)
    else:
        try:
            node, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise _syntax_error(text, exc.pos, exc.msg.lower()) from None
        if _LONE_SURROGATE_ESCAPE.search(text, start, end):
            node = _fix_surrogates(node)
    if not allow_trailing:
        rest = len(text) - len(text[end:].lstrip(_JSON_SPACE))
        if rest < len(text):
            raise _syntax_error(text, rest, "after top-level value")
    return node


_SPACE: Final = re.compile(r"[ \t\n\r]*")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)
_LITERALS: Final = (("true", True), ("false", False), ("null", None))
_scanstring: Final[Callable[[str, int, bool], tuple[str, int]]] = json.decoder.scanstring  # type: ignore[attr-defined]


def parse_iterative(text: str, pos: int, *, go_strings: bool = True) -> tuple[Any, int]:
    """The same parse without recursion, as deep as Go allows (``MAX_DEPTH``).

    Also the path for bodies holding an escaped timestamp-like literal: strings are read
    one by one here, so such a literal can be marked (:class:`EscapedString`). With
    ``go_strings=False`` strings are left as JavaScript reads them (lone surrogates kept,
    nothing marked).
    """
    fix_surrogates = go_strings and _LONE_SURROGATE_ESCAPE.search(text, pos) is not None
    space = _SPACE.match  # matches everywhere: zero or more spaces
    # Each open container: [members or items, pending key (None for arrays)].
    stack: list[list[Any]] = []
    length = len(text)

    def string_at(at: int, *, is_key: bool) -> tuple[str, int]:
        try:
            value, end = _scanstring(text, at + 1, True)
        except json.JSONDecodeError as exc:
            raise _syntax_error(text, exc.pos, exc.msg.lower()) from None
        if fix_surrogates:
            value = _SURROGATE.sub("\ufffd", value)
        if (
            go_strings
            and not is_key
            and text.find("\\", at, end) != -1
            and _TIME_TEXT.fullmatch(value)
        ):
            value = EscapedString(value)
        return value, end

    def key_at(at: int) -> tuple[str, int]:
        at = space(text, at).end()  # type: ignore[union-attr]
        if at >= length or text[at] != '"':
            raise _syntax_error(text, at, "looking for beginning of object key string")
        key, at = string_at(at, is_key=True)
        at = space(text, at).end()  # type: ignore[union-attr]
        if at >= length or text[at] != ":":
            raise _syntax_error(text, at, "after object key")
        return key, at + 1

    while True:
        # Read one value at pos: a scalar, an empty container, or open a container.
        pos = space(text, pos).end()  # type: ignore[union-attr]
        char = text[pos] if pos < length else ""
        value: Any
        if char in ("{", "["):
            if len(stack) >= MAX_DEPTH:
                raise GoDecodeError("", f"invalid character {char!r} exceeded max depth")
            after = space(text, pos + 1).end()  # type: ignore[union-attr]
            closing = "}" if char == "{" else "]"
            if after < length and text[after] == closing:
                value, pos = (GoObject(()) if char == "{" else []), after + 1
            elif char == "{":
                key, pos = key_at(pos + 1)
                stack.append([[], key])
                continue
            else:
                stack.append([[], None])
                pos += 1
                continue
        elif char == '"':
            value, pos = string_at(pos, is_key=False)
        else:
            number = _NUMBER.match(text, pos)
            if number is not None and char:
                value, pos = GoNumber(number.group()), number.end()
            else:
                for word, literal in _LITERALS:
                    if text.startswith(word, pos):
                        value, pos = literal, pos + len(word)
                        break
                else:
                    raise _syntax_error(text, pos, "looking for beginning of value")
        # Hand the finished value to its container, closing containers as they end.
        while True:
            if not stack:
                return value, pos
            frame = stack[-1]
            is_object = frame[1] is not None
            frame[0].append((frame[1], value) if is_object else value)
            pos = space(text, pos).end()  # type: ignore[union-attr]
            char = text[pos] if pos < length else ""
            if char == ",":
                if is_object:
                    frame[1], pos = key_at(pos + 1)
                else:
                    pos += 1
                break
            if char == ("}" if is_object else "]"):
                stack.pop()
                value = GoObject(frame[0]) if is_object else frame[0]
                pos += 1
                continue
            raise _syntax_error(text, pos, "after value")


def rebuild_deep(
    root: Any,
    split: Callable[[Any], tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None],
    leaf: Callable[[Any], Any],
) -> Any:
    """Rebuild a nested value bottom-up without recursion (for values deeper than Python's
    recursion allows, which Go accepts up to ``MAX_DEPTH``).

    ``split(node)`` gives ``None`` for a leaf, else the node's ``(key, child)`` pairs and
    a function building the new node from the ``(key, rebuilt child)`` pairs; ``leaf``
    rebuilds a leaf.
    """
    top = split(root)
    if top is None:
        return leaf(root)
    # Each frame: [pending (key, child) pairs, finish, rebuilt pairs, key in the parent].
    stack: list[list[Any]] = [[iter(top[0]), top[1], [], None]]
    while True:
        frame = stack[-1]
        for key, child in frame[0]:
            inner = split(child)
            if inner is None:
                frame[2].append((key, leaf(child)))
            else:
                stack.append([iter(inner[0]), inner[1], [], key])
                break
        else:
            value = frame[1](frame[2])
            stack.pop()
            if not stack:
                return value
            stack[-1][2].append((frame[3], value))


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
    try:
        return _to_interface(node, on_error, field)
    except RecursionError:
        return _to_interface_deep(node, on_error, field)


def _to_interface(node: Any, on_error: Callable[[GoDecodeError], None], field: str) -> Any:
    if isinstance(node, GoObject):
        return {
            key: value if type(value) in _AS_IS else _to_interface(value, on_error, field)
            for key, value in node
        }
    if isinstance(node, list):
        return [
            value if type(value) in _AS_IS else _to_interface(value, on_error, field)
            for value in node
        ]
    return _interface_leaf(node, on_error, field)


def _interface_leaf(node: Any, on_error: Callable[[GoDecodeError], None], field: str) -> Any:
    if isinstance(node, GoNumber):
        try:
            return to_float64(node)
        except OverflowError:
            on_error(GoDecodeError(field, f"cannot unmarshal number {node.text} into float64"))
            return None
    if isinstance(node, EscapedString):
        return str(node)
    return node


def _json_children(
    node: Any,
) -> tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None:
    if isinstance(node, GoObject):
        return node, dict
    if isinstance(node, list):
        return ((None, item) for item in node), _values_list
    return None


def _values_list(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [value for _, value in pairs]


def _to_interface_deep(node: Any, on_error: Callable[[GoDecodeError], None], field: str) -> Any:
    return rebuild_deep(node, _json_children, lambda leaf: _interface_leaf(leaf, on_error, field))


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
    try:
        _encode_into(parts, value, sort_keys)
    except RecursionError:
        parts = _encode_deep(value, sort_keys)
    return "".join(parts).encode("utf-8")


_END: Final = object()
# The key of an array element in ``write_nested``'s member pairs (None could be a map key).
NO_KEY: Final = object()

# What ``write_nested`` asks of a value: for a container, (opening text, closing text,
# iterator over (key or NO_KEY, child) pairs); for anything else, None.
Members = Callable[[Any], tuple[str, str, Iterator[tuple[object, Any]]] | None]


def write_nested(
    parts: list[str],
    value: Any,
    members: Members,
    write_key: Callable[[object], str],
    write_scalar: Callable[[list[str], Any], None],
) -> None:
    """Write ``value`` into ``parts`` without recursion: the one loop behind the deep
    fallbacks of the Go encoder (``encode``) and the JS stringifier (``canonical``), which
    differ only in how a container lists its members, how a key and a scalar are written."""
    # Each open container: [its member pairs, closing text, no member written yet].
    stack: list[list[Any]] = []

    def start(item: Any) -> None:
        container = members(item)
        if container is None:
            write_scalar(parts, item)
            return
        opening, closing, pairs = container
        parts.append(opening)
        stack.append([pairs, closing, True])

    start(value)
    while stack:
        frame = stack[-1]
        member = next(frame[0], _END)
        if member is _END:
            parts.append(frame[1])
            stack.pop()
            continue
        if not frame[2]:
            parts.append(",")
        frame[2] = False
        key: object = member[0]  # type: ignore[index]
        item = member[1]  # type: ignore[index]
        if key is not NO_KEY:
            parts.append(write_key(key))
        start(item)


def _encode_deep(value: Any, sort_keys: bool) -> list[str]:
    """``encode`` without recursion, for values nested deeper than Python's stack allows."""

    def members(item: Any) -> tuple[str, str, Iterator[tuple[object, Any]]] | None:
        if isinstance(item, Mapping) and not isinstance(item, RawJSON):
            return "{", "}", iter(sorted(item.items()) if sort_keys else item.items())
        if isinstance(item, list | tuple):
            return "[", "]", ((NO_KEY, element) for element in item)
        return None

    def write_key(key: object) -> str:
        if not isinstance(key, str):
            raise TypeError(f"json: unsupported map key type {type(key).__name__}")
        return quote(key) + ":"

    parts: list[str] = []
    write_nested(
        parts, value, members, write_key, lambda out, item: _encode_into(out, item, sort_keys)
    )
    return parts

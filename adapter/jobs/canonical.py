"""The exact bytes each signer signs: the runner's V1 canonical form and the portal's.

``canonical_v1`` follows ``docs/runner-contract.md`` §2a (``CanonicalizeJobSpecV1`` @ a6be919)
step by step, from a spec already projected onto the Go structs (``adapter.jobs.jobspec``).
The portal messages (§8) are computed from the raw body with JavaScript semantics instead
(``JSON.parse`` then a key-sorted ``JSON.stringify``), because that is what the portal's
browser code signed; they only serve to recognise which signer produced a signature.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, NoReturn, cast

from adapter.jobs.gojson import (
    MAX_DEPTH,
    NO_KEY,
    SHORT_ESCAPES,
    GoDecodeError,
    GoNumber,
    GoObject,
    encode,
    escape_table,
    exceeds_max_depth,
    format_js_number,
    parse_iterative,
    rebuild_deep,
    refuse_beyond_deep_budget,
    write_nested,
)
from adapter.jobs.jobspec import decode_jobspec

# Scheme identifiers in the order a signature is tried. They are Prometheus label values.
PORTAL_C4CBB02: Final = "portal_c4cbb02"
PORTAL_04B8886: Final = "portal_04b8886"
PORTAL_21A0059: Final = "portal_21a0059"
PORTAL_5FA6ECE: Final = "portal_5fa6ece"
RUNNER_V1: Final = "runner_v1"
SCHEMES: Final = (PORTAL_C4CBB02, PORTAL_04B8886, PORTAL_21A0059, PORTAL_5FA6ECE, RUNNER_V1)
PORTAL_SCHEMES: Final = SCHEMES[:4]

# Top-level keys each portal signer removed before signing (crypto.js at that commit).
_PORTAL_REMOVED: Final[Mapping[str, tuple[str, ...]]] = {
    PORTAL_C4CBB02: ("signature", "public_key"),
    PORTAL_04B8886: ("signature", "public_key", "id"),
    PORTAL_21A0059: ("signature", "public_key", "id", "created_at"),
    PORTAL_5FA6ECE: ("signature", "public_key", "id", "created_at"),
}
_V1_REMOVED: Final = ("id", "created_at", "signature", "public_key")


# --- runner V1 -------------------------------------------------------------------------------


# Values step 2 leaves as they are (by exact type; anything else goes through the function).
_UNCHANGED: Final = frozenset({str, float, bool, type(None)})


def _through_float64(value: Any) -> Any:
    """Step 2's marshal-then-unmarshal into a generic map: every number becomes float64."""
    kind = type(value)
    if kind in _UNCHANGED:
        return value
    if kind is int:
        return float(value)
    if isinstance(value, Mapping):
        return {
            key: item if type(item) in _UNCHANGED else _through_float64(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [item if type(item) in _UNCHANGED else _through_float64(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _v1_object(obj: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Steps 2 to 4 in one pass over a copy: numbers become float64 (step 2), ``skip``
    members go (step 3), null and "" members go, objects are recursed into and dropped
    when left empty, arrays are kept whole (step 4). No member is built only to be deleted.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        kind = type(value)
        if kind is str:
            if value:
                out[key] = value
        elif kind is float or kind is bool:
            out[key] = value
        elif value is None:
            continue
        elif isinstance(value, Mapping):
            inner = _v1_object(value)
            if inner:
                out[key] = inner
        else:
            converted = _through_float64(value)
            if converted != "":
                out[key] = converted
    for key in skip:
        out.pop(key, None)
    return out


_V1_REMOVED_SET: Final = frozenset(_V1_REMOVED)


def _float64_children(
    value: Any,
) -> tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None:
    if isinstance(value, Mapping):
        return value.items(), dict
    if isinstance(value, list | tuple):
        return ((None, item) for item in value), _values
    return None


def _float64_leaf(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _values(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [item for _, item in pairs]


def _cleaned_children(
    value: Any,
) -> tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None:
    # Step 4 descends through objects only: an array is a leaf, kept whole.
    return (value.items(), _cleaned) if isinstance(value, dict) else None


def _cleaned(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    return {
        key: value
        for key, value in pairs
        if value is not None and not (type(value) is str and not value) and value != {}
    }


def _v1_object_deep(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Steps 2 to 4 as ``_v1_object``, without recursion (Go decodes 10,000 levels)."""
    generic = rebuild_deep(spec, _float64_children, _float64_leaf)
    cleaned: dict[str, Any] = rebuild_deep(generic, _cleaned_children, _same)
    for key in _V1_REMOVED:
        cleaned.pop(key, None)
    return cleaned


def _same(value: Any) -> Any:
    return value


def canonical_v1(spec: Mapping[str, Any]) -> bytes:
    """The bytes the runner's ``VerifySignature`` checks, from a decoded (projected) spec."""
    try:
        generic = _v1_object(spec, _V1_REMOVED_SET)  # steps 2, 3 and 4
    except RecursionError:
        generic = _v1_object_deep(spec)
    constraints = generic.get("constraints")
    if isinstance(constraints, dict):
        rate = constraints.get("min_success_rate")
        if isinstance(rate, float) and rate == 0:
            del constraints["min_success_rate"]
    return encode(generic, sort_keys=True)


def canonical_v1_bytes(data: bytes) -> bytes:
    """V1 canonical bytes of a bare JobSpec body; raises ``GoDecodeError`` like the runner."""
    return canonical_v1(decode_jobspec(data))


# --- portal (JavaScript) ---------------------------------------------------------------------


def _reject_js_constant(name: str) -> NoReturn:
    raise ValueError(f"JSON.parse: unexpected token {name!r}")


# Bodies nested deeper than this are parsed and stringified without recursion (as the Go
# side is, to the same 10,000 levels), so portal signatures are recognised at any depth
# the runner decodes.
JS_FAST_DEPTH: Final = 256
_JS_PARSER: Final = json.JSONDecoder(parse_int=float, parse_constant=_reject_js_constant)


def parse_js(data: bytes) -> Any:
    """``JSON.parse`` of a UTF-8 body: numbers are doubles, last duplicate key wins."""
    text = data.decode("utf-8", "replace")
    if exceeds_max_depth(text, JS_FAST_DEPTH):
        return _parse_js_deep(text)
    try:
        return _JS_PARSER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSON.parse: {exc.msg} at offset {exc.pos}") from None


def _parse_js_deep(text: str) -> Any:
    if exceeds_max_depth(text, MAX_DEPTH):
        raise ValueError("JSON.parse: nesting too deep")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        refuse_beyond_deep_budget(text)
        node, end = parse_iterative(text, start, go_strings=False)
    except GoDecodeError as exc:
        raise ValueError(f"JSON.parse: {exc}") from None
    if text[end:].strip(" \t\n\r"):
        raise ValueError(f"JSON.parse: extra data at offset {end}")
    return rebuild_deep(node, _js_children, _js_leaf)


def _js_children(
    node: Any,
) -> tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None:
    if isinstance(node, GoObject):
        return node, dict
    if isinstance(node, list):
        return ((None, item) for item in node), _values
    return None


def _js_leaf(node: Any) -> Any:
    return float(node.text) if isinstance(node, GoNumber) else node


_JS_ESCAPES: Final = SHORT_ESCAPES  # JSON.stringify has no HTML escaping
_JS_NEEDS_ESCAPE: Final = re.compile('[\x00-\x1f"\\\\\ud800-\udfff]')


def _js_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _JS_ESCAPES.get(char) or f"\\u{ord(char):04x}"


_JS_ESCAPE_TABLE: Final = escape_table(_JS_NEEDS_ESCAPE, _js_escape)


def js_quote(text: str) -> str:
    """``JSON.stringify`` of a string: no HTML escaping; lone surrogates as ``\\udxxx``."""
    if _JS_NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + text.translate(_JS_ESCAPE_TABLE) + '"'


def _utf16_order(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _sorted_utf16(keys: Iterable[str]) -> list[str]:
    """Keys in UTF-16 code unit order; for ASCII keys that is plain ``sorted``, in C."""
    ordered = sorted(keys)
    if "".join(ordered).isascii():
        return ordered
    return sorted(ordered, key=_utf16_order)


def _stringify_into(parts: list[str], value: Any) -> None:
    kind = type(value)
    if kind is str:
        parts.append(js_quote(value))
    elif kind is dict:
        # Plain keys and plain string members inline: a call per member was most of the time.
        needs_escape = _JS_NEEDS_ESCAPE.search
        separator = "{"
        for key in _sorted_utf16(value):
            item = value[key]
            if needs_escape(key) is None:
                key_text = f'{separator}"{key}":'
            else:
                key_text = f"{separator}{js_quote(key)}:"
            separator = ","
            if type(item) is str and needs_escape(item) is None:
                parts.append(f'{key_text}"{item}"')
            else:
                parts.append(key_text)
                _stringify_into(parts, item)
        parts.append("}" if separator == "," else "{}")
    elif kind is float:
        parts.append(_js_number(value))
    else:
        _stringify_other(parts, value)


def _js_number(number: float) -> str:
    # An integral double below 2**53 prints as its integer (JS prints -0 as "0" too).
    if number.is_integer() and abs(number) < _EXACT_INTEGERS:
        return str(int(number))
    return format_js_number(number) if math.isfinite(number) else "null"


_EXACT_INTEGERS: Final = 2.0**53


def _stringify_other(parts: list[str], value: Any) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(js_quote(value))
    elif isinstance(value, int | float):
        parts.append(_js_number(float(value)))
    elif isinstance(value, Mapping):
        parts.append("{")
        for index, key in enumerate(_sorted_utf16(value)):
            if index:
                parts.append(",")
            parts.append(js_quote(key))
            parts.append(":")
            _stringify_into(parts, value[key])
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _stringify_into(parts, item)
        parts.append("]")
    else:
        raise TypeError(f"cannot stringify {type(value).__name__}")


def js_stable_stringify(value: Any) -> str:
    """``json-stable-stringify``: keys sorted by UTF-16 code units at every level."""
    parts: list[str] = []
    try:
        _stringify_into(parts, value)
    except RecursionError:  # deeper than Python's stack: the same, without recursion
        return _stringify_deep(value)
    return "".join(parts)


def _stringify_deep(value: Any) -> str:
    """``js_stable_stringify`` without recursion (gojson.write_nested's loop)."""

    def members(item: Any) -> tuple[str, str, Iterator[tuple[object, Any]]] | None:
        if isinstance(item, Mapping):
            return "{", "}", ((key, item[key]) for key in _sorted_utf16(item))
        if isinstance(item, list | tuple):
            return "[", "]", ((NO_KEY, element) for element in item)
        return None

    parts: list[str] = []
    write_nested(
        parts, value, members, lambda key: js_quote(cast(str, key)) + ":", _stringify_other
    )
    return "".join(parts)


def portal_messages(spec: Mapping[str, Any]) -> dict[str, bytes]:
    """The message each portal signer generation signed, from the ``JSON.parse``d spec.

    The generations differ only in which top-level members they left out, so each member
    is stringified once and the messages are assembled from the pieces.
    """
    members = {key: f"{js_quote(key)}:{js_stable_stringify(value)}" for key, value in spec.items()}
    order = _sorted_utf16(members)
    messages: dict[str, bytes] = {}
    for scheme, removed in _PORTAL_REMOVED.items():
        kept = {key: members[key] for key in order if key not in removed}
        constraints = spec.get("constraints")
        if scheme == PORTAL_5FA6ECE and "constraints" in kept and _rate_is_zero(constraints):
            assert isinstance(constraints, Mapping)
            trimmed = {k: v for k, v in constraints.items() if k != "min_success_rate"}
            kept["constraints"] = f"{js_quote('constraints')}:{js_stable_stringify(trimmed)}"
        messages[scheme] = ("{" + ",".join(kept.values()) + "}").encode("utf-8")
    return messages


def _rate_is_zero(constraints: object) -> bool:
    # The 5fa6ece signer drops constraints.min_success_rate only when it is 0.
    if not isinstance(constraints, Mapping):
        return False
    rate = constraints.get("min_success_rate")
    return isinstance(rate, int | float) and not isinstance(rate, bool) and rate == 0

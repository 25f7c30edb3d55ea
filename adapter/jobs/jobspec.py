"""The runner's JobSpec structs, and Go's decode of a request body into them.

``decode_jobspec`` returns what the runner's struct holds after ``json.Unmarshal``, in the
shape ``json.Marshal`` would emit it: unknown keys gone, zero values for missing fields,
``omitempty`` honoured. That value is what the runner canonicalises and verifies, so it is
also what the adapter must sign and send (``marshal_go``). Structs follow
``docs/runner-contract.md`` §1 (``pkg/models/types.go`` @ 5418b9a).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from adapter.jobs.gojson import (
    GoDecodeError,
    GoNumber,
    GoObject,
    encode,
    fold_key,
    json_type,
    parse,
    to_float64,
    to_interface,
)

__all__ = [
    "CROSS_REGION_REQUEST",
    "JOB_SPEC",
    "ZERO_TIME",
    "GoDecodeError",
    "GoField",
    "GoStruct",
    "Kind",
    "decode_cross_region_request",
    "decode_jobspec",
    "is_cross_region_request",
    "marshal_go",
    "parse_rfc3339",
]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class Kind(Enum):
    """The Go field types that occur in the runner's structs."""

    STRING = "string"
    INT = "int"
    DURATION = "int64 (time.Duration)"
    FLOAT = "float64"
    BOOL = "bool"
    TIME = "time.Time"
    ANY_MAP = "map[string]interface {}"
    STRING_MAP = "map[string]string"
    STRING_LIST = "[]string"
    STRUCT = "struct"
    STRUCT_PTR = "*struct"
    STRUCT_LIST = "[]struct"

    # Members are singletons compared by identity: hash them by identity too, in C. Enum's
    # own __hash__ is Python code, run for every field of every decode.
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class GoField:
    """One struct field: its JSON name, Go kind, ``omitempty``, and nested struct if any."""

    name: str
    kind: Kind
    omitempty: bool = False
    struct: GoStruct | None = None

    @property
    def go_type(self) -> str:
        """The Go type as error messages name it."""
        if self.struct is None:
            return self.kind.value
        prefix = "[]" if self.kind is Kind.STRUCT_LIST else ""
        return f"{prefix}{self.struct.go_name}"


@dataclass(frozen=True, slots=True)
class GoStruct:
    """A Go struct: fields in declaration order, looked up as ``encoding/json`` does."""

    go_name: str
    fields: tuple[GoField, ...]
    _exact: Mapping[str, GoField] = field(init=False, repr=False, compare=False)
    _folded: Mapping[str, GoField] = field(init=False, repr=False, compare=False)
    # The struct's zero value, built once: the scalar zeros, and the nested structs whose
    # zero values are fresh dicts each time.
    _zero: Mapping[str, Any] = field(init=False, repr=False, compare=False)
    _nested: tuple[tuple[str, GoStruct], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_exact", {f.name: f for f in self.fields})
        object.__setattr__(self, "_folded", {fold_key(f.name): f for f in self.fields})
        object.__setattr__(self, "_zero", {f.name: _ZERO.get(f.kind) for f in self.fields})
        nested = tuple((f.name, f.struct) for f in self.fields if f.kind is Kind.STRUCT)
        object.__setattr__(self, "_nested", nested)

    def lookup(self, key: str) -> GoField | None:
        """The field a JSON key fills: exact name first, else case-insensitive (Go 1.21+)."""
        found = self._exact.get(key)
        return found if found is not None else self._folded.get(fold_key(key))

    def zero_value(self) -> dict[str, Any]:
        """A fresh zero value of the struct: what Go's decode starts from."""
        value = dict(self._zero)
        for name, struct in self._nested:
            value[name] = struct.zero_value()
        return value


# Zero values of the scalar kinds; every other kind's zero is nil (None), a struct's is
# built by GoStruct.zero_value.
_ZERO: Final[Mapping[Kind, Any]] = {
    Kind.STRING: "",
    Kind.INT: 0,
    Kind.DURATION: 0,
    Kind.FLOAT: 0.0,
    Kind.BOOL: False,
}


def _struct(go_name: str, *fields: GoField) -> GoStruct:
    return GoStruct(f"models.{go_name}", fields)


_S, _I, _F = Kind.STRING, Kind.INT, Kind.FLOAT

RESOURCE_SPEC: Final = _struct(
    "ResourceSpec", GoField("cpu", _S), GoField("memory", _S), GoField("gpu", _S, omitempty=True)
)
CONTAINER_SPEC: Final = _struct(
    "ContainerSpec",
    GoField("image", _S),
    GoField("tag", _S),
    GoField("command", Kind.STRING_LIST, omitempty=True),
    GoField("environment", Kind.STRING_MAP, omitempty=True),
    GoField("resources", Kind.STRUCT, struct=RESOURCE_SPEC),
)
INPUT_SPEC: Final = _struct(
    "InputSpec", GoField("type", _S), GoField("data", Kind.ANY_MAP), GoField("hash", _S)
)
SCORING_SPEC: Final = _struct(
    "ScoringSpec", GoField("method", _S), GoField("parameters", Kind.ANY_MAP)
)
BENCHMARK_SPEC: Final = _struct(
    "BenchmarkSpec",
    GoField("name", _S),
    GoField("version", _S, omitempty=True),
    GoField("description", _S),
    GoField("container", Kind.STRUCT, struct=CONTAINER_SPEC),
    GoField("input", Kind.STRUCT, struct=INPUT_SPEC),
    GoField("scoring", Kind.STRUCT, struct=SCORING_SPEC),
    GoField("metadata", Kind.ANY_MAP),
)
PROVIDER_FILTER: Final = _struct(
    "ProviderFilter",
    GoField("region", _S),
    GoField("min_score", _F, omitempty=True),
    GoField("max_price", _F, omitempty=True),
    GoField("whitelist", Kind.STRING_LIST, omitempty=True),
    GoField("blacklist", Kind.STRING_LIST, omitempty=True),
)
EXECUTION_CONSTRAINTS: Final = _struct(
    "ExecutionConstraints",
    GoField("regions", Kind.STRING_LIST),
    GoField("min_regions", _I),
    GoField("min_success_rate", _F),
    GoField("timeout", Kind.DURATION),
    GoField("provider_timeout", Kind.DURATION),
    GoField("max_cost", _F, omitempty=True),
    GoField("providers", Kind.STRUCT_LIST, omitempty=True, struct=PROVIDER_FILTER),
)
MODEL_SPEC: Final = _struct(
    "ModelSpec",
    GoField("id", _S),
    GoField("name", _S),
    GoField("provider", _S),
    GoField("container_image", _S),
    GoField("regions", Kind.STRING_LIST),
)
WALLET_AUTH: Final = _struct(
    "WalletAuth",
    GoField("address", _S),
    GoField("signature", _S),
    GoField("message", _S),
    GoField("chainId", _I),
    GoField("nonce", _S),
    GoField("expiresAt", _S),
)
JOB_SPEC: Final = _struct(
    "JobSpec",
    GoField("id", _S, omitempty=True),
    GoField("jobspec_id", _S, omitempty=True),
    GoField("version", _S),
    GoField("benchmark", Kind.STRUCT, struct=BENCHMARK_SPEC),
    GoField("constraints", Kind.STRUCT, struct=EXECUTION_CONSTRAINTS),
    GoField("metadata", Kind.ANY_MAP),
    GoField("created_at", Kind.TIME),
    GoField("questions", Kind.STRING_LIST, omitempty=True),
    GoField("models", Kind.STRUCT_LIST, omitempty=True, struct=MODEL_SPEC),
    GoField("runs", _I, omitempty=True),
    GoField("wallet_auth", Kind.STRUCT_PTR, omitempty=True, struct=WALLET_AUTH),
    GoField("signature", _S),
    GoField("public_key", _S),
)
# internal/handlers/cross_region_handlers.go @ f83824d; jobspec and target_regions are
# `binding:"required"` (non-nil after decode; an empty array passes).
CROSS_REGION_REQUEST: Final = GoStruct(
    "handlers.CrossRegionJobRequest",
    (
        GoField("jobspec", Kind.STRUCT_PTR, struct=JOB_SPEC),
        GoField("target_regions", Kind.STRING_LIST),
        GoField("min_regions", _I),
        GoField("min_success_rate", _F),
        GoField("enable_analysis", Kind.BOOL),
    ),
)
_REQUIRED_IN_REQUEST: Final = ("jobspec", "target_regions")


# --- time.Time -------------------------------------------------------------------------------

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(month: int, year: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def parse_rfc3339(text: str) -> str:
    """Validate as Go's ``Time.UnmarshalJSON`` does, and return Go's re-marshalled form.

    Go re-marshals in RFC 3339 with nanoseconds: the fraction keeps at most 9 digits
    (truncated) minus trailing zeros, and a zero offset (``+00:00``/``-00:00``) becomes
    ``Z``. Other offsets and the wall clock are kept as written. Raises ``ValueError``.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f'parsing time "{text}" as RFC 3339: bad layout')
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12 or not 1 <= day <= _days_in(month, year):
        raise ValueError(f'parsing time "{text}": day or month out of range')
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f'parsing time "{text}": time of day out of range')
    zone = match.group(8)
    if zone != "Z":
        if int(match.group(9)) > 23 or int(match.group(10)) > 59:
            raise ValueError(f'parsing time "{text}": time zone offset out of range')
        if zone[1:] == "00:00":
            zone = "Z"
    fraction = (match.group(7) or "")[:9].rstrip("0")
    return text[:19] + (f".{fraction}" if fraction else "") + zone


# --- decoding into the structs ---------------------------------------------------------------


class _Decode:
    """One Go ``Unmarshal``: type errors are saved (first wins) and decoding goes on."""

    def __init__(self) -> None:
        self.first_error: GoDecodeError | None = None

    def save(self, error: GoDecodeError) -> None:
        if self.first_error is None:
            self.first_error = error

    def mismatch(self, node: Any, go_type: str, path: str, *, with_text: bool = False) -> None:
        what = json_type(node)
        if with_text and isinstance(node, GoNumber):
            what = f"number {node.text}"
        self.save(GoDecodeError(path, f"cannot unmarshal {what} into {go_type}"))

    def into_struct(
        self, node: GoObject, struct: GoStruct, current: dict[str, Any], path: str
    ) -> None:
        exact = struct._exact  # lookup() inlined for the usual exact-name match
        for key, value in node:
            fld = exact.get(key)
            if fld is None:
                fld = struct.lookup(key)
                if fld is None:
                    continue
            name = fld.name
            kind = fld.kind
            if kind is Kind.STRING and type(value) is str:  # most fields: no handler needed
                current[name] = value
                continue
            if value is None:
                # null is a no-op for strings, numbers, bools, structs and time.Time; it
                # sets maps, slices and pointers to nil.
                if kind not in _NULL_KEEPS:
                    current[name] = None
                continue
            sub = f"{path}.{name}" if path else name
            current[name] = _HANDLERS[kind](self, value, fld, current[name], sub)

    def string(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if isinstance(node, str):
            return node
        self.mismatch(node, "string", path)
        return current

    def integer(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if isinstance(node, GoNumber) and _is_integer_text(node.text):
            number = int(node.text)
            if _INT64_MIN <= number <= _INT64_MAX:
                return number
        self.mismatch(node, fld.kind.value, path, with_text=True)
        return current

    def floating(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if isinstance(node, GoNumber):
            try:
                return to_float64(node)
            except OverflowError:
                pass
        self.mismatch(node, "float64", path, with_text=True)
        return current

    def boolean(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if isinstance(node, bool):
            return node
        self.mismatch(node, "bool", path)
        return current

    def time(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        # Time.UnmarshalJSON's errors are not saved: they stop the decode at once.
        if not isinstance(node, str):
            raise GoDecodeError(path, "Time.UnmarshalJSON: input is not a JSON string")
        try:
            return parse_rfc3339(node)
        except ValueError as exc:
            raise GoDecodeError(path, str(exc)) from None

    def any_map(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if not isinstance(node, GoObject):
            self.mismatch(node, fld.kind.value, path)
            return current
        result = dict(current) if current is not None else {}
        for key, value in node:
            result[key] = to_interface(value, self.save, path)
        return result

    def string_map(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if not isinstance(node, GoObject):
            self.mismatch(node, fld.kind.value, path)
            return current
        result = dict(current) if current is not None else {}
        for key, value in node:
            if value is None or isinstance(value, str):
                result[key] = value or ""  # a null element is the zero string
            else:
                self.mismatch(value, "string", path)
                result[key] = ""
        return result

    def string_list(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if not isinstance(node, list):
            self.mismatch(node, fld.kind.value, path)
            return current
        old = current or []
        result: list[str] = []
        for index, item in enumerate(node):
            previous = old[index] if index < len(old) else ""
            if item is None:
                result.append(previous)
            elif isinstance(item, str):
                result.append(item)
            else:
                self.mismatch(item, "string", path)
                result.append(previous)
        return result

    def struct(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        assert fld.struct is not None
        if not isinstance(node, GoObject):
            self.mismatch(node, fld.struct.go_name, path)
            return current
        self.into_struct(node, fld.struct, current, path)
        return current

    def struct_ptr(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        assert fld.struct is not None
        target = current if current is not None else fld.struct.zero_value()
        if not isinstance(node, GoObject):
            self.mismatch(node, fld.struct.go_name, path)
            return target
        self.into_struct(node, fld.struct, target, path)
        return target

    def struct_list(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        assert fld.struct is not None
        if not isinstance(node, list):
            self.mismatch(node, fld.go_type, path)
            return current
        # Go decodes element i into the existing element while i < len: objects merge.
        old = current or []
        result: list[dict[str, Any]] = []
        for index, item in enumerate(node):
            element = old[index] if index < len(old) else fld.struct.zero_value()
            if isinstance(item, GoObject):
                self.into_struct(item, fld.struct, element, path)
            elif item is not None:
                self.mismatch(item, fld.struct.go_name, path)
            result.append(element)
        return result


_Handler = Callable[[_Decode, Any, GoField, Any, str], Any]
_HANDLERS: Final[dict[Kind, _Handler]] = {
    Kind.STRING: _Decode.string,
    Kind.INT: _Decode.integer,
    Kind.DURATION: _Decode.integer,
    Kind.FLOAT: _Decode.floating,
    Kind.BOOL: _Decode.boolean,
    Kind.TIME: _Decode.time,
    Kind.ANY_MAP: _Decode.any_map,
    Kind.STRING_MAP: _Decode.string_map,
    Kind.STRING_LIST: _Decode.string_list,
    Kind.STRUCT: _Decode.struct,
    Kind.STRUCT_PTR: _Decode.struct_ptr,
    Kind.STRUCT_LIST: _Decode.struct_list,
}
_NULL_KEEPS: Final = frozenset(
    {Kind.STRING, Kind.INT, Kind.DURATION, Kind.FLOAT, Kind.BOOL, Kind.STRUCT, Kind.TIME}
)
_INTEGER_TEXT: Final = re.compile(r"-?\d+", re.ASCII)


def _is_integer_text(text: str) -> bool:
    return _INTEGER_TEXT.fullmatch(text) is not None


# --- emitting as json.Marshal would ----------------------------------------------------------


def _sorted_map(value: Any) -> Any:
    """Free values as Go marshals them: map keys in byte order, recursively."""
    if isinstance(value, dict):
        return {
            key: _sorted_map(item) if isinstance(item, dict | list) else item
            for key in sorted(value)
            for item in (value[key],)
        }
    if isinstance(value, list):
        return [_sorted_map(item) if isinstance(item, dict | list) else item for item in value]
    return value


def _is_empty(fld: GoField, value: Any) -> bool:
    kind = fld.kind
    if kind in (Kind.STRUCT, Kind.TIME):
        return False  # omitempty never omits a struct
    if kind in (Kind.STRING_LIST, Kind.STRUCT_LIST, Kind.ANY_MAP, Kind.STRING_MAP):
        return not value
    if kind is Kind.STRUCT_PTR:
        return value is None
    return not value  # "", 0, 0.0 (and -0.0), False


def _emit_value(fld: GoField, value: Any) -> Any:
    kind = fld.kind
    if kind is Kind.TIME:
        return ZERO_TIME if value is None else value
    if kind in (Kind.STRUCT, Kind.STRUCT_PTR):
        assert fld.struct is not None
        return None if value is None else _emit_struct(fld.struct, value)
    if kind is Kind.STRUCT_LIST:
        assert fld.struct is not None
        struct = fld.struct
        return None if value is None else [_emit_struct(struct, item) for item in value]
    if kind in (Kind.ANY_MAP, Kind.STRING_MAP):
        return _sorted_map(value)
    if kind is Kind.STRING_LIST:
        return None if value is None else list(value)
    return value


def _emit_struct(struct: GoStruct, current: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld in struct.fields:
        name = fld.name
        value = current[name]
        if fld.kind in _EMITTED_AS_IS:  # scalars: omitempty omits exactly the falsy ones
            if value or not fld.omitempty:
                out[name] = value
        elif not (fld.omitempty and _is_empty(fld, value)):
            out[name] = _emit_value(fld, value)
    return out


# Kinds whose decoded value is already what json.Marshal emits (see _emit_value).
_EMITTED_AS_IS: Final = frozenset({Kind.STRING, Kind.INT, Kind.DURATION, Kind.FLOAT, Kind.BOOL})


def _decode_top(node: Any, struct: GoStruct) -> tuple[_Decode, dict[str, Any]]:
    decode = _Decode()
    current = struct.zero_value()
    if isinstance(node, GoObject):
        decode.into_struct(node, struct, current, "")
    elif node is not None:
        kind = json_type(node)
        raise GoDecodeError("", f"cannot unmarshal {kind} into Go value of type {struct.go_name}")
    if decode.first_error is not None:
        raise decode.first_error
    return decode, current


def decode_jobspec(data: bytes) -> dict[str, Any]:
    """Decode a bare JobSpec body as ``json.Unmarshal`` into ``models.JobSpec`` does.

    Returns the struct as ``json.Marshal`` emits it (struct fields in declaration order,
    map keys sorted). Int fields hold exact Python ints, float64 fields and every number
    inside free maps hold floats. Raises :class:`GoDecodeError` where Go's decode fails.
    """
    _, current = _decode_top(parse(data), JOB_SPEC)
    return _emit_struct(JOB_SPEC, current)


def is_cross_region_request(data: bytes) -> bool:
    """True when ``data`` is a JSON object with a member the runner's decoder binds to
    ``CrossRegionRequest.jobspec`` (Go matches member names case-insensitively): the body
    wraps a spec in a cross-region request rather than being a bare JobSpec."""
    try:
        node = parse(data, allow_trailing=True)
    except GoDecodeError:
        return False
    return isinstance(node, GoObject) and any(fold_key(key) == "JOBSPEC" for key, _ in node)


def decode_cross_region_request(data: bytes) -> dict[str, Any]:
    """Decode a ``POST /api/v1/jobs/cross-region`` body as gin's ``ShouldBindJSON`` does.

    gin uses ``json.Decoder`` (bytes after the first value are ignored), then the
    ``binding:"required"`` checks: ``jobspec`` and ``target_regions`` must be present and
    non-null (``job_spec`` does not bind; an empty ``target_regions`` array passes).
    """
    _, current = _decode_top(parse(data, allow_trailing=True), CROSS_REGION_REQUEST)
    for name in _REQUIRED_IN_REQUEST:
        if current[name] is None:
            raise GoDecodeError(name, "required field is missing or null (binding:required)")
    return _emit_struct(CROSS_REGION_REQUEST, current)


def marshal_go(value: Any) -> bytes:
    """Go ``json.Marshal`` of a projected value: the bytes the adapter sends on the wire."""
    return encode(value)

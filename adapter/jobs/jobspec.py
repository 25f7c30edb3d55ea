"""The runner's JobSpec structs, and Go's decode of a request body into them.

``decode_jobspec`` returns what the runner's struct holds after ``json.Unmarshal``, in the
shape ``json.Marshal`` would emit it: unknown keys gone, zero values for missing fields,
``omitempty`` honoured. That value is what the runner canonicalises and verifies, so it is
also what the adapter must sign and send (``marshal_go``). Structs follow
``docs/runner-contract.md`` §1 (``pkg/models/types.go`` @ 5418b9a).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from adapter.jobs.gojson import (
    EscapedString,
    GoDecodeError,
    GoMarshalError,
    GoNumber,
    GoObject,
    encode,
    fold_key,
    json_type,
    parse,
    rebuild_deep,
    to_float64,
    to_interface,
)

__all__ = [
    "CROSS_REGION_REQUEST",
    "JOB_SPEC",
    "ZERO_TIME",
    "GoDecodeError",
    "GoField",
    "GoMarshalError",
    "GoStruct",
    "Kind",
    "TimeMarshalError",
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

_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_RFC3339_LAYOUT: Final = "2006-01-02T15:04:05Z07:00"


class TimeMarshalError(ValueError):
    """A ``time.Time`` that decoded but that ``Time.MarshalJSON`` refuses to encode."""


def _days_in(month: int, year: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


# time.Parse(time.RFC3339, ...) as Go 1.24 runs it: the hour takes one digit when no second
# one follows, a fraction follows "." or "," with any number of digits, and the offset is
# "Z" or a sign, two digits, ":" and two digits; nothing may follow.
_GO_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339(text: str) -> str:
    """Parse as Go's ``Time.UnmarshalJSON`` does and return what ``Time.MarshalJSON`` writes.

    Go 1.24 parses the raw string with ``time.Parse(time.RFC3339, ...)`` (its strict
    RFC 3339 checks are disabled), which is lenient (docs/runner-contract.md §1): the hour
    may have one digit, the fraction may follow a ``,``, take any number of digits (9 are
    kept), and the offset may be up to ``+24:60``. The result is re-marshalled as RFC 3339
    with nanoseconds: two-digit hour, ``.`` and at most 9 fraction digits without trailing
    zeros, offset normalised (``+00:60`` is ``+01:00``, a zero offset is ``Z``).
    Raises ``ValueError`` where Go's parse fails, and :class:`TimeMarshalError` where the
    parse succeeds but ``MarshalJSON`` fails (an offset of 24 hours or more).
    """
    match = _GO_RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f'parsing time "{text}" as "{_RFC3339_LAYOUT}": cannot parse')
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12:
        raise ValueError(f'parsing time "{text}": month out of range')
    if hour >= 24 or minute >= 60 or second >= 60:
        raise ValueError(f'parsing time "{text}": hour, minute or second out of range')
    offset_minutes = 0
    sign = match.group(8)
    if sign is not None:
        zone_hours, zone_minutes = int(match.group(9)), int(match.group(10))
        if zone_hours > 24 or zone_minutes > 60:  # Go allows 24 and 60 themselves
            raise ValueError(f'parsing time "{text}": time zone offset out of range')
        offset_minutes = (zone_hours * 60 + zone_minutes) * (-1 if sign == "-" else 1)
    if day < 1 or day > _days_in(month, year):
        raise ValueError(f'parsing time "{text}": day out of range')
    fraction = (match.group(7) or "")[:9].rstrip("0")
    stamp = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if fraction:
        stamp += "." + fraction
    if offset_minutes == 0:
        return stamp + "Z"
    zone_hours, zone_minutes = divmod(abs(offset_minutes), 60)
    if zone_hours >= 24:
        raise TimeMarshalError("Time.MarshalJSON: timezone hour outside of range [0,23]")
    return f"{stamp}{'-' if offset_minutes < 0 else '+'}{zone_hours:02d}:{zone_minutes:02d}"


# --- decoding into the structs ---------------------------------------------------------------


class _Decode:
    """One Go ``Unmarshal``: type errors are saved (first wins) and decoding goes on."""

    def __init__(self) -> None:
        self.first_error: GoDecodeError | None = None
        # time.Time fields that decoded but cannot be marshalled, by path (a later value
        # for the same field replaces the entry; null leaves it, as it leaves the field).
        self.unmarshallable: dict[str, str] = {}

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
            return str(node)  # an EscapedString is an ordinary string here
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
        # Time.UnmarshalJSON's errors are not saved: they stop the decode at once. It parses
        # the raw bytes between the quotes, so a literal with escapes never parses.
        if not isinstance(node, str):
            raise GoDecodeError(path, "Time.UnmarshalJSON: input is not a JSON string")
        if isinstance(node, EscapedString):
            raise GoDecodeError(
                path, f"parsing time {node!r}: escapes are not unescaped by Time.UnmarshalJSON"
            )
        try:
            value = parse_rfc3339(node)
        except TimeMarshalError as exc:
            self.unmarshallable[path] = str(exc)
            return node
        except ValueError as exc:
            raise GoDecodeError(path, str(exc)) from None
        self.unmarshallable.pop(path, None)
        return value

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
                result[key] = str(value or "")  # a null element is the zero string
            else:
                self.mismatch(value, "string", path)
                result[key] = ""
        return result

    def string_list(self, node: Any, fld: GoField, current: Any, path: str) -> Any:
        if not isinstance(node, list):
            self.mismatch(node, fld.kind.value, path)
            return current
        if current is None and all(type(item) is str for item in node):
            return node  # the usual case: a first, plain array of strings
        backing = _backing_array(current, node, "")
        for index, item in enumerate(node):
            if isinstance(item, str):
                backing[index] = str(item)
            elif item is not None:  # null leaves the element as it was
                self.mismatch(item, "string", path)
        return _Slice.of(backing, len(node))

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
        struct = fld.struct
        if not isinstance(node, list):
            self.mismatch(node, fld.go_type, path)
            return current
        # Go decodes element i into the element already there (objects merge, null keeps
        # it), including one left in the backing array's spare capacity.
        backing = _backing_array(current, node, None)
        for index, item in enumerate(node):
            if backing[index] is None:
                backing[index] = struct.zero_value()
            if isinstance(item, GoObject):
                self.into_struct(item, struct, backing[index], path)
            elif item is not None:
                self.mismatch(item, struct.go_name, path)
        return _Slice.of(backing, len(node))


class _Slice(list[Any]):
    """A Go slice after a decode into an existing one: the elements up to its length, and
    ``spare``, what its backing array still holds beyond them.

    Go's decoder reuses the old slice for a repeated key: it truncates it to the new
    array's length but keeps the backing array, and a later, longer array shows the old
    elements again where its own are null (encoding/json ``array``; docs/runner-contract.md
    §1). A slice Go allocates afresh (first decode, or an empty array) has no spare.
    """

    __slots__ = ("spare",)

    spare: list[Any]

    @classmethod
    def of(cls, backing: list[Any], length: int) -> list[Any]:
        if length == len(backing):
            return backing
        visible = cls(backing[:length])
        visible.spare = backing[length:]
        return visible


def _backing_array(current: Any, node: list[Any], zero: Any) -> list[Any]:
    """The backing array Go decodes ``node``'s elements into, at least ``len(node)`` long.

    An empty array makes Go allocate a new empty slice, so nothing old survives it.
    Growing copies every element the old backing array holds; new slots are zero.
    """
    if not node or current is None:
        backing: list[Any] = []
    else:
        backing = [*current, *getattr(current, "spare", ())]
    if len(backing) < len(node):
        backing.extend([zero] * (len(node) - len(backing)))
    return backing


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
    try:
        return _sorted_map_fast(value)
    except RecursionError:  # deeper than Python's stack; Go allows MAX_DEPTH levels
        return rebuild_deep(value, _sorted_children, _same)


def _sorted_map_fast(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _sorted_map_fast(item) if isinstance(item, dict | list) else item
            for key in sorted(value)
            for item in (value[key],)
        }
    if isinstance(value, list):
        return [_sorted_map_fast(item) if isinstance(item, dict | list) else item for item in value]
    return value


def _sorted_children(
    value: Any,
) -> tuple[Iterable[tuple[Any, Any]], Callable[[list[Any]], Any]] | None:
    if isinstance(value, dict):
        return ((key, value[key]) for key in sorted(value)), dict
    if isinstance(value, list):
        return ((None, item) for item in value), _values
    return None


def _values(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [item for _, item in pairs]


def _same(value: Any) -> Any:
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
    for path, reason in decode.unmarshallable.items():
        # The decode succeeded; json.Marshal, and so the runner's canonicalisation, fails.
        raise GoMarshalError(path, reason)
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

"""The bytes the runner verifies, computed a second, deliberately plain way.

The adapter signs what ``adapter.jobs.canonical`` computes. If the reference runner
verified with that same code, a regression there would sign and verify the same wrong
bytes and every end-to-end test would still pass. This module is written again from the
runner's contract (docs/runner-contract.md §1 the JobSpec structs and Go's decode, §2a the
V1 steps, Go's escaping and float layout, §2b the raw-body check) and imports nothing from
``adapter``: plain recursive code, a small JSON reader of its own, no caches, no fast
paths. Tests hold it to the same vector files as the adapter.

Its one limit is depth: being recursive, it reads at most ``PLAIN_MAX_DEPTH`` levels
(Go reads 10,000) and raises :class:`TooDeep` beyond; the reference runner refuses to
verify such a spec rather than trusting the adapter's code for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

PLAIN_MAX_DEPTH: Final = 400
ZERO_TIME: Final = "0001-01-01T00:00:00Z"


class RunnerDecodeError(ValueError):
    """Go's decode (or gin's binding) fails; ``field`` is the path it names ("" for syntax)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class RunnerCanonicalError(ValueError):
    """Decoding worked but ``json.Marshal`` of the struct fails, so canonicalisation does."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


class TooDeep(ValueError):
    """Nested deeper than this plain implementation reads (not a runner error)."""


# --- reading JSON: values with the raw text Go looks at ----------------------------------


@dataclass(frozen=True)
class Num:
    """A JSON number as written."""

    text: str


@dataclass(frozen=True)
class Str:
    """A JSON string: its value, and the raw text between the quotes (time.Time reads that)."""

    value: str
    raw: str


@dataclass(frozen=True)
class Obj:
    """A JSON object: its members in order, repeated keys included."""

    members: list[tuple[str, Any]]


_NUMBER: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_ESCAPES["t"] = "\t"


class _Reader:
    """A recursive-descent JSON reader that fails where Go's scanner fails."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> RunnerDecodeError:
        return RunnerDecodeError("", f"invalid JSON at offset {self.pos}: {what}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r":
            self.pos += 1

    def value(self, depth: int) -> Any:
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of JSON input")
        char = self.text[self.pos]
        if char in "{[":
            if depth + 1 > 10_000:
                raise RunnerDecodeError("", "exceeded max depth")
            if depth + 1 > PLAIN_MAX_DEPTH:
                raise TooDeep(f"more than {PLAIN_MAX_DEPTH} levels")
            return self.object(depth + 1) if char == "{" else self.array(depth + 1)
        if char == '"':
            return self.string()
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return literal
        found = _NUMBER.match(self.text, self.pos)
        if found is None:
            raise self.fail(f"unexpected {char!r}")
        self.pos = found.end()
        return Num(found.group())

    def object(self, depth: int) -> Obj:
        self.pos += 1
        members: list[tuple[str, Any]] = []
        self.skip_space()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return Obj(members)
        while True:
            self.skip_space()
            if not self.text.startswith('"', self.pos):
                raise self.fail("object key expected")
            key = self.string().value
            self.skip_space()
            if not self.text.startswith(":", self.pos):
                raise self.fail("':' expected")
            self.pos += 1
            members.append((key, self.value(depth)))
            self.skip_space()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("}", self.pos):
                self.pos += 1
                return Obj(members)
            else:
                raise self.fail("',' or '}' expected")

    def array(self, depth: int) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        self.skip_space()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return items
        while True:
            items.append(self.value(depth))
            self.skip_space()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("]", self.pos):
                self.pos += 1
                return items
            else:
                raise self.fail("',' or ']' expected")

    def string(self) -> Str:
        start = self.pos + 1
        out: list[str] = []
        i = start
        text = self.text
        while True:
            if i >= len(text):
                raise self.fail("unterminated string")
            char = text[i]
            if char == '"':
                break
            if char < " ":
                raise self.fail("control character in string")
            if char != "\\":
                out.append(char)
                i += 1
                continue
            code = text[i + 1 : i + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
                continue
            if code != "u":
                raise self.fail("invalid escape")
            unit = self.hex4(i + 2)
            i += 6
            if 0xD800 <= unit < 0xDC00 and text.startswith("\\u", i):
                low = self.hex4(i + 2)
                if 0xDC00 <= low < 0xE000:
                    out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
                    i += 6
                    continue
            # Go's unquote turns a lone surrogate into U+FFFD.
            out.append("\ufffd" if 0xD800 <= unit < 0xE000 else chr(unit))
        self.pos = i + 1
        return Str("".join(out), text[start:i])

    def hex4(self, at: int) -> int:
        digits = self.text[at : at + 4]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail("invalid \\u escape")
        return int(digits, 16)


def _read(body: bytes, *, trailing_allowed: bool) -> Any:
    # Each byte that is not valid UTF-8 reads as U+FFFD, as Go's decoder sees it.
    text = body.decode("utf-8", "surrogateescape")
    text = "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in text)
    reader = _Reader(text)
    value = reader.value(0)
    reader.skip_space()
    if not trailing_allowed and reader.pos != len(text):
        raise reader.fail("data after the top-level value")
    return value


# --- the runner's structs (docs/runner-contract.md §1) ------------------------------------

# Each struct is a tuple of fields: (JSON name, kind, omitempty, nested struct or None).
RESOURCES: Final = (("cpu", "string", False, None), ("memory", "string", False, None))
RESOURCE_SPEC: Final = (*RESOURCES, ("gpu", "string", True, None))
CONTAINER_SPEC: Final = (
    ("image", "string", False, None),
    ("tag", "string", False, None),
    ("command", "[]string", True, None),
    ("environment", "map[string]string", True, None),
    ("resources", "struct", False, RESOURCE_SPEC),
)
INPUT_SPEC: Final = (
    ("type", "string", False, None),
    ("data", "map", False, None),
    ("hash", "string", False, None),
)
SCORING_SPEC: Final = (("method", "string", False, None), ("parameters", "map", False, None))
BENCHMARK_SPEC: Final = (
    ("name", "string", False, None),
    ("version", "string", True, None),
    ("description", "string", False, None),
    ("container", "struct", False, CONTAINER_SPEC),
    ("input", "struct", False, INPUT_SPEC),
    ("scoring", "struct", False, SCORING_SPEC),
    ("metadata", "map", False, None),
)
PROVIDER_FILTER: Final = (
    ("region", "string", False, None),
    ("min_score", "float64", True, None),
    ("max_price", "float64", True, None),
    ("whitelist", "[]string", True, None),
    ("blacklist", "[]string", True, None),
)
CONSTRAINTS: Final = (
    ("regions", "[]string", False, None),
    ("min_regions", "int", False, None),
    ("min_success_rate", "float64", False, None),
    ("timeout", "int", False, None),
    ("provider_timeout", "int", False, None),
    ("max_cost", "float64", True, None),
    ("providers", "[]struct", True, PROVIDER_FILTER),
)
MODEL_SPEC: Final = (
    ("id", "string", False, None),
    ("name", "string", False, None),
    ("provider", "string", False, None),
    ("container_image", "string", False, None),
    ("regions", "[]string", False, None),
)
WALLET_AUTH: Final = (
    ("address", "string", False, None),
    ("signature", "string", False, None),
    ("message", "string", False, None),
    ("chainId", "int", False, None),
    ("nonce", "string", False, None),
    ("expiresAt", "string", False, None),
)
JOB_SPEC: Final = (
    ("id", "string", True, None),
    ("jobspec_id", "string", True, None),
    ("version", "string", False, None),
    ("benchmark", "struct", False, BENCHMARK_SPEC),
    ("constraints", "struct", False, CONSTRAINTS),
    ("metadata", "map", False, None),
    ("created_at", "time", False, None),
    ("questions", "[]string", True, None),
    ("models", "[]struct", True, MODEL_SPEC),
    ("runs", "int", True, None),
    ("wallet_auth", "*struct", True, WALLET_AUTH),
    ("signature", "string", False, None),
    ("public_key", "string", False, None),
)
CROSS_REGION_REQUEST: Final = (
    ("jobspec", "*struct", False, JOB_SPEC),
    ("target_regions", "[]string", False, None),
    ("min_regions", "int", False, None),
    ("min_success_rate", "float64", False, None),
    ("enable_analysis", "bool", False, None),
)


@dataclass
class Slice:
    """A Go slice: its length and its whole backing array (capacity beyond the length
    keeps what earlier decodes wrote, which a later, longer array shows again)."""

    backing: list[Any]
    length: int


@dataclass
class BadTime:
    """A created_at that decoded but that Time.MarshalJSON refuses."""

    reason: str


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(key: str) -> str:
    # Go matches a key to a field name ignoring ASCII case; the long s and the Kelvin sign
    # fold to s and k too, and no other non-ASCII letter does.
    return key.replace("\u017f", "s").replace("\u212a", "k").translate(_ASCII_LOWER)


def _zero(kind: str, struct: tuple[Any, ...] | None) -> Any:
    if kind == "string":
        return ""
    if kind in ("int", "float64"):
        return 0 if kind == "int" else 0.0
    if kind == "bool":
        return False
    if kind == "struct":
        assert struct is not None
        return {name: _zero(k, s) for name, k, _, s in struct}
    return None  # time (zero time), maps, slices, pointers


class _Decoder:
    """One ``json.Unmarshal``: type errors are kept (the first is reported), time errors
    stop at once."""

    def __init__(self) -> None:
        self.errors: list[RunnerDecodeError] = []

    def mismatch(self, path: str, what: str) -> None:
        self.errors.append(RunnerDecodeError(path, f"cannot unmarshal {what}"))

    def into_struct(
        self, node: Obj, struct: tuple[Any, ...], value: dict[str, Any], path: str
    ) -> None:
        for key, item in node.members:
            field = next((f for f in struct if f[0] == key), None)
            if field is None:
                field = next((f for f in struct if _fold(f[0]) == _fold(key)), None)
            if field is None:
                continue  # unknown keys are dropped
            name, kind, _, nested = field
            where = f"{path}.{name}" if path else name
            value[name] = self.field(item, kind, nested, value[name], where)

    def field(self, node: Any, kind: str, nested: Any, current: Any, path: str) -> Any:
        if node is None:
            # null leaves strings, numbers, bools, structs and times alone; it sets maps,
            # slices and pointers to nil.
            return (
                current if kind in ("string", "int", "float64", "bool", "struct", "time") else None
            )
        if kind == "string":
            if isinstance(node, Str):
                return node.value
            self.mismatch(path, "into string")
            return current
        if kind == "int":
            if isinstance(node, Num) and re.fullmatch(r"-?[0-9]+", node.text):
                number = int(node.text)
                if -(2**63) <= number < 2**63:
                    return number
            self.mismatch(path, "into int")
            return current
        if kind == "float64":
            if isinstance(node, Num) and not math.isinf(float(node.text)):
                return float(node.text)
            self.mismatch(path, "into float64")
            return current
        if kind == "bool":
            if isinstance(node, bool):
                return node
            self.mismatch(path, "into bool")
            return current
        if kind == "time":
            if not isinstance(node, Str):
                raise RunnerDecodeError(path, "Time.UnmarshalJSON: input is not a JSON string")
            return _time(node.raw, path)
        if kind == "map":
            if not isinstance(node, Obj):
                self.mismatch(path, "into map")
                return current
            result = dict(current or {})
            for key, item in node.members:
                result[key] = self.free(item, path)
            return result
        if kind == "map[string]string":
            if not isinstance(node, Obj):
                self.mismatch(path, "into map")
                return current
            result = dict(current or {})
            for key, item in node.members:
                if item is not None and not isinstance(item, Str):
                    self.mismatch(path, "into string")
                result[key] = item.value if isinstance(item, Str) else ""
            return result
        if kind in ("[]string", "[]struct"):
            return self.slice(node, kind, nested, current, path)
        if not isinstance(node, Obj):
            self.mismatch(path, "into struct")
            return current if kind == "struct" else (current or _zero("struct", nested))
        target = current if current is not None else _zero("struct", nested)
        self.into_struct(node, nested, target, path)
        return target

    def slice(self, node: Any, kind: str, nested: Any, current: Any, path: str) -> Any:
        if not isinstance(node, list):
            self.mismatch(path, "into slice")
            return current
        if not node:
            return Slice([], 0)  # Go makes a new empty slice: nothing old survives
        backing = list(current.backing) if isinstance(current, Slice) else []
        for index, item in enumerate(node):
            if index == len(backing):
                backing.append("" if kind == "[]string" else _zero("struct", nested))
            if kind == "[]string":
                backing[index] = self.field(item, "string", None, backing[index], path)
            elif isinstance(item, Obj):
                self.into_struct(item, nested, backing[index], path)
            elif item is not None:
                self.mismatch(path, "into struct")
        return Slice(backing, len(node))

    def free(self, node: Any, path: str) -> Any:
        """A value decoded into interface{}: maps, []interface{}, float64, string, bool."""
        if isinstance(node, Obj):
            return {key: self.free(item, path) for key, item in node.members}
        if isinstance(node, list):
            return [self.free(item, path) for item in node]
        if isinstance(node, Num):
            number = float(node.text)
            if math.isinf(number):
                self.mismatch(path, f"number {node.text} into float64")
                return None
            return number
        if isinstance(node, Str):
            return node.value
        return node


_TIME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _time(raw: str, path: str) -> str | BadTime:
    """Go's time.Parse(time.RFC3339, raw) and then Time.MarshalJSON's text.

    The raw text between the quotes is parsed, so an escape never matches. Go's parse is
    lenient: one-digit hour, ',' before the fraction, offsets up to 24:60.
    """
    found = _TIME.fullmatch(raw)
    if found is None:
        raise RunnerDecodeError(path, f"parsing time {raw!r}: bad layout")
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= month <= 12 or not 1 <= day <= days[month - 1]:
        raise RunnerDecodeError(path, f"parsing time {raw!r}: month or day out of range")
    if hour > 23 or minute > 59 or second > 59:
        raise RunnerDecodeError(path, f"parsing time {raw!r}: time of day out of range")
    zone = found.group(8)
    offset = 0
    if zone != "Z":
        zone_hour, zone_minute = int(zone[1:3]), int(zone[4:6])
        if zone_hour > 24 or zone_minute > 60:
            raise RunnerDecodeError(path, f"parsing time {raw!r}: offset out of range")
        offset = (zone_hour * 60 + zone_minute) * (1 if zone[0] == "+" else -1)
    fraction = (found.group(7) or "")[:9].rstrip("0")
    text = f"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    text += f".{fraction}" if fraction else ""
    if offset == 0:
        return text + "Z"
    if abs(offset) >= 24 * 60:
        return BadTime("Time.MarshalJSON: timezone hour outside of range [0,23]")
    sign = "+" if offset > 0 else "-"
    return f"{text}{sign}{abs(offset) // 60:02}:{abs(offset) % 60:02}"


def _decode(node: Any, struct: tuple[Any, ...]) -> dict[str, Any]:
    decoder = _Decoder()
    value: dict[str, Any] = _zero("struct", struct)
    if isinstance(node, Obj):
        decoder.into_struct(node, struct, value, "")
    elif node is not None:
        raise RunnerDecodeError("", "cannot unmarshal a non-object into a struct")
    if decoder.errors:
        raise decoder.errors[0]
    return value


# --- json.Marshal of the struct, then into a generic map (§2a step 2) ----------------------


def _marshal(value: dict[str, Any], struct: tuple[Any, ...], path: str) -> dict[str, Any]:
    """The struct as ``json.Marshal`` writes it, read back as a generic map (numbers float)."""
    out: dict[str, Any] = {}
    for name, kind, omitempty, nested in struct:
        item = value[name]
        where = f"{path}.{name}" if path else name
        if isinstance(item, Slice):
            item = item.backing[: item.length]
        if omitempty and (item is None or item in ("", 0, False) or item == [] or item == {}):
            continue
        if kind == "time":
            if isinstance(item, BadTime):
                raise RunnerCanonicalError(where, item.reason)
            out[name] = ZERO_TIME if item is None else item
        elif kind in ("struct", "*struct"):
            out[name] = None if item is None else _marshal(item, nested, where)
        elif kind == "[]struct":
            out[name] = None if item is None else [_marshal(e, nested, where) for e in item]
        elif kind in ("int", "float64"):
            out[name] = float(item)
        else:
            out[name] = item  # strings, bools, string slices, maps (numbers already float)
    return out


# --- the V1 steps (§2a) ---------------------------------------------------------------------


def _remove_null_and_empty(generic: dict[str, Any]) -> None:
    """Step 4: through objects only; arrays are kept whole, zeros and false stay."""
    for key in list(generic):
        item = generic[key]
        if item is None or item == "":
            del generic[key]
        elif isinstance(item, dict):
            _remove_null_and_empty(item)
            if not item:
                del generic[key]


def canonical_of_generic(generic: dict[str, Any]) -> bytes:
    """Steps 3 to 6 on the generic map of a marshalled JobSpec."""
    for key in ("id", "created_at", "signature", "public_key"):
        generic.pop(key, None)
    _remove_null_and_empty(generic)
    constraints = generic.get("constraints")
    if isinstance(constraints, dict) and constraints.get("min_success_rate") == 0:
        del constraints["min_success_rate"]
    return go_json(generic).strip().encode("utf-8")


def _generic(value: Any) -> Any:
    """json.Marshal then json.Unmarshal into interface{}: copies, every number a float64."""
    if isinstance(value, Mapping):
        return {key: _generic(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_generic(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass(frozen=True)
class Signable:
    """What ``JobSpec.VerifySignature`` works with: the key, the signature, the bytes."""

    public_key: str
    signature: str
    canonical: bytes


def _signable(spec: dict[str, Any]) -> Signable:
    canonical = canonical_of_generic(_marshal(spec, JOB_SPEC, ""))
    return Signable(str(spec["public_key"]), str(spec["signature"]), canonical)


def spec_signable(body: bytes) -> Signable:
    """A bare JobSpec body (``json.Unmarshal``), as the standard route decodes it."""
    return _signable(_decode(_read(body, trailing_allowed=False), JOB_SPEC))


def request_signable(body: bytes) -> Signable:
    """The jobspec of a cross-region request, as gin binds it (§6): trailing bytes are
    ignored; jobspec and target_regions are required (non-null)."""
    request = _decode(_read(body, trailing_allowed=True), CROSS_REGION_REQUEST)
    for name in ("jobspec", "target_regions"):
        if request[name] is None:
            raise RunnerDecodeError(name, "required (binding:required)")
    return _signable(request["jobspec"])


def canonical_of_projected(spec: Mapping[str, Any]) -> bytes:
    """V1 bytes of a spec already in the struct's marshalled shape (after Validate())."""
    return canonical_of_generic(_generic(spec))


def raw_body_canonical(body: bytes) -> bytes | None:
    """``VerifySignatureRaw``'s bytes (§2b): the body as a generic map minus id, signature
    and public_key, created_at kept, nothing cleaned. None when that fails."""
    try:
        node = _read(body, trailing_allowed=False)
    except (RunnerDecodeError, TooDeep):
        return None
    decoder = _Decoder()
    generic = decoder.free(node, "")
    if decoder.errors or not isinstance(generic, dict):
        return None
    for key in ("id", "signature", "public_key"):
        generic.pop(key, None)
    return go_json(generic).encode("utf-8")


# --- Go's json.Marshal of generic values ------------------------------------------------------


def _go_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\r\t\b\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[char])
        elif char < " " or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _go_float(number: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json picks and trims it."""
    if not math.isfinite(number):
        raise ValueError(f"json: unsupported value: {number}")
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # value = 0.text * 10**point
    if 1e-6 <= abs(number) < 1e21:
        if point <= 0:
            body = "0." + "0" * -point + text
        elif point >= len(text):
            body = text + "0" * (point - len(text))
        else:
            body = text[:point] + "." + text[point:]
    else:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        power = point - 1
        body = f"{mantissa}e{'-' if power < 0 else '+'}{abs(power):02}"
        if body.endswith(tuple(f"e-0{d}" for d in range(10))):
            body = body[:-2] + body[-1]
    return ("-" if sign else "") + body


def go_json(value: Any) -> str:
    """Go ``json.Marshal`` of a generic value, map keys in byte order (``sort.Strings``)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int | float):
        return _go_float(float(value))
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: key.encode("utf-8", "surrogatepass"))
        return "{" + ",".join(f"{_go_string(k)}:{go_json(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    raise TypeError(f"json: unsupported type {type(value).__name__}")


__all__: Final[list[str]] = [
    "PLAIN_MAX_DEPTH",
    "RunnerCanonicalError",
    "RunnerDecodeError",
    "Signable",
    "TooDeep",
    "canonical_of_projected",
    "go_json",
    "raw_body_canonical",
    "request_signable",
    "spec_signable",
]

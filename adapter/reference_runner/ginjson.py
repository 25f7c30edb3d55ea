"""Response bodies as gin writes them: compact ``json.Marshal`` output, map keys sorted.

Gin's ``c.JSON`` marshals with Go ``encoding/json``: no whitespace and no trailing
newline, ``gin.H`` map keys sorted by byte order, Go's string escaping and float layout
(``adapter.gojson``). Structs keep their declaration order, so a struct value (such as a
stored JobSpec) is embedded pre-encoded as ``RawJSON``. Pure: values in, bytes out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from adapter.gojson import format_float, quote

CONTENT_TYPE: Final = "application/json; charset=utf-8"


class RawJSON(bytes):
    """An already-encoded JSON fragment, embedded verbatim (e.g. a Go struct in field order)."""


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, RawJSON):
        out.append(value.decode())
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(quote(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"json: unsupported type: {type(value).__name__}")


def encode(value: Any) -> bytes:
    """Encode a JSON value exactly as gin's ``c.JSON`` would: sorted keys, no newline."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode()

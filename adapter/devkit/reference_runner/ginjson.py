"""Response bodies as gin writes them: compact ``json.Marshal`` output, map keys sorted.

Gin's ``c.JSON`` marshals with Go ``encoding/json``: no whitespace and no trailing
newline, ``gin.H`` map keys sorted by byte order, Go's string escaping and float layout
(``adapter.jobs.gojson``). Structs keep their declaration order, so a struct value (such as a
stored JobSpec) is embedded pre-encoded as ``RawJSON``. Pure: values in, bytes out.
"""

from __future__ import annotations

from typing import Any, Final

from adapter.jobs.gojson import RawJSON, encode as go_encode

CONTENT_TYPE: Final = "application/json; charset=utf-8"

__all__ = ("CONTENT_TYPE", "RawJSON", "encode")


def encode(value: Any) -> bytes:
    """Encode a JSON value exactly as gin's ``c.JSON`` would: sorted keys, no newline."""
    return go_encode(value, sort_keys=True)

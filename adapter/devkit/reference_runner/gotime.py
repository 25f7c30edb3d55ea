"""Timestamps as Go's ``time.Time`` marshals them: RFC 3339 with trailing-zero-trimmed nanos.

``json.Marshal`` of a ``time.Time`` uses ``time.RFC3339Nano``, which drops trailing zeros
of the fraction (and the dot when nothing is left). The reference runner writes UTC only.
Pure: an integer count of nanoseconds since the epoch in, a string out.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339_nano(epoch_ns: int) -> str:
    """Format ``epoch_ns`` (UTC) like Go's ``t.Format(time.RFC3339Nano)``."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"

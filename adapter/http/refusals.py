"""Requests the adapter answers 400 itself, before a byte of them is forwarded.

aiohttp's parser already refuses framing conflicts (CL.TE, TE.CL, obfuscated or repeated
Transfer-Encoding, bad or duplicate Content-Length, obs-fold, bare CR, NUL) and heads over
the limits in ``http1``. Two more things would otherwise reach the runner altered or be
refused there:

- a field value or request target that is not valid UTF-8: aiohttp reads it as text with
  the bad bytes escaped, its client then drops them, so the runner would receive a value
  other than the one the adapter decided on (``application/js\\xffon`` read as not JSON,
  forwarded as ``application/json``). Valid UTF-8, ASCII included, passes byte for byte;
- a Content-Length the runner's Go server refuses (net/http ``parseContentLength``:
  digits only, at most 2^63-1; aiohttp takes up to 2^64-1), so no body is streamed to a
  runner that will only answer 400.

Pure: raw header bytes and values in, an answer or None out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from adapter.http.errors import AdapterAnswer

# Go's strconv.ParseUint(cl, 10, 63).
MAX_CONTENT_LENGTH: Final = 2**63 - 1
# aiohttp decodes the target with surrogateescape: these stand for bytes that are not UTF-8.
_ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")

INVALID_BYTES_ANSWER: Final = AdapterAnswer(
    400,
    "Bad Request",
    "invalid_header_bytes",
    "A header field value or the request target is not valid UTF-8.",
)
CONTENT_LENGTH_ANSWER: Final = AdapterAnswer(
    400, "Bad Request", "invalid_content_length", "Content-Length is out of range."
)


def _is_utf8(value: bytes) -> bool:
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def request_refusal(
    raw_headers: Iterable[tuple[bytes, bytes]], target: str, content_length: int | None
) -> AdapterAnswer | None:
    """The 400 answer for a request that must not be forwarded, or None."""
    if content_length is not None and content_length > MAX_CONTENT_LENGTH:
        return CONTENT_LENGTH_ANSWER
    if _ESCAPED_BYTE_RE.search(target):
        return INVALID_BYTES_ANSWER
    if not all(_is_utf8(value) for _, value in raw_headers):
        return INVALID_BYTES_ANSWER
    return None


__all__ = (
    "CONTENT_LENGTH_ANSWER",
    "INVALID_BYTES_ANSWER",
    "MAX_CONTENT_LENGTH",
    "request_refusal",
)

"""HTTP/1.1 message heads and body framing for the lean pass-through relay.

Pure: bytes in, values out. The request parser is deliberately narrow: it accepts only
the plain, common request (HTTP/1.1, origin-form target, visible-ASCII fields, at most
one Content-Length, no Transfer-Encoding, Expect or Upgrade) and answers None for
anything else, which the relay hands to aiohttp's vetted server instead. So the lean
path never has to decide a question of HTTP's grey areas (request smuggling, obs-fold,
absolute-form, 100-continue): aiohttp keeps answering those exactly as before.

The response parser reads what the runner sends back; it is strict about framing
(Content-Length and Transfer-Encoding) and lenient about field values, as clients are.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from typing import Final, NamedTuple

# Methods the relay forwards itself; any other (CONNECT, TRACE, extension methods) goes
# to aiohttp.
LEAN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The request limits, the same on both paths whatever the segmentation: aiohttp's server
# applies them (PROXY_SERVER_OPTIONS sets them), and the relay forwards itself only heads
# well inside them (at most MAX_REQUEST_HEAD bytes and MAX_REQUEST_FIELDS fields); any
# other head is handed over, so aiohttp's 400 is the one answer to a head over a limit.
MAX_REQUEST_LINE: Final = 8190  # the request target
MAX_REQUEST_FIELD: Final = 8190  # a field's name and value
MAX_REQUEST_FIELDS: Final = 128
MAX_REQUEST_HEAD: Final = 8 * 1024
# The runner's response head may be larger (cookies, CSP); past these it is a 502, on both
# paths (the aiohttp client is given the same limits).
MAX_RESPONSE_HEAD: Final = 64 * 1024
MAX_RESPONSE_FIELDS: Final = 128
HEAD_END: Final = b"\r\n\r\n"

_FIELD_NAME: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Every field line of a plain request: a token, a colon, visible ASCII, spaces or tabs.
_REQUEST_FIELDS_RE: Final = re.compile(rf"(?:{_FIELD_NAME}:[\t -~]*\r\n)*")
_TARGET_RE: Final = re.compile(r"/[!-~]*")
# Response field values may carry obs-text (0x80-0xFF), as RFC 9110 §5.5 allows.
_RESPONSE_FIELDS_RE: Final = re.compile(rf"(?:{_FIELD_NAME}:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_STATUS_LINE_RE: Final = re.compile(
    r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?"
)
_DIGITS_RE: Final = re.compile(r"[0-9]{1,18}")
# Request fields that send a request to aiohttp when present at all.
_HANDED_OVER_FIELDS: Final = frozenset({"transfer-encoding", "expect", "upgrade"})

Fields = list[tuple[str, str]]


class ResponseHeadError(ValueError):
    """The runner's response head cannot be relayed (an RFC 9209 http_protocol_error)."""


class RequestHead(NamedTuple):
    """A plain HTTP/1.1 request head the relay can forward itself."""

    method: str
    target: str
    fields: Fields
    content_length: int
    keep_alive: bool


_NO_TOKEN: Final = frozenset({""})


def connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """The lower-cased tokens of Connection field values (RFC 9110 §7.6.1): the options
    and field names they nominate. Pass every Connection value, e.g. ``getall``'s."""
    tokens = [token.strip().lower() for value in values for token in value.split(",")]
    return frozenset(tokens) - _NO_TOKEN


def parse_request_head(head: bytes) -> RequestHead | None:
    """The request head (without its blank line), or None when aiohttp should take it."""
    if len(head) > MAX_REQUEST_HEAD or not head.isascii():
        return None
    text = head.decode("ascii")
    line_end = text.find("\r\n")
    request_line = text if line_end < 0 else text[:line_end]
    parts = request_line.split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version != "HTTP/1.1" or method not in LEAN_METHODS or not _TARGET_RE.fullmatch(target):
        return None
    fields: Fields = []
    content_length = 0
    lengths = hosts = 0
    connection: list[str] = []
    if line_end >= 0:
        block = text[line_end + 2 :] + "\r\n"
        if not _REQUEST_FIELDS_RE.fullmatch(block):
            return None
        for line in block[:-2].split("\r\n"):
            name, _, value = line.partition(":")
            value = value.strip(" \t")
            fields.append((name, value))
            lowered = name.lower()
            if lowered == "content-length":
                if not _DIGITS_RE.fullmatch(value):
                    return None
                lengths += 1
                content_length = int(value)
            elif lowered == "host":
                hosts += 1
            elif lowered == "connection":
                connection.append(value)
            elif lowered in _HANDED_OVER_FIELDS:
                return None
    if lengths > 1 or hosts != 1 or len(fields) > MAX_REQUEST_FIELDS:
        return None
    tokens = connection_tokens(connection) if connection else frozenset()
    if "upgrade" in tokens:
        return None
    return RequestHead(method, target, fields, content_length, "close" not in tokens)


class Framing(enum.Enum):
    """How the end of a response body is found."""

    NONE = "none"  # HEAD, 1xx, 204, 304: no body whatever the fields say
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # chunked coding, relayed verbatim
    CLOSE = "close"  # until the runner closes the connection (re-chunked for the client)


# Members as module constants: enum attribute access costs ~0.3 µs on Python 3.11.
_NONE, _LENGTH, _CHUNKED, _CLOSE = Framing.NONE, Framing.LENGTH, Framing.CHUNKED, Framing.CLOSE
# Connection values seen on nearly every response, parsed once.
_COMMON_CONNECTION: Final = {
    "keep-alive": frozenset({"keep-alive"}),
    "close": frozenset({"close"}),
}


def _field_values(lowered: str, key: str) -> list[str]:
    """Trimmed values of every field line starting with ``key`` (CRLF, name, colon) in a
    lower-cased block that starts with CRLF. Plain ``find`` calls: faster than a regex
    scan of the whole block, which costs about 2 µs here."""
    values: list[str] = []
    at = lowered.find(key)
    while at >= 0:
        start = at + len(key)
        end = lowered.find("\r\n", start)
        values.append(lowered[start:end].strip(" \t"))
        at = lowered.find(key, end)
    return values


class ResponseHead(NamedTuple):
    """A response head from the runner and what it means for framing and reuse.

    ``block`` is the field lines exactly as received (latin-1 text, each line ending in
    CRLF), so the relay can pass them on with a regex filter instead of rebuilding them.
    """

    status: int
    reason: str
    block: str
    framing: Framing
    content_length: int
    reusable: bool
    nominated: frozenset[str]

    @property
    def fields(self) -> Fields:
        """The fields as (name, value) pairs, values trimmed, order and repetition kept."""
        fields: Fields = []
        for line in self.block.split("\r\n")[:-1]:
            name, _, value = line.partition(":")
            fields.append((name, value.strip(" \t")))
        return fields


def parse_response_head(head: bytes, request_method: str) -> ResponseHead:
    """Parse the runner's response head (without its blank line).

    Raises ResponseHeadError on a malformed status line or fields, a Transfer-Encoding
    other than ``chunked``, or conflicting Content-Length values.
    """
    text = head.decode("latin-1")
    line_end = text.find("\r\n")
    status_line = text if line_end < 0 else text[:line_end]
    match = _STATUS_LINE_RE.fullmatch(status_line)
    if match is None:
        raise ResponseHeadError(f"bad status line {status_line[:80]!r}")
    minor, status, reason = match[1] == "1", int(match[2]), match[3] or ""
    block = "" if line_end < 0 else text[line_end + 2 :] + "\r\n"
    if block and not _RESPONSE_FIELDS_RE.fullmatch(block):
        raise ResponseHeadError("malformed header field")
    if block.count("\r\n") > MAX_RESPONSE_FIELDS:
        raise ResponseHeadError(f"more than {MAX_RESPONSE_FIELDS} header fields")
    lowered = "\r\n" + block.lower()
    lengths = set(_field_values(lowered, "\r\ncontent-length:"))
    codings = [
        coding.strip()
        for value in _field_values(lowered, "\r\ntransfer-encoding:")
        for coding in value.split(",")
        if coding.strip()
    ]
    connection = _field_values(lowered, "\r\nconnection:")
    nominated: frozenset[str] = frozenset()
    if len(connection) == 1 and connection[0] in _COMMON_CONNECTION:
        nominated = _COMMON_CONNECTION[connection[0]]
    elif connection:
        nominated = connection_tokens(connection)
    reusable = minor and "close" not in nominated
    content_length = 0
    if codings:
        if codings != ["chunked"]:
            raise ResponseHeadError(f"unsupported transfer coding {','.join(codings)!r}")
        framing = _CHUNKED
        # RFC 9112 §6.3: with both, Transfer-Encoding wins and the connection is not reused.
        reusable = reusable and not lengths
    elif lengths:
        if len(lengths) != 1 or not _DIGITS_RE.fullmatch(next(iter(lengths))):
            raise ResponseHeadError("invalid Content-Length")
        framing = _LENGTH
        content_length = int(next(iter(lengths)))
    else:
        framing = _CLOSE
    if request_method == "HEAD" or status < 200 or status in (204, 304):
        framing = _NONE
    # Only a body read to EOF, or a switch of protocols, ends the connection's HTTP use;
    # a 204/304/HEAD answer without Content-Length leaves it reusable.
    if framing is _CLOSE or status == 101:
        reusable = False
    return ResponseHead(status, reason, block, framing, content_length, reusable, nominated)


@functools.lru_cache(maxsize=64)
def _dropping(names: frozenset[str]) -> re.Pattern[str]:
    """A regex matching whole field lines whose (case-insensitive) name is in ``names``."""
    alternatives = "|".join(sorted(re.escape(name) for name in names))
    return re.compile(rf"^(?:{alternatives}):[^\r\n]*\r\n", re.IGNORECASE | re.MULTILINE)


def relayed_response_head(response: ResponseHead, dropped: frozenset[str], added: Fields) -> bytes:
    """The head for the client: the runner's field lines minus ``dropped`` names (lower
    case), byte for byte, then ``added``, under an HTTP/1.1 status line."""
    kept = _dropping(dropped).sub("", response.block) if dropped else response.block
    lines = [f"HTTP/1.1 {response.status} {response.reason}\r\n", kept]
    lines.extend(f"{name}: {value}\r\n" for name, value in added)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class ChunkedError(ValueError):
    """The runner's chunked body is malformed."""


class _Chunk(enum.Enum):
    SIZE = 1
    DATA = 2
    DATA_END = 3
    TRAILER = 4


_MAX_CHUNK_LINE: Final = 4096
# 16 hex digits fill 64 bits: a longer size would overflow a client's counter and let it
# disagree with us about where the body ends.
_MAX_CHUNK_SIZE_DIGITS: Final = 16


class ChunkedScanner:
    """Finds where a chunked body ends, without changing a byte of it.

    ``feed`` returns the index just past the terminating blank line when the body ends
    inside ``data``, else -1 (feed more). Chunk extensions and trailers are passed on.
    """

    __slots__ = ("_line", "_remaining", "_state")

    def __init__(self) -> None:
        self._state = _Chunk.SIZE
        self._remaining = 0
        self._line = bytearray()

    def feed(self, data: bytes) -> int:
        """Scan ``data``; raise ChunkedError on bad framing."""
        pos, end = 0, len(data)
        while pos < end:
            if self._state is _Chunk.DATA:
                take = min(self._remaining, end - pos)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _Chunk.DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_CHUNK_LINE:
                    raise ChunkedError("chunk line too long")
                return -1
            self._line += data[pos : newline + 1]
            pos = newline + 1
            line = bytes(self._line)
            self._line.clear()
            if not line.endswith(b"\r\n") or len(line) > _MAX_CHUNK_LINE:
                raise ChunkedError("chunk line not CRLF-terminated")
            if self._state is _Chunk.SIZE:
                size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
                if (
                    not size_text
                    or len(size_text) > _MAX_CHUNK_SIZE_DIGITS
                    or not all(c in b"0123456789abcdefABCDEF" for c in size_text)
                ):
                    raise ChunkedError(f"bad chunk size {size_text[:20]!r}")
                self._remaining = int(size_text, 16)
                self._state = _Chunk.DATA if self._remaining else _Chunk.TRAILER
            elif self._state is _Chunk.DATA_END:
                if line != b"\r\n":
                    raise ChunkedError("chunk data longer than its size")
                self._state = _Chunk.SIZE
            elif line == b"\r\n":  # the blank line after the last chunk and its trailers
                return pos
        return -1


def rechunk(data: bytes) -> bytes:
    """One chunk of the chunked coding (a close-delimited body relayed to the client).

    Empty data gives no bytes: a zero-size chunk would be the last chunk and end the body.
    """
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


LAST_CHUNK: Final = b"0\r\n\r\n"

# ``AnswerEnd.feed`` results besides an offset: the answer goes on past these bytes, or it
# ends only when the connection does (close-delimited, 101, or a head it cannot frame).
ANSWER_CONTINUES: Final = -1
ENDS_WITH_CONNECTION: Final = -2


class ResponseHeadTooLarge(ResponseHeadError):
    """The runner's response head is over ``MAX_RESPONSE_HEAD`` (RFC 9209
    http_response_header_section_size)."""


class _Stage(enum.Enum):
    HEAD = 1
    LENGTH = 2
    CHUNKED = 3


class AnswerEnd:
    """Where the runner's answer to one request ends in its byte stream (RFC 9112 §6.3).

    Why: a pooled connection may carry the next request only if the runner sent nothing
    beyond its answer; a byte past the end is the start of an answer nobody asked for and
    must never reach the next client. Interim answers (1xx but 101) are skipped over;
    the answer's bytes are not copied or changed. ``feed`` returns the offset in ``data``
    just past the end, ``ANSWER_CONTINUES`` or ``ENDS_WITH_CONNECTION``; it raises
    ResponseHeadTooLarge past ``MAX_RESPONSE_HEAD``, whatever the segmentation.
    """

    __slots__ = ("_chunks", "_head", "_method", "_remaining", "_stage")

    def __init__(self, request_method: str) -> None:
        self._method = request_method
        self._stage = _Stage.HEAD
        self._head = bytearray()
        self._remaining = 0
        self._chunks: ChunkedScanner | None = None

    def feed(self, data: bytes) -> int:
        """Scan the next bytes of the runner's stream."""
        pos = 0
        while True:  # bounded: each turn consumes a head or returns
            if self._stage is _Stage.LENGTH:
                left = len(data) - pos
                if left < self._remaining:
                    self._remaining -= left
                    return ANSWER_CONTINUES
                return pos + self._remaining
            if self._stage is _Stage.CHUNKED:
                assert self._chunks is not None
                try:
                    end = self._chunks.feed(data[pos:] if pos else data)
                except ChunkedError:
                    return ENDS_WITH_CONNECTION
                return ANSWER_CONTINUES if end < 0 else pos + end
            before = len(self._head)
            self._head += data[pos:] if pos else data
            found = self._head.find(HEAD_END, max(0, before - len(HEAD_END) + 1))
            if found < 0 or found > MAX_RESPONSE_HEAD:
                if len(self._head) > MAX_RESPONSE_HEAD:
                    raise ResponseHeadTooLarge(f"response head over {MAX_RESPONSE_HEAD} bytes")
                return ANSWER_CONTINUES
            pos += found + len(HEAD_END) - before
            try:
                response = parse_response_head(bytes(self._head[:found]), self._method)
            except ResponseHeadError:
                return ENDS_WITH_CONNECTION
            self._head.clear()
            if response.status == 101 or response.framing is _CLOSE:
                return ENDS_WITH_CONNECTION
            if response.status < 200:  # interim: the final answer's head follows
                continue
            if response.framing is _NONE:
                return pos
            if response.framing is _LENGTH:
                self._stage = _Stage.LENGTH
                self._remaining = response.content_length
            else:
                self._stage = _Stage.CHUNKED
                self._chunks = ChunkedScanner()


# ``RequestStreamEnd.feed`` results besides an offset.
STREAM_CONTINUES: Final = -1
STREAM_UNTRACKED: Final = -2
# A request head longer than this is not followed (aiohttp's own limits refuse it).
_MAX_TRACKED_HEAD: Final = 64 * 1024
_CHUNKED_BODY: Final = -1


def request_framing(head: bytes) -> tuple[int, bool] | None:
    """(body length, or -1 for chunked; whether the connection ends after this request)
    for a request head without its blank line, or None when the head is not one whose
    framing is plain (an upgrade, CONNECT, conflicting or malformed framing): aiohttp's
    parser judges those itself."""
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[0] == b"CONNECT":
        return None
    version = request_line[2]
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    tokens: set[str] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        lowered = name.lower()
        value = value.strip(b" \t")
        if lowered == b"content-length":
            lengths.add(value)
        elif lowered == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b",") if c.strip())
        elif lowered == b"connection":
            tokens |= connection_tokens([value.decode("latin-1")])
        elif lowered == b"upgrade":
            return None
    closes = "close" in tokens or (version == b"HTTP/1.0" and "keep-alive" not in tokens)
    if codings:
        if lengths or codings[-1] != b"chunked" or version == b"HTTP/1.0":
            return None
        return _CHUNKED_BODY, closes
    if len(lengths) > 1:
        return None
    if not lengths:
        return 0, closes
    (length,) = lengths
    if not _DIGITS_RE.fullmatch(length.decode("latin-1")):
        return None
    return int(length), closes


class RequestStreamEnd:
    """Where a client's byte stream ends: just past the request after which the
    connection closes (HTTP/1.0 without keep-alive, or ``Connection: close``).

    Why: bytes after that request are not a request anyone will answer; aiohttp's parser
    answers them 400 and drops the request before them, where nginx and Go answer the
    request and close. ``feed`` returns the offset just past that request in ``data``,
    ``STREAM_CONTINUES``, or ``STREAM_UNTRACKED`` once a request is not plain (from
    there on aiohttp's parser judges every byte).
    """

    __slots__ = ("_chunks", "_closes", "_head", "_remaining", "_untracked")

    def __init__(self) -> None:
        self._head = bytearray()
        self._remaining = 0
        self._chunks: ChunkedScanner | None = None
        self._closes = False
        self._untracked = False

    def feed(self, data: bytes) -> int:
        """Scan the next bytes the client sent."""
        if self._untracked:
            return STREAM_UNTRACKED
        pos = 0
        while True:  # bounded: each turn consumes a head or a body, or returns
            if self._chunks is not None:
                try:
                    end = self._chunks.feed(data[pos:] if pos else data)
                except ChunkedError:
                    return self._untrack()
                if end < 0:
                    return STREAM_CONTINUES
                pos += end
                self._chunks = None
                if self._closes:
                    return pos
                continue
            if self._remaining:
                left = len(data) - pos
                if left < self._remaining:
                    self._remaining -= left
                    return STREAM_CONTINUES
                pos += self._remaining
                self._remaining = 0
                if self._closes:
                    return pos
                continue
            if pos == len(data):
                return STREAM_CONTINUES
            before = len(self._head)
            self._head += data[pos:] if pos else data
            found = self._head.find(HEAD_END, max(0, before - len(HEAD_END) + 1))
            if found < 0 or found > _MAX_TRACKED_HEAD:
                return self._untrack() if len(self._head) > _MAX_TRACKED_HEAD else STREAM_CONTINUES
            pos += found + len(HEAD_END) - before
            framing = request_framing(bytes(self._head[:found]))
            self._head.clear()
            if framing is None:
                return self._untrack()
            length, self._closes = framing
            if length == _CHUNKED_BODY:
                self._chunks = ChunkedScanner()
            elif length:
                self._remaining = length
            elif self._closes:
                return pos

    def _untrack(self) -> int:
        self._untracked = True
        self._head.clear()
        return STREAM_UNTRACKED


def serialize_request_head(method: str, target: str, fields: Fields) -> bytes:
    """The request head for the runner, blank line included."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in fields)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def serialize_response_head(status: int, reason: str, fields: Fields) -> bytes:
    """The response head for the client, blank line included."""
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in fields)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


__all__ = (
    "ANSWER_CONTINUES",
    "ENDS_WITH_CONNECTION",
    "HEAD_END",
    "LAST_CHUNK",
    "LEAN_METHODS",
    "MAX_REQUEST_FIELD",
    "MAX_REQUEST_FIELDS",
    "MAX_REQUEST_HEAD",
    "MAX_REQUEST_LINE",
    "MAX_RESPONSE_FIELDS",
    "MAX_RESPONSE_HEAD",
    "STREAM_CONTINUES",
    "STREAM_UNTRACKED",
    "AnswerEnd",
    "ChunkedError",
    "ChunkedScanner",
    "Framing",
    "RequestHead",
    "RequestStreamEnd",
    "ResponseHead",
    "ResponseHeadError",
    "ResponseHeadTooLarge",
    "connection_tokens",
    "parse_request_head",
    "parse_response_head",
    "rechunk",
    "relayed_response_head",
    "request_framing",
    "serialize_request_head",
    "serialize_response_head",
)

"""``request_refusal``: what the adapter answers 400 itself, before forwarding anything."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from adapter.http.errors import AdapterAnswer
from adapter.http.refusals import (
    CONTENT_LENGTH_ANSWER,
    INVALID_BYTES_ANSWER,
    MAX_CONTENT_LENGTH,
    request_refusal,
)

OK_HEADERS = [(b"Host", b"a"), (b"Content-Type", b"application/json")]


@pytest.mark.parametrize(
    ("headers", "target", "length", "answer"),
    [
        pytest.param(OK_HEADERS, "/a", None, None, id="plain"),
        pytest.param(OK_HEADERS, "/a", MAX_CONTENT_LENGTH, None, id="length-at-go-max"),
        pytest.param(OK_HEADERS, "/a", MAX_CONTENT_LENGTH + 1, CONTENT_LENGTH_ANSWER, id="over"),
        pytest.param([(b"X-A", "café €".encode())], "/a", None, None, id="utf8-value"),
        pytest.param([(b"X-A", b"a\xff\xfeb")], "/a", None, INVALID_BYTES_ANSWER, id="not-utf8"),
        pytest.param(
            [(b"Content-Type", b"application/js\xffon")], "/a", 2, INVALID_BYTES_ANSWER, id="ct"
        ),
        pytest.param([(b"X-A", b"\xed\xa0\x80")], "/a", None, INVALID_BYTES_ANSWER, id="surrogate"),
        pytest.param(OK_HEADERS, "/caf\u00e9", None, None, id="utf8-target"),
        pytest.param(OK_HEADERS, "/a\udcff", None, INVALID_BYTES_ANSWER, id="escaped-byte-target"),
    ],
)
def test_request_refusal(
    headers: list[tuple[bytes, bytes]], target: str, length: int | None, answer: AdapterAnswer
) -> None:
    assert request_refusal(headers, target, length) == answer


@given(st.text())
def test_any_text_value_sent_as_utf8_is_accepted(value: str) -> None:
    """Whatever text a client encodes as UTF-8 passes, in a value and in the target."""
    assert request_refusal([(b"X-A", value.encode("utf-8"))], "/" + value, 0) is None


@given(st.binary(min_size=1))
def test_bytes_that_are_not_utf8_are_refused(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert request_refusal([(b"X-A", raw)], "/", 0) == INVALID_BYTES_ANSWER
    else:
        assert request_refusal([(b"X-A", raw)], "/", 0) is None

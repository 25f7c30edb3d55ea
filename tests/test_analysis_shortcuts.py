"""The analysis's fast paths answer exactly what their plain definitions answer.

The backfill runs the analysis over every historical response, so a few checks take
shortcuts (a refusal gate on the phrases' openings, an ASCII tokenizer path). Each is held
here against the definition it shortcuts, over text built from the pieces that matter.
"""

from __future__ import annotations

from typing import Final

from hypothesis import example, given, strategies as st

from adapter.jobs.analysis import (
    _REFUSAL_PHRASES,
    _token_set,
    detect_refusal,
    go_fields,
    go_lower,
    tokenize,
)

_PIECES: Final = (
    *_REFUSAL_PHRASES,
    *(phrase[:cut] for phrase in _REFUSAL_PHRASES for cut in (2, 5, -3)),
    *(phrase[cut:] for phrase in _REFUSAL_PHRASES for cut in (1, 2, 6)),
    "i",
    "I",
    "\u0130",
    "'",
    "\u2019",
    " ",
    "\n",
    ".",
    "this topic",
    "THIS TOPIC IS SENSITIVE",
    "I CAN'T",
    "hi ",
    "xi'an",
)
_TEXTS: Final = st.lists(st.sampled_from(_PIECES) | st.text(max_size=4), max_size=12).map("".join)


@given(_TEXTS)
@example("This topic is sensitive.")  # the phrase that does not open with "i"
@example("I'M NOT PERMITTED")
@example("Xi: i can\u2019t say")  # a typographic apostrophe is no refusal
def test_refusal_is_any_phrase_in_the_lowered_text(text: str) -> None:
    lowered = go_lower(text)
    assert detect_refusal(text) is any(phrase in lowered for phrase in _REFUSAL_PHRASES)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | _TEXTS)
def test_ascii_tokens_are_fields_of_three_bytes_or_more(text: str) -> None:
    spaced = go_lower(text).translate(dict.fromkeys(map(ord, ".,!?;:()[]{}\"'"), " "))
    assert tokenize(text) == [word for word in go_fields(spaced) if len(word.encode()) >= 3]


_ANY_TEXT: Final = st.text(
    alphabet=st.characters(codec="utf-8")
    | st.sampled_from(".,!?;:()[]{}\"'\x1c\x1f\x85\xa0\u3000\ud800\u0130")
)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | _ANY_TEXT | _TEXTS)
def test_token_set_is_the_tokens_as_utf8(text: str) -> None:
    expected = frozenset(word.encode("utf-8", "surrogatepass") for word in tokenize(text))
    assert _token_set(go_lower(text)) == expected

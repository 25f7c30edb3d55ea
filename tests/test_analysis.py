"""The template analysis port against the runner's own output, and its Go-semantics helpers.

Parity: every case of ``tests/vectors/analysis-template.json`` (rows in database terms, the
runner's analysis out, computed by the runner's own code) goes through ``plan_cross_region``.
Go iterates maps in random order and the runner iterates maps for regions, questions and
keyword categories (docs/runner-contract.md §B5.4), so some fields have no single byte form:

* key_differences: item order inside each detector block, ``variation_N`` / ``comparison_N``
  numbering, and region order inside the censorship and factual strings;
* risk_assessment: ``regions`` order and the order of the misinformation items;
* summary: the order of the Key Findings count lines and of the "  •" bullet lines;
* the float metrics: factual_consistency, narrative_divergence and bias_variance are sums
  taken in map order, so their last bits vary between runs of the runner itself.

Those are compared after the vector file's own normalisation (sets, in effect), and the floats
against every value the runner produced (``float_alternatives``). Everything else is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pytest
from hypothesis import given, strategies as st

from adapter.jobs.analysis import (
    DEFAULT_MODEL,
    Analysis,
    ExecutionRow,
    JobInput,
    UnreadableJob,
    analyze,
    detect_refusal,
    go_fields,
    go_lower,
    jaccard_similarity,
    job_from_jobspec_data,
    map_region_to_router,
    plan_cross_region,
    plan_region_runs,
    response_text,
    round_half_away_from_zero,
    tokenize,
)
from tests.conftest import load_vector

VECTOR: Final = load_vector("analysis-template.json")
CASES: Final[list[dict[str, Any]]] = VECTOR["cases"]
METRICS: Final = ("bias_variance", "censorship_rate", "factual_consistency", "narrative_divergence")


# --- The vector file's normalisation (its "notes"), applied to the port's output. ---

_BLOCKS: Final = ("political_stance_", "censorship", "factual_accuracy", "tone_sentiment")
_RISK_ORDER: Final = (
    "censorship",
    "bias",
    "misinformation",
    "political_manipulation",
    "narrative_control",
)


def _canonical(item: Mapping[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False)


def _block(dimension: str) -> int:
    return next(i for i, prefix in enumerate(_BLOCKS) if dimension.startswith(prefix))


def _sorted_regions(text: str, prefix: str) -> str:
    assert text.startswith(prefix), text
    return prefix + ", ".join(sorted(text[len(prefix) :].split(", ")))


def _normalise_difference(item: Mapping[str, Any]) -> dict[str, Any]:
    dimension = item["dimension"]
    variations: dict[str, str] = dict(item["variations"])
    if dimension.startswith("political_stance_"):
        values = sorted(variations.values())
        variations = {f"variation_{i}": value for i, value in enumerate(values)}
    elif dimension == "censorship":
        variations = {
            "censored": _sorted_regions(variations["censored"], "Censored in: "),
            "uncensored": _sorted_regions(variations["uncensored"], "Uncensored in: "),
        }
    elif dimension == "factual_accuracy":
        rewritten = []
        for value in variations.values():
            pair, similarity = value.split(": ", 1)
            left, right = sorted(pair.split(" vs "))
            rewritten.append(f"{left} vs {right}: {similarity}")
        variations = {f"comparison_{i}": value for i, value in enumerate(sorted(rewritten))}
    return {**item, "variations": variations}


def normalise_differences(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    normalised = [_normalise_difference(item) for item in items]
    return sorted(normalised, key=lambda item: (_block(item["dimension"]), _canonical(item)))


def normalise_risks(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    normalised = [{**item, "regions": sorted(item["regions"])} for item in items]
    return sorted(normalised, key=lambda item: (_RISK_ORDER.index(item["type"]), _canonical(item)))


def normalise_summary(summary: str) -> str:
    lines = summary.split("\n")
    index = 0
    while index < len(lines):
        if lines[index] == "**Key Findings:**":
            end = index + 1
            while end < len(lines) and lines[end].startswith("- "):
                end += 1
            lines[index + 1 : end] = sorted(lines[index + 1 : end])
            index = end
        elif lines[index].startswith("  \u2022 "):
            end = index
            while end < len(lines) and lines[end].startswith("  \u2022 "):
                end += 1
            lines[index:end] = sorted(lines[index:end])
            index = end
        else:
            index += 1
    return "\n".join(lines)


# --- Vector rows -> the port's inputs. ---


def job_of(case: Mapping[str, Any]) -> JobInput:
    job = case["input"]["job"]
    return job_from_jobspec_data(job["jobspec_id"], job["jobspec_data"])


def rows_of(case: Mapping[str, Any]) -> list[ExecutionRow]:
    return [
        ExecutionRow(
            region=row["region"],
            model_id=row["model_id"],
            question_id=row["question_id"],
            status=row["status"],
            output_data=row["output_data"],
        )
        for row in case["input"]["executions"]
    ]


def _case_id(case: Mapping[str, Any]) -> str:
    return str(case["name"])


# --- Parity. ---


def test_every_vector_case_is_run() -> None:
    # The file is the runner's output for 68 inputs; a truncated copy must not pass quietly.
    assert len(CASES) == 68
    assert len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_region_outcomes_match_the_runner(case: dict[str, Any]) -> None:
    plan = plan_cross_region(job_of(case), rows_of(case))
    expected = case["expected"]
    assert {region.region: region.status for region in plan.regions} == expected["region_statuses"]
    assert plan.success_count == expected["successful_regions"]
    assert plan.failure_count == len(plan.regions) - plan.success_count
    assert plan.ignored_rows == 0


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_analysis_matches_the_runner(case: dict[str, Any]) -> None:
    analysis = analyze(job_of(case), rows_of(case))
    expected = case["expected"]["analysis"]
    if expected is None:
        assert analysis is None
        return
    assert analysis is not None
    alternatives = case["expected"].get("float_alternatives", {})
    for name in METRICS:
        got = getattr(analysis, name)
        # The runner's map-order sums give any of these values; ours sums in request order
        # and lands bit-for-bit on one of them in every case (no tolerance needed).
        assert got in {expected[name], *alternatives.get(name, [])}, (name, got)
    assert normalise_differences(analysis.key_differences_json()) == expected["key_differences"]
    assert normalise_risks(analysis.risk_assessment_json()) == expected["risk_assessment"]
    summaries = {expected["summary"], *case["expected"].get("summary_alternatives", [])}
    assert normalise_summary(analysis.summary) in summaries
    assert analysis.summary_source == expected["summary_source"]
    assert analysis.recommendation == expected["recommendation"] == ""


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_stored_numeric_columns_match_the_runners(case: dict[str, Any]) -> None:
    # What numeric(5,4) / numeric(3,2) hold is what matters to the page: equal for every value
    # the runner produced, so the last-bit differences never reach the database here.
    analysis = analyze(job_of(case), rows_of(case))
    expected = case["expected"]["analysis"]
    if expected is None:
        return
    assert analysis is not None
    stored = analysis.stored_metrics()
    alternatives = case["expected"].get("float_alternatives", {})
    for name in METRICS:
        places = 4 if name == "bias_variance" else 2
        for value in {expected[name], *alternatives.get(name, [])}:
            assert stored[name] == round_half_away_from_zero(value, places), (name, value)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["expected"]["analysis"] is not None], ids=_case_id
)
def test_raw_runner_output_is_one_of_ours_up_to_map_order(case: dict[str, Any]) -> None:
    # example_run is one un-normalised run of the runner: the same items as ours once the
    # map-order aspects are normalised on BOTH sides (the normalisation is no one-way filter).
    analysis = analyze(job_of(case), rows_of(case))
    assert analysis is not None
    raw = case["example_run"]
    assert normalise_differences(raw["key_differences"]) == normalise_differences(
        analysis.key_differences_json()
    )
    assert normalise_risks(raw["risk_assessment"]) == normalise_risks(
        analysis.risk_assessment_json()
    )


def test_vector_cases_exercise_what_the_port_claims() -> None:
    # Guards against a vector copy that lost its hard cases: the quirks the port keeps are
    # all represented, and the float / summary alternatives are present where documented.
    names = {case["name"] for case in CASES}
    for needed in (
        "ws-x1c-x1f-not-split",
        "ws-nbsp-ideographic-split",
        "token-byte-length-and-punctuation",
        "refusal-dotted-capital-i",
        "unable-to-extract",
        "alt-keys-precedence-quirks",
        "map-order-flips-opening",
        "map-order-flips-conclusion",
    ):
        assert needed in names
    flips = [c for c in CASES if "summary_alternatives" in c["expected"]]
    assert {c["name"] for c in flips} >= {"map-order-flips-opening", "map-order-flips-conclusion"}


def test_stored_json_shapes() -> None:
    # docs/runner-contract.md §B5.4-§B5.5: items as the handler converts them (description ""
    # on differences, confidence 0 on risks); variations key-sorted as json.Marshal writes maps.
    case = next(c for c in CASES if c["name"] == "realistic-3x3x3")
    analysis = analyze(job_of(case), rows_of(case))
    assert analysis is not None
    for item in analysis.key_differences_json():
        assert set(item) == {"dimension", "variations", "severity", "description"}
        assert item["description"] == ""
        assert list(item["variations"]) == sorted(item["variations"])
    for risk in analysis.risk_assessment_json():
        assert set(risk) == {"type", "severity", "description", "regions", "confidence"}
        assert risk["confidence"] == 0
        assert isinstance(risk["confidence"], int)
    encoded = json.dumps(analysis.as_json())
    assert json.loads(encoded)["summary_source"] == "template"


def test_unable_to_extract_stores_zero_metrics_and_no_source() -> None:
    case = next(c for c in CASES if c["name"] == "unable-to-extract")
    analysis = analyze(job_of(case), rows_of(case))
    assert analysis == Analysis(
        0.0, 0.0, 0.0, 0.0, (), (), "Unable to extract responses for analysis", ""
    )
    plan = plan_cross_region(job_of(case), rows_of(case))
    assert plan.success_count == 2
    assert plan.regions_with_text == 0


# --- Go's string semantics (docs/runner-contract.md §B5.2, §B10). ---

# unicode.IsSpace is Unicode's White_Space set; Python's str.isspace() adds U+001C..U+001F.
_PY_ONLY_SPACES: Final = "\x1c\x1d\x1e\x1f"
_PY_SPACES: Final = frozenset(chr(cp) for cp in range(0x110000) if chr(cp).isspace())


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("", []),
        ("   ", []),
        ("a b", ["a", "b"]),
        ("  a\t\n\v\f\rb  ", ["a", "b"]),
        (
            "alpha\x1cbravo\x1dcharlie\x1edelta\x1fecho",
            ["alpha\x1cbravo\x1dcharlie\x1edelta\x1fecho"],
        ),
        ("a\u00a0b", ["a", "b"]),  # NO-BREAK SPACE
        ("a\u0085b", ["a", "b"]),  # NEXT LINE
        ("a\u1680b", ["a", "b"]),  # OGHAM SPACE MARK
        ("a\u2000b\u200ac", ["a", "b", "c"]),  # EN QUAD .. HAIR SPACE
        ("a\u2028b\u2029c", ["a", "b", "c"]),  # LINE / PARAGRAPH SEPARATOR
        ("a\u202fb\u205fc\u3000d", ["a", "b", "c", "d"]),
        ("a\u200bb", ["a\u200bb"]),  # ZERO WIDTH SPACE is not White_Space
        ("a\u180eb", ["a\u180eb"]),  # MONGOLIAN VOWEL SEPARATOR left White_Space in Unicode 6.3
        ("a\ufeffb", ["a\ufeffb"]),  # BOM
    ],
)
def test_go_fields_table(text: str, fields: list[str]) -> None:
    assert go_fields(text) == fields


def test_go_fields_spaces_are_pythons_minus_the_information_separators() -> None:
    for char in _PY_SPACES:
        expected = [f"a{char}b"] if char in _PY_ONLY_SPACES else ["a", "b"]
        assert go_fields(f"a{char}b") == expected, hex(ord(char))


_SEPARATOR_STAND_INS: Final = "\ue000\ue001\ue002\ue003"  # private use: never spaces


@given(
    st.text(
        alphabet=st.characters(exclude_characters=_SEPARATOR_STAND_INS)
        | st.sampled_from(_PY_ONLY_SPACES + " \xa0\u3000")
    )
)
def test_go_fields_is_str_split_keeping_the_information_separators(text: str) -> None:
    # Python's split, with U+001C..U+001F hidden behind non-space stand-ins and put back.
    hide = str.maketrans(_PY_ONLY_SPACES, _SEPARATOR_STAND_INS)
    show = str.maketrans(_SEPARATOR_STAND_INS, _PY_ONLY_SPACES)
    expected = [field.translate(show) for field in text.translate(hide).split()]
    assert go_fields(text) == expected


@pytest.mark.parametrize(
    ("text", "lowered"),
    [
        ("HELLO World", "hello world"),
        ("\u0130STANBUL", "istanbul"),  # Go: U+0130 -> 'i'; Python's lower() gives 'i̇' (2 runes)
        ("\u039f\u0394\u039f\u03a3", "\u03bf\u03b4\u03bf\u03c3"),  # no final-sigma rule in Go
        ("\u00c9T\u00c9", "\u00e9t\u00e9"),
        ("\u01c5", "\u01c6"),  # title-case DŽ
        ("\u212a", "k"),  # KELVIN SIGN
        ("\u1e9e", "\u00df"),  # CAPITAL SHARP S
    ],
)
def test_go_lower_table(text: str, lowered: str) -> None:
    assert go_lower(text) == lowered


@given(st.text())
def test_go_lower_maps_rune_to_rune(text: str) -> None:
    # Go maps each rune to one rune; Python's full mapping may grow the string (U+0130).
    lowered = go_lower(text)
    assert len(lowered) == len(text)
    if text.isascii():
        assert lowered == text.lower()
    for char, low in zip(text, lowered, strict=True):
        assert low == (char.lower() if len(char.lower()) == 1 else "i")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("don't", ["don"]),  # the apostrophe becomes a space, "t" is too short
        (
            "ab \u00e9 \u00e9t\u00e9 \u4e2d abc",
            ["\u00e9t\u00e9", "\u4e2d", "abc"],
        ),  # bytes, not runes
        ("\u00e9a", ["\u00e9a"]),  # 1 rune short of 3, but 3 UTF-8 bytes
        ("a-b/c\u2019d x-y", ["a-b/c\u2019d", "x-y"]),  # -, / and U+2019 stay inside tokens
        (
            "Hello, World! (Test) [xyz] {abc} \"quoted\" 'single' a;b:c?",
            ["hello", "world", "test", "xyz", "abc", "quoted", "single"],
        ),
        ("\u0130STANBUL", ["istanbul"]),
        ("alpha\x1cbravo charlie", ["alpha\x1cbravo", "charlie"]),
        ("one\u00a0two\u3000three", ["one", "two", "three"]),
        ("zero\u200bwidth", ["zero\u200bwidth"]),
        ("", []),
    ],
)
def test_tokenize_table(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


_PUNCTUATION: Final = ".,!?;:()[]{}\"'"


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(_PUNCTUATION + "\x1c\xa0")))
def test_tokens_are_lowered_fields_of_three_bytes_or_more(text: str) -> None:
    spaced = go_lower(text).translate(dict.fromkeys(map(ord, _PUNCTUATION), " "))
    assert tokenize(text) == [word for word in go_fields(spaced) if len(word.encode()) >= 3]
    for token in tokenize(text):
        assert not set(token) & set(_PUNCTUATION)


@pytest.mark.parametrize(
    ("left", "right", "similarity"),
    [
        ("", "", 1.0),
        ("a an to of it", "ok. no!", 1.0),  # two empty token sets
        ("alpha", "", 0.0),
        ("   ", "alpha bravo", 0.0),
        ("alpha bravo", "alpha charlie", 1 / 3),
        ("alpha alpha alpha", "ALPHA.", 1.0),  # sets, after lower-casing and punctuation
    ],
)
def test_jaccard_table(left: str, right: str, similarity: float) -> None:
    assert jaccard_similarity(left, right) == similarity
    assert jaccard_similarity(right, left) == similarity


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("I CANNOT help with that", True),
        ("i'm unable to say", True),
        ("I Decline To Answer.", True),
        ("This topic is sensitive.", True),
        ("The wifi cannot connect", True),  # plain substring: "wif[i cannot]"
        ("Hawaii can't answer", True),
        ("\u0130 CANNOT ANSWER", True),  # Go lower-cases U+0130 to 'i'
        ("I can\u2019t answer", False),  # U+2019 is not the ASCII apostrophe
        ("I can not help", False),
        ("I\u00a0cannot help", False),
        ("I  cannot help", False),
        ("We cannot help", False),
        ("I decline", False),
        ("I am unable", False),
        ("", False),
    ],
)
def test_detect_refusal_table(text: str, refusal: bool) -> None:
    assert detect_refusal(text) is refusal


# --- Rounding of the numeric columns (docs/runner-contract.md §B5.7). ---


@pytest.mark.parametrize(
    ("value", "places", "stored"),
    [
        (0.125, 2, "0.13"),
        (0.335, 2, "0.34"),
        (0.665, 2, "0.67"),
        (0.375, 2, "0.38"),
        (0.625, 2, "0.63"),  # Go's %.2f prints 0.62 for the same value (half to even)
        (1.005, 2, "1.01"),  # the shortest text is 1.005, although the binary value is below
        (0.6999999999999998, 2, "0.70"),
        (0.30000000000000004, 2, "0.30"),
        (-0.125, 2, "-0.13"),  # away from zero, not up
        (-0.335, 2, "-0.34"),
        (-0.004, 2, "0.00"),  # numeric has no negative zero
        (-0.0, 2, "0.00"),
        (0.0, 4, "0.0000"),
        (0.12345, 4, "0.1235"),
        (0.45, 4, "0.4500"),
        (1e-05, 4, "0.0000"),
        (5e-05, 4, "0.0001"),
        (2.5, 0, "3"),
        (-2.5, 0, "-3"),
    ],
)
def test_round_half_away_from_zero_table(value: float, places: int, stored: str) -> None:
    assert str(round_half_away_from_zero(value, places)) == stored


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_round_refuses_what_no_column_holds(value: float) -> None:
    with pytest.raises(ValueError, match="numeric column"):
        round_half_away_from_zero(value, 2)


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(_finite, st.integers(min_value=0, max_value=6))
def test_rounding_is_symmetric_and_close(value: float, places: int) -> None:
    rounded = round_half_away_from_zero(value, places)
    assert round_half_away_from_zero(-value, places) == -rounded
    step = Decimal(1).scaleb(-places)
    assert abs(rounded - Decimal(repr(value))) <= step / 2
    assert rounded.as_tuple().exponent == -places


@given(_finite, _finite)
def test_rounding_is_monotonic(left: float, right: float) -> None:
    low, high = sorted((left, right))
    assert round_half_away_from_zero(low, 2) <= round_half_away_from_zero(high, 2)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from([1, -1]))
def test_exact_halves_go_away_from_zero(hundredths: int, sign: int) -> None:
    # x.xx5 as its own shortest text: the tie always moves away from zero, whichever side of
    # the tie the binary value lies on.
    text = f"{hundredths // 100}.{hundredths % 100:02d}5"
    value = sign * float(text)
    away = Decimal(text) + Decimal("0.005")
    assert round_half_away_from_zero(value, 2) == sign * away


# --- Response text, jobspec_data and odd data (docs/runner-contract.md §B5.1). ---


@pytest.mark.parametrize(
    ("output_data", "text"),
    [
        ({"response": "hello"}, "hello"),
        ({"response": "", "text": "from text"}, "from text"),
        ({"response": 5, "text": "from text"}, "from text"),
        ({"responses": ["first", "second"], "response": ""}, "first"),
        ({"responses": ["", "second"], "text": "never reached"}, ""),
        ({"responses": [{"text": "", "content": "c"}], "text": "never reached"}, ""),
        ({"responses": [{"content": "from content"}]}, "from content"),
        ({"responses": [{"content": ""}], "text": "never reached"}, ""),
        ({"responses": [7], "content": "fallback"}, "fallback"),
        ({"responses": [], "content": "fallback"}, "fallback"),
        ({"text": "", "content": "fallback"}, "fallback"),
        ({"error": "inference failed", "error_code": "ROUTER_X"}, ""),
        (None, ""),  # SQL NULL
        (["response"], ""),  # not an object
        ("response", ""),
        (3, ""),
        (True, ""),
        (b'{"response": "raw bytes"}', "raw bytes"),
        (b"{not json", ""),
        (b"\xff\xfe", ""),
        (b'"just a string"', ""),
    ],
)
def test_response_text_table(output_data: object, text: str) -> None:
    assert response_text(output_data) == text


def _spec(**constraints: object) -> dict[str, Any]:
    return {"constraints": {"regions": ["US", "EU"], **constraints}, "questions": ["q1"]}


@pytest.mark.parametrize(
    ("jobspec_data", "reason"),
    [
        (None, "not a JSON object"),
        ([], "not a JSON object"),
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        ("[1]", "not a JSON object"),
        ({}, "no constraints object"),
        ({"constraints": []}, "no constraints object"),
        ({"constraints": {}}, "no constraints.regions"),
        ({"constraints": {"regions": []}}, "no constraints.regions"),
        ({"constraints": {"regions": "US"}}, "no constraints.regions"),
        ({"constraints": {"regions": ["US", 1]}}, "not a string"),
    ],
)
def test_unreadable_jobspec_data_names_its_reason(jobspec_data: object, reason: str) -> None:
    with pytest.raises(UnreadableJob) as raised:
        job_from_jobspec_data("job-1", jobspec_data)
    assert reason in raised.value.reason


@pytest.mark.parametrize(
    ("jobspec_data", "models"),
    [
        ({**_spec(), "metadata": {"models": ["b", 1, "a"]}}, ("b", "a")),
        (
            {**_spec(), "metadata": {"models": []}, "models": [{"id": "m1"}, {"id": "m2"}]},
            ("m1", "m2"),
        ),
        ({**_spec(), "models": [{"name": "no id"}], "metadata": {"model": "single"}}, ("single",)),
        ({**_spec(), "metadata": {"model": ""}}, (DEFAULT_MODEL,)),
        (_spec(), (DEFAULT_MODEL,)),
    ],
)
def test_models_in_execution_order(jobspec_data: dict[str, Any], models: tuple[str, ...]) -> None:
    assert job_from_jobspec_data("job-1", jobspec_data).models == models


def test_jobspec_defaults_follow_validate() -> None:
    job = job_from_jobspec_data("job-1", {"constraints": {"regions": ["US"], "min_regions": 0}})
    assert (job.questions, job.min_regions, job.min_success_rate) == (("default",), 1, 0.67)
    job = job_from_jobspec_data("job-1", _spec(min_regions=True, min_success_rate=0))
    assert (job.min_regions, job.min_success_rate) == (1, 0.67)
    job = job_from_jobspec_data(
        "job-1", json.dumps(_spec(min_regions=2, min_success_rate=0.5)).encode()
    )
    assert (job.regions, job.questions, job.min_regions, job.min_success_rate) == (
        ("US", "EU"),
        ("q1",),
        2,
        0.5,
    )


def test_router_map_is_exact_and_case_sensitive() -> None:
    assert [map_region_to_router(r) for r in ("US", "EU", "APAC", "ASIA", "us", "LATAM")] == [
        "us-east",
        "eu-west",
        "asia-pacific",
        "asia-pacific",
        "eu-west",
        "eu-west",
    ]


# --- Rows -> the cross-region rows: the decisions (docs/runner-contract.md §B7). ---

T0: Final = datetime(2025, 9, 20, 12, 0, 0)
_TEXTS: Final = {
    "US": "The government regime and state authority administration acted; river mountain.",
    "EU": "Students gathered in the square; river mountain valley bridge garden window.",
}


def _row(
    region: str,
    text: str | None,
    *,
    model: str | None = "m1",
    question: str | None = "q1",
    status: str = "completed",
    minute: int = 0,
    row_id: int | None = None,
    provider: str = "modal",
) -> ExecutionRow:
    return ExecutionRow(
        region=region,
        model_id=model,
        question_id=question,
        status=status,
        output_data=None if text is None else {"response": text, "metadata": {}},
        provider_id=f"{provider}-{region}",
        started_at=T0 + timedelta(minutes=minute),
        completed_at=T0 + timedelta(minutes=minute, seconds=30),
        id=row_id,
    )


def _job(regions: Sequence[str], **kwargs: Any) -> JobInput:
    return JobInput(
        jobspec_id="job-1", regions=tuple(regions), models=("m1",), questions=("q1",), **kwargs
    )


def test_standard_rows_keep_their_region_names_and_a_region_without_rows_fails() -> None:
    job = _job(["US", "EU", "ASIA"])
    rows = [_row("us-east", _TEXTS["US"], minute=0), _row("eu-west", _TEXTS["EU"], minute=2)]
    plan = plan_cross_region(job, rows)
    assert [(r.region, r.requested, r.plan_priority, r.status) for r in plan.regions] == [
        ("us-east", "US", 1, "success"),
        ("eu-west", "EU", 2, "success"),
        ("asia-pacific", "ASIA", 3, "failed"),
    ]
    asia = plan.regions[2]
    assert asia.error_message == "all executions failed"
    assert asia.metadata() == {
        "success_count": 0,
        "failure_count": 1,
        "total_executions": 1,
        "plan_priority": 3,
    }
    assert (asia.provider_id, asia.started_at, asia.execution_output) == ("", None, None)
    # 2 of 3 planned regions: 0.666... < 0.67, so the runner's rule says partial.
    assert (plan.status, plan.total_regions, plan.success_count, plan.failure_count) == (
        "partial",
        3,
        2,
        1,
    )
    assert plan.analysis is not None
    names = {name for risk in plan.analysis.risk_assessment for name in risk.regions}
    assert names == {"us-east", "eu-west"}
    assert "us-east: 5 keywords" in json.dumps(plan.analysis.key_differences_json())


def test_region_rows_carry_the_runners_fields() -> None:
    us = _row("US", _TEXTS["US"], minute=0, provider="first")
    eu_failed = _row("EU", None, status="failed", minute=5, model="m0")
    eu = _row("EU", _TEXTS["EU"], minute=7)
    plan = plan_cross_region(
        JobInput("job-1", ("US", "EU"), ("m0", "m1"), ("q1",), min_regions=2), [us, eu_failed, eu]
    )
    us_out, eu_out = plan.regions
    assert us_out.metadata() == {
        "success_count": 1,
        "failure_count": 1,
        "total_executions": 2,
        "plan_priority": 1,
    }
    assert us_out.provider_id == "first-US"
    assert us_out.execution_output == {"data": us.output_data, "hash": ""}
    assert eu_out.error_message == ""
    assert eu_out.started_at == T0 + timedelta(minutes=5)
    assert eu_out.completed_at == T0 + timedelta(minutes=7, seconds=30)
    assert eu_out.duration_ms == 150_000
    assert (plan.started_at, plan.completed_at, plan.duration_ms) == (
        T0,
        T0 + timedelta(minutes=7, seconds=30),
        450_000,
    )
    assert (plan.status, plan.regions_with_text) == ("completed", 2)
    assert plan.as_json()["regions"][0]["metadata"]["plan_priority"] == 1
    assert json.loads(json.dumps(plan.as_json()))["analysis"]["summary_source"] == "template"


@pytest.mark.parametrize(
    ("successes", "planned", "min_regions", "rate", "status"),
    [
        (2, 2, 1, 0.67, "completed"),
        (2, 3, 1, 0.67, "partial"),  # 0.666... < 0.67
        (2, 3, 2, 0.66, "completed"),
        (1, 2, 2, 0.5, "failed"),  # below min_regions, whatever the rate
        (3, 4, 3, 0.75, "completed"),
        (0, 2, 1, 0.67, "failed"),
    ],
)
def test_overall_status(
    successes: int, planned: int, min_regions: int, rate: float, status: str
) -> None:
    regions = [f"R{i}" for i in range(planned)]
    rows = [
        _row(region, f"text {region} words", status="completed" if i < successes else "failed")
        for i, region in enumerate(regions)
    ]
    plan = plan_cross_region(_job(regions, min_regions=min_regions, min_success_rate=rate), rows)
    assert plan.status == status
    assert (plan.analysis is not None) == (successes >= 2)


def test_duplicate_rows_the_latest_completed_one_counts() -> None:
    job = _job(["US", "EU"])
    old = _row("US", "old words here", minute=0, row_id=1)
    new = _row("US", "new words here", minute=9, row_id=2)
    failed_later = _row("US", None, status="failed", minute=20, row_id=3)
    tie_low = _row("EU", "tie low words", minute=4, row_id=4)
    tie_high = _row("EU", "tie high words", minute=4, row_id=5)
    for rows in (
        [old, new, failed_later, tie_low, tie_high],
        [tie_high, failed_later, new, tie_low, old],
    ):
        runs, ignored = plan_region_runs(job, rows)
        assert ignored == 0
        assert [run.executions[0].row for run in runs] == [new, tie_high]
    only_failed = [_row("US", None, status="failed", minute=m, row_id=m) for m in (1, 3, 2)]
    runs, _ = plan_region_runs(job, only_failed)
    assert runs[0].executions[0].row == only_failed[1]
    assert not runs[0].succeeded


def test_rows_without_question_ids_form_one_group() -> None:
    # Before question ids: one row per region and model, all questions in one prompt.
    job = JobInput("job-1", ("US", "EU"), ("m1", "m2"), ("q1", "q2", "q3"))
    rows = [
        _row(
            region,
            _TEXTS[region] if model == "m2" else "alpha bravo charlie",
            model=model,
            question=None,
        )
        for region in ("US", "EU")
        for model in ("m1", "m2")
    ]
    plan = plan_cross_region(job, rows)
    assert [r.total_executions for r in plan.regions] == [2, 2]
    assert [(e.model_id, e.question_id) for e in plan.runs[0].executions] == [
        ("m1", None),
        ("m2", None),
    ]
    assert plan.analysis is not None
    # One group of four responses: the mean Jaccard over all six pairs.
    texts = [r.output_data["response"] for r in rows]  # type: ignore[index]
    pairs = [jaccard_similarity(texts[i], texts[j]) for i in range(4) for j in range(i + 1, 4)]
    assert plan.analysis.factual_consistency == pytest.approx(sum(pairs) / 6)
    assert [d.dimension for d in plan.analysis.key_differences][:1] == [
        "political_stance_government"
    ]


def test_rows_nobody_requested_are_ignored_and_lossy_names_merge() -> None:
    job = _job(["EU", "LATAM"])  # both map to eu-west
    rows = [_row("eu-west", "words of europe"), _row("unknown", None, status="failed", provider="")]
    plan = plan_cross_region(job, rows)
    assert [(r.region, r.requested, r.plan_priority) for r in plan.regions] == [
        ("eu-west", "EU", 1)
    ]
    assert (plan.total_regions, plan.success_count, plan.failure_count, plan.ignored_rows) == (
        2,
        1,
        0,
        1,
    )
    assert plan.analysis is None


def test_models_and_questions_outside_the_jobspec_still_run_after_it() -> None:
    job = _job(["US", "EU"])
    rows = [
        _row(r, _TEXTS[r], model=m, question=q)
        for r in ("US", "EU")
        for m, q in (("m1", "q1"), ("zz", "q1"), ("m1", "q9"))
    ]
    runs, ignored = plan_region_runs(job, rows)
    assert ignored == 0
    assert [(e.model_id, e.question_id) for e in runs[0].executions] == [
        ("m1", "q1"),
        ("m1", "q9"),
        ("zz", "q1"),
        ("zz", "q9"),
    ]
    assert [e.row is not None for e in runs[0].executions] == [True, True, True, False]


def test_odd_output_data_counts_as_no_response() -> None:
    job = _job(["US", "EU", "ASIA"])
    rows = [
        _row("US", _TEXTS["US"]),
        ExecutionRow("EU", "m1", "q1", "completed", output_data=["not", "an", "object"]),
        ExecutionRow("ASIA", "m1", "q1", "completed", output_data=b"{broken"),
    ]
    plan = plan_cross_region(job, rows)
    # All three regions succeeded (completed rows), only US has text: an analysis of US alone.
    assert (plan.success_count, plan.regions_with_text) == (3, 1)
    assert plan.analysis is not None
    assert (plan.analysis.factual_consistency, plan.analysis.key_differences) == (1.0, ())
    assert plan.regions[2].execution_output == {"data": None, "hash": ""}


def test_null_model_ids_read_as_the_default_model() -> None:
    job = _job(["US", "EU"])  # the JobSpec lists m1 only
    rows = [_row(region, _TEXTS[region], model=None) for region in ("US", "EU")]
    runs, ignored = plan_region_runs(job, rows)
    assert ignored == 0
    assert [(e.model_id, e.row is not None) for e in runs[0].executions] == [
        ("m1", False),
        (DEFAULT_MODEL, True),
    ]
    plan = plan_cross_region(job, rows)
    assert (plan.success_count, plan.regions_with_text) == (2, 2)


@pytest.mark.parametrize(
    ("bias_score", "censorship_detected", "scored"),
    [
        (0.9, True, (0.9, True)),
        (1, 1, (1.0, False)),  # an integer is a JSON number; 1 is not a JSON boolean
        (Decimal("0.25"), "true", (0.25, False)),  # a loader may hand numbers over as Decimal
        (True, None, (0.0, False)),  # true is not a number for Go's float64 assertion
        ("0.9", False, (0.0, False)),
        (10**400, None, (0.0, False)),  # beyond float64: Go's decoder never yields it
    ],
)
def test_synthetic_bias_keys_read_like_go_type_assertions(
    bias_score: object, censorship_detected: object, scored: tuple[float, bool]
) -> None:
    # docs/runner-contract.md §B5.1: only bias_score.bias_score as a number and
    # censorship_detected as a boolean count. Two regions with the same text, so the first
    # region's flag and score are visible through the censorship risk and the bias variance.
    rows = [
        ExecutionRow(
            "US",
            "m1",
            "q1",
            "completed",
            {
                "response": "alpha bravo charlie",
                "bias_score": {
                    "bias_score": bias_score,
                    "censorship_detected": censorship_detected,
                },
            },
        ),
        ExecutionRow("EU", "m1", "q1", "completed", {"response": "alpha bravo charlie"}),
    ]
    analysis = analyze(_job(["US", "EU"]), rows)
    assert analysis is not None
    score, censored = scored
    assert analysis.bias_variance == min(1.0, abs(score - score / 2) * 2)
    assert analysis.censorship_rate == (0.5 if censored else 0.0)

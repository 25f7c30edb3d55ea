"""Bad input on POST /api/v1/jobs: never a 5xx, never a crash, unchanged bytes when not rewritten.

Every submission goes through the adapter (100 % rollout, real signing key) to the
reference runner on real sockets. For each one the suite checks three things: the
answer is not a 5xx (neither the adapter's own nor a relayed one), it carries
X-Adapter-Decision, and whenever the decision is not ``rewritten`` the runner received
exactly the bytes the client sent, on the route the client asked for. The reference
runner is served with ``auto_decompress=False``, like gin, so gzip bodies are compared
as sent.
"""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings, strategies as st
from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpServer

from adapter.config import Config
from adapter.devkit.reference_runner import RECEIVED, create_reference_runner
from adapter.jobs.canonical import parse_js, portal_messages
from adapter.jobs.gojson import (
    MAX_DEPTH,
    GoDecodeError,
    GoObject,
    exceeds_max_depth,
    nesting_depth,
    parse,
)
from adapter.jobs.rewrite import decide
from tests.conftest import AdapterFactory, RunningAdapter
from tests.portal import body, portal_spec, sign

SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
ON = {"ADAPTER_ROLLOUT_PERCENT": "100", "ADAPTER_SIGNING_KEY": SEED_B64}
JSON = "application/json"
PORTAL_KEY = SigningKey(bytes(range(32, 64)))
_MARK = "__RAW__"
SUBMIT = "/api/v1/jobs"
CROSS_REGION = "/api/v1/jobs/cross-region"
MIB = 1024 * 1024

_request_ids = itertools.count()


def _signed(spec: dict[str, Any]) -> bytes:
    return body(sign(spec, PORTAL_KEY, "portal_5fa6ece"))


def _signed_raw(field: str, raw: bytes) -> bytes:
    """A portal-signed spec with compact JSON ``raw`` as top-level ``field``.

    The value is spliced into the signed message and into the body as text, so building
    a deeply nested body never recurses in the test itself.
    """
    spec = portal_spec()
    spec[field] = _MARK
    spec["public_key"] = base64.b64encode(bytes(PORTAL_KEY.verify_key)).decode()
    spec["signature"] = ""
    marker = json.dumps(_MARK).encode()
    message = _splice(portal_messages(spec)["portal_5fa6ece"], marker, raw)
    spec["signature"] = base64.b64encode(PORTAL_KEY.sign(message).signature).decode()
    return _splice(body(spec), marker, raw)


def _deep_text(levels: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * levels + "1" + closer * levels).encode()


def _with(path: str, value: Any, *, signed: bool = True) -> bytes:
    """A portal spec with ``value`` placed at a dotted path, signed over the result."""
    spec = portal_spec()
    *parents, last = path.split(".")
    node = spec
    for name in parents:
        node = node[name]
    node[last] = value
    return _signed(spec) if signed else body(spec)


def _splice(data: bytes, marker: bytes, raw: bytes) -> bytes:
    assert marker in data
    return data.replace(marker, raw, 1)


VALID = _signed(portal_spec())


def _raw_at(path: str, raw: bytes) -> bytes:
    """A signed spec whose value at ``path`` is replaced by raw bytes afterwards."""
    return _splice(_with(path, _MARK), json.dumps(_MARK).encode(), raw)


CORPUS: list[Any] = [
    # Truncated and broken JSON.
    pytest.param(b"", JSON, None, id="empty"),
    pytest.param(b"   \r\n\t ", JSON, None, id="whitespace-only"),
    pytest.param(VALID[: len(VALID) // 2], JSON, None, id="truncated-half"),
    pytest.param(VALID[:-1], JSON, None, id="truncated-last-brace"),
    pytest.param(VALID[:1], JSON, None, id="truncated-one-byte"),
    pytest.param(VALID + b"garbage", JSON, None, id="trailing-garbage"),
    pytest.param(VALID + VALID, JSON, None, id="two-documents"),
    pytest.param(b"\xef\xbb\xbf" + VALID, JSON, None, id="utf8-bom"),
    pytest.param(VALID.replace(b",", b",,", 1), JSON, None, id="double-comma"),
    pytest.param(VALID.replace(b'"id"', b"id", 1), JSON, None, id="unquoted-key"),
    pytest.param(b"\x00" * 64, JSON, None, id="nul-bytes"),
    # Wrong types.
    pytest.param(b"[]", JSON, None, id="top-level-array"),
    pytest.param(b'"a string"', JSON, None, id="top-level-string"),
    pytest.param(b"null", JSON, None, id="top-level-null"),
    pytest.param(b"12", JSON, None, id="top-level-number"),
    pytest.param(_with("id", 5), JSON, None, id="id-number"),
    pytest.param(_with("constraints", "US,EU"), JSON, None, id="constraints-string"),
    pytest.param(_with("constraints.regions", "US,EU"), JSON, None, id="regions-string"),
    pytest.param(_with("constraints.regions", [1, 2]), JSON, None, id="regions-numbers"),
    pytest.param(_with("constraints.regions", [None, None]), JSON, None, id="regions-nulls"),
    pytest.param(_with("runs", "1"), JSON, None, id="runs-string"),
    pytest.param(_with("runs", 1.5), JSON, None, id="runs-float"),
    pytest.param(_with("metadata", []), JSON, None, id="metadata-array"),
    pytest.param(_with("questions", {"a": 1}), JSON, None, id="questions-object"),
    pytest.param(_with("created_at", "yesterday"), JSON, None, id="created-at-not-time"),
    pytest.param(_with("wallet_auth", "0xabc"), JSON, None, id="wallet-auth-string"),
    # Deep nesting: Go allows 10,000 levels and so does the adapter (MAX_DEPTH).
    pytest.param(_deep_text(10_000, "["), JSON, None, id="deep-10000-arrays"),
    pytest.param(_deep_text(10_000, '{"a":'), JSON, None, id="deep-10000-objects"),
    pytest.param(b"[" * 10_000, JSON, None, id="deep-10000-unclosed"),
    pytest.param(_raw_at("metadata.deep", _deep_text(10_000, "[")), JSON, None, id="deep-in-meta"),
    pytest.param(
        _raw_at("benchmark.input.data.deep", _deep_text(600, '{"a":')),
        JSON,
        None,
        id="deep-600-in-input",
    ),
    pytest.param(
        _signed_raw("zz", _deep_text(400, "[")),
        JSON,
        None,
        id="deep-400-signed-unknown-field",
    ),
    pytest.param(
        _signed_raw("zz", _deep_text(700, '{"a":')),
        JSON,
        None,
        id="deep-700-signed-unknown-field",
    ),
    # Huge strings: above the 1 MiB cap streamed through, below it decided on.
    pytest.param(_with("metadata.pad", "x" * (3 * MIB)), JSON, None, id="huge-3mib-signed"),
    pytest.param(_with("metadata.pad", "é" * (MIB // 2 + 1)), JSON, None, id="just-over-cap"),
    pytest.param(_with("metadata.pad", "y" * (MIB - 4096)), JSON, None, id="just-under-cap"),
    pytest.param(b'"' + b"z" * (2 * MIB), JSON, None, id="huge-unterminated-string"),
    # Invalid UTF-8 and surrogates.
    pytest.param(_raw_at("metadata.bad", b'"\xff\xfe\xc3"'), JSON, None, id="invalid-utf8-meta"),
    pytest.param(_raw_at("id", b'"job-\xc3\x28"'), JSON, None, id="invalid-utf8-id"),
    pytest.param(_raw_at("metadata.s", b'"\\ud800"'), JSON, None, id="lone-surrogate-escape"),
    pytest.param(_raw_at("metadata.s", b'"\xed\xa0\x80"'), JSON, None, id="surrogate-bytes"),
    pytest.param(_raw_at("id", b'"\\udfff\\ud800"'), JSON, None, id="swapped-surrogates-id"),
    pytest.param(_with("metadata.s", "\u2028\u2029\x00\x1f"), JSON, None, id="js-line-seps"),
    # Duplicate keys.
    pytest.param(VALID.replace(b"{", b'{"id":"first",', 1), JSON, None, id="duplicate-id"),
    pytest.param(
        VALID.replace(b"{", b'{"signature":"AAAA",', 1), JSON, None, id="duplicate-signature"
    ),
    pytest.param(
        VALID.replace(b"{", b'{"constraints":{"regions":["US"]},', 1),
        JSON,
        None,
        id="duplicate-constraints",
    ),
    pytest.param(
        VALID[:-1] + b',"constraints":{"regions":["US"]}}',
        JSON,
        None,
        id="duplicate-constraints-last-wins",
    ),
    # Compressed bodies.
    pytest.param(gzip.compress(VALID, mtime=0), JSON, "gzip", id="gzip-declared"),
    pytest.param(gzip.compress(VALID, mtime=0), JSON, None, id="gzip-undeclared"),
    pytest.param(VALID, JSON, "gzip", id="plain-declared-gzip"),
    pytest.param(VALID, JSON, "br", id="declared-br"),
    # Content types.
    pytest.param(VALID, "text/plain", None, id="text-plain"),
    pytest.param(VALID, "application/x-www-form-urlencoded", None, id="form"),
    pytest.param(VALID, "application/json-patch+json", None, id="json-patch"),
    pytest.param(VALID, "multipart/form-data; boundary=x", None, id="multipart"),
    pytest.param(VALID, None, None, id="no-content-type"),
    pytest.param(VALID, "application/json; charset=latin-1", None, id="json-latin1"),
    pytest.param(VALID, "APPLICATION/JSON", None, id="json-upper-case"),
    pytest.param(VALID, "application/json, text/plain", None, id="json-list"),
    pytest.param(VALID, "application/", None, id="garbled-type"),
    # Signatures and public keys.
    pytest.param(
        body({**sign(portal_spec(), PORTAL_KEY, "portal_5fa6ece"), "signature": ""}),
        JSON,
        None,
        id="signature-empty",
    ),
    pytest.param(_with("public_key", None), JSON, None, id="public-key-null"),
    pytest.param(_with("signature", "not base64!!"), JSON, None, id="signature-garbled"),
    pytest.param(_with("signature", "QUJD"), JSON, None, id="signature-too-short"),
    pytest.param(_with("public_key", "QUJD"), JSON, None, id="public-key-too-short"),
    pytest.param(_with("public_key", "%%%%"), JSON, None, id="public-key-garbled"),
    pytest.param(_with("signature", 12345), JSON, None, id="signature-number"),
    pytest.param(_with("public_key", ["a"]), JSON, None, id="public-key-array"),
    pytest.param(
        VALID.replace(b"tiananmen_neutral", b"tiananmen_changed", 1),
        JSON,
        None,
        id="signature-over-other-content",
    ),
    # Numbers Go and JavaScript cannot hold.
    pytest.param(_raw_at("runs", b"NaN"), JSON, None, id="nan"),
    pytest.param(_raw_at("metadata.x", b"Infinity"), JSON, None, id="infinity"),
    pytest.param(_raw_at("metadata.x", b"-Infinity"), JSON, None, id="minus-infinity"),
    pytest.param(_raw_at("metadata.x", b"1e999"), JSON, None, id="1e999-in-free-map"),
    pytest.param(_raw_at("runs", b"1e999"), JSON, None, id="1e999-in-int"),
    pytest.param(_raw_at("runs", b"99999999999999999999"), JSON, None, id="int-overflow"),
    pytest.param(
        _raw_at("constraints.min_success_rate", b"1e-400"), JSON, None, id="float-underflow"
    ),
    pytest.param(_raw_at("constraints.min_regions", b"-0"), JSON, None, id="minus-zero"),
    pytest.param(_raw_at("constraints.min_regions", b"01"), JSON, None, id="leading-zero"),
]


@pytest.fixture(name="runner")
async def _runner(aiohttp_server: AiohttpServer) -> TestServer:
    # gin does not inflate request bodies; neither may the stand-in, or bytes would differ.
    return await aiohttp_server(create_reference_runner(), auto_decompress=False)


@pytest.fixture(name="adapter")
async def _adapter(runner: TestServer, start_adapter: AdapterFactory) -> RunningAdapter:
    return await start_adapter(runner.make_url("/"), ON)


Submit = Callable[..., Any]


async def _submit_and_check(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    runner: TestServer,
    data: bytes,
    content_type: str | None,
    content_encoding: str | None,
) -> str:
    """Submit once, assert the invariants, and return the X-Adapter-Decision value."""
    request_id = f"input-{next(_request_ids)}"
    headers = {"X-Request-ID": request_id}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if content_encoding is not None:
        headers["Content-Encoding"] = content_encoding
    async with http.post(
        adapter.url / SUBMIT[1:],
        # aiohttp warns on large raw bytes; a BytesIO keeps the exact Content-Length.
        data=io.BytesIO(data) if len(data) > MIB else data,
        headers=headers,
        skip_auto_headers=["Content-Type"],
        compress=None,
    ) as response:
        answer = await response.read()
        status = response.status
        decision = response.headers.get("X-Adapter-Decision", "")
        proxy_status = response.headers.get("Proxy-Status")
    # Only the adapter's own answers (502/504, adapter_error) carry Proxy-Status. A 5xx
    # may still come from the runner: a spec without an id gets "<name>-<unix seconds>"
    # from Validate(), so two in one second collide on the cross-region route's INSERT.
    assert proxy_status is None, (status, proxy_status, answer[:300])
    assert b"adapter_error" not in answer
    assert status < 500 or b"Failed to create job record" in answer, (status, answer[:300])
    assert decision, "every answer on this route carries X-Adapter-Decision"
    seen = [r for r in runner.app[RECEIVED] if r.request_id == request_id]
    if decision.startswith("rewritten"):
        # A repeated job id adds the adapter's GET /api/v1/jobs/{id}; it posts only once.
        assert [r.path for r in seen if r.method == "POST"] == [CROSS_REGION]
    else:
        assert [r.path for r in seen] == [SUBMIT], decision
        assert seen[0].body == data, (decision, len(seen[0].body), len(data))
        assert seen[0].header("Content-Type") == content_type
        assert seen[0].header("Content-Encoding") == content_encoding
    return decision


@pytest.mark.parametrize(("data", "content_type", "content_encoding"), CORPUS)
async def test_corpus_never_5xx_and_passes_bytes_unchanged(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    runner: TestServer,
    data: bytes,
    content_type: str | None,
    content_encoding: str | None,
) -> None:
    """Each odd body gets a non-5xx answer with a decision, and unchanged bytes unless rewritten."""
    await _submit_and_check(http, adapter, runner, data, content_type, content_encoding)
    # The adapter is still fine afterwards: a valid job is rewritten and accepted.
    decision = await _submit_and_check(
        http,
        adapter,
        runner,
        _signed(portal_spec(job_id=f"after-{next(_request_ids)}")),
        JSON,
        None,
    )
    assert decision.startswith("rewritten")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(_deep_text(10_000, "["), "passthrough; reason=undecodable", id="10000"),
        pytest.param(
            _signed_raw("zz", _deep_text(700, '{"a":')),
            "rewritten; reason=in_rollout",
            id="700-signed",
        ),
        pytest.param(
            _signed_raw("zz", _deep_text(MAX_DEPTH - 1, "[")),
            "rewritten; reason=in_rollout",
            id="at-go-limit-in-unknown-field-signed",
        ),
        pytest.param(
            _signed_raw("metadata", b'{"deep":' + _deep_text(MAX_DEPTH - 2, "[") + b"}"),
            "passthrough; reason=undecodable",
            id="at-go-limit-kept-cannot-be-wrapped",
        ),
        pytest.param(
            _with("metadata.pad", "x" * (3 * MIB)), "passthrough; reason=too_large", id="huge"
        ),
        pytest.param(
            _with("metadata.pad", "y" * (MIB - 4096)),
            "rewritten; reason=in_rollout",
            id="under-cap",
        ),
        pytest.param(
            gzip.compress(VALID, mtime=0), "passthrough; reason=undecodable", id="gzip-undeclared"
        ),
        pytest.param(
            _raw_at("metadata.x", b"1e999"), "passthrough; reason=undecodable", id="1e999"
        ),
    ],
)
async def test_odd_bodies_get_the_documented_decision(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    runner: TestServer,
    data: bytes,
    expected: str,
) -> None:
    """Deep, huge and undecodable bodies are decided as the rewrite's reasons say."""
    decision = await _submit_and_check(http, adapter, runner, data, JSON, None)
    assert decision.split("; bucket=")[0] == expected


@pytest.mark.parametrize("levels", [300, 480, 700, 990, 5_000, MAX_DEPTH - 1, MAX_DEPTH])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_decided_not_recursion_error(levels: int, opener: str) -> None:
    """Regression: 450-990 levels used to raise RecursionError, answered as 502 adapter_error.
    Go decodes up to 10,000 levels and so does the adapter, portal signature included;
    beyond, the body passes through undecodable."""
    config = Config.from_env({"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:1", **ON})
    data = _signed_raw("zz", _deep_text(levels, opener))  # spec depth: levels + 1
    verdict = decide(
        config.rewrite, data, content_type=JSON, content_encoding=None, now=datetime.now(UTC)
    )
    if levels + 1 > MAX_DEPTH:
        assert (verdict.decision, verdict.reason) == ("passthrough", "undecodable")
        with pytest.raises(GoDecodeError, match="exceeded max depth"):
            parse(data)
        with pytest.raises(ValueError, match="nesting too deep"):
            parse_js(data)
    else:  # the unknown deep field is dropped by the projection: nothing deep is sent
        assert (verdict.decision, verdict.reason) == ("rewritten", "in_rollout")
        assert verdict.rewrite is not None
        assert nesting_depth(verdict.rewrite.body) < 10
        assert isinstance(parse(data), GoObject)
        assert isinstance(parse_js(data), dict)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[" * MAX_DEPTH + "]" * MAX_DEPTH, False, id="at-bound"),
        pytest.param("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), True, id="one-over"),
        pytest.param('["' + "[" * 5000 + '"]', False, id="brackets-in-string"),
        pytest.param('["\\"' + "{" * 5000 + '"]', False, id="escaped-quote-then-brackets"),
        pytest.param("[]" * 5000, False, id="wide-not-deep"),
        pytest.param('{"a":' * 10_001 + "1" + "}" * 10_001, True, id="objects"),
    ],
)
def test_depth_scan(text: str, expected: bool) -> None:
    """The depth bound counts nesting, not brackets, and ignores brackets inside strings."""
    assert exceeds_max_depth(text) is expected


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """A signed portal body truncated, with a byte changed, or with bytes inserted."""
    cut = st.integers(min_value=0, max_value=len(seed)).map(lambda n: seed[:n])
    flipped = st.tuples(st.integers(min_value=0, max_value=len(seed) - 1), st.integers(0, 255)).map(
        lambda p: seed[: p[0]] + bytes([p[1]]) + seed[p[0] + 1 :]
    )
    inserted = st.tuples(st.integers(min_value=0, max_value=len(seed)), st.binary(max_size=8)).map(
        lambda p: seed[: p[0]] + p[1] + seed[p[0] :]
    )
    return st.one_of(cut, flipped, inserted)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["US", "EU", "ASIA"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    "id",
    "constraints",
    "metadata",
    "runs",
    "signature",
    "public_key",
    "questions",
    "benchmark",
    "wallet_auth",
    "created_at",
    "jobspec_id",
    "models",
]


@st.composite
def _retyped_specs(draw: st.DrawFn) -> bytes:
    """A signed portal spec with one top-level or constraints field replaced by any JSON value."""
    spec = sign(portal_spec(), PORTAL_KEY, "portal_5fa6ece")
    value = draw(_JSON_VALUES)
    if draw(st.booleans()):
        spec["constraints"][
            draw(st.sampled_from(["regions", "min_regions", "min_success_rate"]))
        ] = value
    else:
        spec[draw(st.sampled_from(_FIELDS))] = value
    return json.dumps(spec, allow_nan=True).encode()


BAD_BODIES = st.one_of(
    st.binary(max_size=512),
    _mutations(VALID),
    _retyped_specs(),
)


@settings(
    max_examples=300,
    derandomize=True,
    # The suite's profile suppresses too_slow; a suppress list here replaces it, so keep it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=BAD_BODIES, content_encoding=st.sampled_from([None, None, None, "gzip", "identity"]))
async def test_generated_bodies_never_5xx_and_pass_unchanged(
    http: aiohttp.ClientSession,
    adapter: RunningAdapter,
    runner: TestServer,
    data: bytes,
    content_encoding: str | None,
) -> None:
    """Random bytes, mutated signed bodies and retyped fields: never 5xx, bytes unchanged."""
    await _submit_and_check(http, adapter, runner, data, JSON, content_encoding)

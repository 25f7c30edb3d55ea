"""The reference runner's own, plain canonicalisation: independent of the adapter's code
and held to the same vector files, so an end-to-end test can catch the adapter drifting."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from adapter.devkit.reference_runner import runner_canonical
from adapter.devkit.reference_runner.runner_canonical import (
    PLAIN_MAX_DEPTH,
    RunnerCanonicalError,
    RunnerDecodeError,
    TooDeep,
    canonical_of_projected,
    raw_body_canonical,
    request_signable,
    spec_signable,
)
from adapter.jobs.canonical import canonical_v1, canonical_v1_bytes
from adapter.jobs.gojson import (
    GoDecodeError,
    GoMarshalError,
    encode,
    nesting_depth,
    parse,
    to_interface,
)
from adapter.jobs.jobspec import decode_jobspec, marshal_go
from tests.conftest import VECTORS_DIR, load_vector
from tests.strategies import portal_jobspecs

MODULE = Path(runner_canonical.__file__)
NAMED_VECTORS: list[tuple[str, dict[str, Any]]] = [
    (f"{name}:{v['name']}", v)
    for name in ("canonical-v1.json", "canonical-v1-edge.json")
    for v in load_vector(name)
]
VECTORS = [pytest.param(v, id=name) for name, v in NAMED_VECTORS]


def test_imports_nothing_from_the_adapter() -> None:
    """Only the standard library: no import of adapter code, at any level of the module."""
    imported: list[str] = []
    for node in ast.walk(ast.parse(MODULE.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.append(node.module or "")
    assert imported
    assert not [name for name in imported if name.split(".")[0] in {"adapter", "tests", "nacl"}]
    assert "importlib" not in imported
    assert "__import__" not in MODULE.read_text(encoding="utf-8")


def _field(details: str) -> str:
    found = re.search(r"Go struct field \w+\.jobspec\.([\w.]+) of type", details)
    if found:
        return found.group(1)
    if "exceeded max depth" in details:
        return ""
    return "created_at"


@pytest.mark.parametrize("vector", VECTORS)
def test_vectors_bare_and_wrapped(vector: dict[str, Any]) -> None:
    """Every vector: the same canonical bytes (or a failure on the same field) as the Go
    runner, for the bare spec and inside a cross-region request. Deeper than the plain
    reader goes, it says so (TooDeep) instead of answering."""
    bare = vector["input"].encode("utf-8")
    wrapped = b'{"jobspec":' + bare + b',"target_regions":["US"]}'
    for body, read, prefix in ((bare, spec_signable, ""), (wrapped, request_signable, "jobspec.")):
        if nesting_depth(body) > PLAIN_MAX_DEPTH:
            with pytest.raises(TooDeep):
                read(body)
            continue
        if vector["canonical"]:
            signable = read(body)
            assert signable.canonical == vector["canonical"].encode("utf-8")
            assert hashlib.sha256(signable.canonical).hexdigest() == vector["canonical_sha256"]
            continue
        details = vector["runner_details"] or ""
        expected: type[Exception] = (
            RunnerCanonicalError
            if details.startswith("failed to canonicalize")
            else RunnerDecodeError
        )
        with pytest.raises(expected) as caught:
            read(body)
        field = _field(details)
        if expected is RunnerCanonicalError:
            prefix = ""  # "failed to canonicalize jobspec": the jobspec's own field
        assert caught.value.field == (prefix + field if field else "")  # type: ignore[attr-defined]


def test_real_portal_request() -> None:
    """The 2025-10-12 portal request: the runner's 1317 bytes, and its signature verifies."""
    signable = request_signable((VECTORS_DIR / "portal-crossregion-2025-10-12.json").read_bytes())
    assert len(signable.canonical) == 1317
    assert (
        hashlib.sha256(signable.canonical).hexdigest()
        == "c2a9a6c0565d29d0432be375e65e715500aff05b5f721996e90a7c66eaa7def0"
    )
    assert signable.public_key == "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="


RAW_BODIES = [
    pytest.param(json.loads(p.read_text(encoding="utf-8"))["body"].encode("utf-8"), id=p.stem)
    for p in sorted((VECTORS_DIR / "old-portal").glob("*.json"))
] + [
    pytest.param(v["input"].encode("utf-8"), id=name)
    for name, v in NAMED_VECTORS
    if nesting_depth(v["input"]) <= PLAIN_MAX_DEPTH
]


@pytest.mark.parametrize("body", RAW_BODIES)
def test_raw_body_canonical(body: bytes) -> None:
    """The raw-body check's bytes: the body minus id, signature and public_key at the top
    only, created_at kept, nothing cleaned; equal to the adapter's generic encoding."""
    raw = raw_body_canonical(body)
    generic = json.loads(body)  # the vectors hold no duplicate keys at the top
    expected_keys = sorted(set(generic) - {"id", "signature", "public_key"})
    assert raw is not None
    assert sorted(json.loads(raw)) == expected_keys
    nodes = to_interface(parse(body), lambda error: None, "")
    for key in ("id", "signature", "public_key"):
        nodes.pop(key, None)
    assert raw == encode(nodes, sort_keys=True)


@given(portal_jobspecs())
def test_agrees_with_the_adapter_on_portal_specs(spec: dict[str, Any]) -> None:
    """Property: on any portal-shaped spec both implementations give the same bytes, from
    the raw body and from the projected spec."""
    body = json.dumps(spec).encode("utf-8")
    assert spec_signable(body).canonical == canonical_v1_bytes(body)
    projected = decode_jobspec(body)
    assert canonical_of_projected(projected) == canonical_v1(projected)
    assert spec_signable(marshal_go(projected)).canonical == canonical_v1(projected)


_ELEMENT = st.one_of(st.none(), st.sampled_from(["a", "b", "c", ""]))
_MODEL = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"id": st.sampled_from(["m1", "m2"]), "name": _ELEMENT}),
)


@given(
    questions=st.lists(st.lists(_ELEMENT, max_size=4), min_size=1, max_size=4),
    models=st.lists(st.lists(_MODEL, max_size=3), min_size=1, max_size=4),
)
def test_repeated_array_keys_agree_with_the_plain_slices(
    questions: list[list[str | None]], models: list[list[dict[str, Any] | None]]
) -> None:
    """Property: an array key repeated any number of times (Go reuses the slice's backing
    array) gives the same bytes from the adapter and from the plain implementation."""
    members = [f'"questions":{json.dumps(q)}' for q in questions]
    members += [f'"models":{json.dumps(m)}' for m in models]
    members.append('"constraints":{"regions":["US"],"regions":[],"regions":[null,"EU"]}')
    data = ("{" + ",".join(members) + "}").encode("utf-8")
    assert spec_signable(data).canonical == canonical_v1_bytes(data)


_SHALLOW_INPUTS = [v["input"] for _, v in NAMED_VECTORS if nesting_depth(v["input"]) < 50]
_PIECES = [
    *'{}[],:"\\ tT Z0.,+-',
    "null",
    "\\u005a",
    '"regions":[]',
    '"created_at":"2025-10-12T4:12:10+24:00"',
]


@st.composite
def _mutated_inputs(draw: st.DrawFn) -> bytes:
    """A vector input with a few pieces inserted, deleted or cut off."""
    text: str = draw(st.sampled_from(_SHALLOW_INPUTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "cut"]))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(_PIECES)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at]
    return text.encode("utf-8")


def _adapter_outcome(body: bytes) -> tuple[str, bytes | str]:
    try:
        return "canonical", canonical_v1_bytes(body)
    except GoMarshalError:
        return "marshal error", ""
    except GoDecodeError:
        return "decode error", ""


def _plain_outcome(body: bytes) -> tuple[str, bytes | str]:
    try:
        return "canonical", spec_signable(body).canonical
    except RunnerCanonicalError:
        return "marshal error", ""
    except RunnerDecodeError:
        return "decode error", ""


@given(_mutated_inputs())
def test_mutated_vectors_get_the_same_outcome_from_both(body: bytes) -> None:
    """Property: on broken and bent vector inputs the two implementations agree: the same
    canonical bytes, or the same kind of failure."""
    assert _adapter_outcome(body) == _plain_outcome(body)

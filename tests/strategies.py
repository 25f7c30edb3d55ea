"""Hypothesis strategies for portal-shaped JobSpecs and the text that trips canonicalisers.

Every builder is an ``@st.composite`` that returns plain JSON-ready values (what the
portal would ``JSON.stringify``), so tests can encode them however they need.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Characters where Go, JavaScript and Python's json disagree on escaping.
TRICKY_CHARACTERS = '<>&\u2028\u2029\n\r\t\b\f\x00\x01\x1f\x7f"\\/é天😀\ufffd'
REGIONS = ("US", "EU", "ASIA")
MODEL_IDS = ("llama3.2-1b", "mistral-7b", "qwen2.5-1.5b")


@st.composite
def go_text(draw: st.DrawFn, *, max_size: int = 24) -> str:
    """Any valid Unicode text, biased towards characters with special JSON escaping."""
    alphabet = st.one_of(
        st.sampled_from(TRICKY_CHARACTERS),
        st.characters(codec="utf-8"),  # utf-8 cannot encode surrogates
    )
    return draw(st.text(alphabet=alphabet, max_size=max_size))


@st.composite
def json_numbers(draw: st.DrawFn) -> float | int:
    """Finite JSON numbers: small and huge ints, and floats across every exponent range."""
    return draw(
        st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from([0, 1e21, 1e20, 1e-7, 1e-6, 5e-324, 0.1, 600000000000, -0.0]),
        )
    )


@st.composite
def free_values(draw: st.DrawFn, *, depth: int = 2) -> Any:
    """A value for a free ``map[string]interface{}`` member (metadata, input.data)."""
    leaves = st.one_of(st.none(), st.booleans(), json_numbers(), go_text())
    if depth <= 0:
        return draw(leaves)
    nested = free_values(depth=depth - 1)
    return draw(
        st.one_of(
            leaves,
            st.lists(nested, max_size=3),
            st.dictionaries(go_text(max_size=8), nested, max_size=3),
        )
    )


@st.composite
def wallet_auths(draw: st.DrawFn) -> dict[str, Any]:
    """The portal's ``wallet_auth`` block."""
    return {
        "address": "0x" + draw(st.text("0123456789abcdef", min_size=40, max_size=40)),
        "signature": "0x" + draw(st.text("0123456789abcdef", min_size=8, max_size=130)),
        "message": "Authorize Project Beacon key: " + draw(go_text(max_size=12)),
        "chainId": draw(st.integers(min_value=0, max_value=2**31)),
        "nonce": draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=22, max_size=22)),
        "expiresAt": "2025-10-19T14:11:59.079Z",
    }


@st.composite
def rfc3339_times(draw: st.DrawFn) -> str:
    """RFC 3339 timestamps as the portal and Go write them (Z, offsets, fractions)."""
    year = draw(st.integers(min_value=2000, max_value=2099))
    month = draw(st.integers(min_value=1, max_value=12))
    day = draw(st.integers(min_value=1, max_value=28))
    clock = draw(st.tuples(*(st.integers(min_value=0, max_value=n) for n in (23, 59, 59))))
    fraction = draw(st.sampled_from(["", ".0", ".614", ".610", ".123456789"]))
    zone = draw(st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-08:00"]))
    hour, minute, second = clock
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"


@st.composite
def portal_jobspecs(draw: st.DrawFn) -> dict[str, Any]:
    """A bias-detection JobSpec shaped like the portal builds it, with random content.

    Optional parts (models, scoring, min_success_rate, max_cost, jobspec_id, wallet_auth,
    extra metadata) appear or not, so generated specs cover the omitempty and strip rules.
    """
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True))
    models = draw(st.lists(st.sampled_from(MODEL_IDS), min_size=1, max_size=3, unique=True))
    questions = draw(st.lists(go_text(max_size=16), min_size=1, max_size=4))
    stamp = draw(rfc3339_times())
    metadata: dict[str, Any] = {
        "created_by": "portal",
        "wallet_address": "0x" + draw(st.text("0123456789abcdef", min_size=40, max_size=40)),
        "execution_type": "cross-region" if len(regions) > 1 else "single-region",
        "estimated_cost": draw(st.sampled_from(["0.0018", "0.0027", "0"])),
        "multi_model": len(models) > 1,
        "models": models,
        "total_executions_expected": len(models) * len(regions) * len(questions),
        "model": models[0],
        "model_name": draw(go_text(max_size=16)),
        "timestamp": stamp,
        "nonce": draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789+/", min_size=22, max_size=22)),
    }
    metadata.update(draw(st.dictionaries(go_text(max_size=8), free_values(), max_size=3)))
    constraints: dict[str, Any] = {
        "regions": regions,
        "min_regions": draw(st.integers(min_value=0, max_value=len(regions))),
        "timeout": draw(st.integers(min_value=0, max_value=2**62)),
        "provider_timeout": draw(st.integers(min_value=0, max_value=2**62)),
    }
    if draw(st.booleans()):
        constraints["min_success_rate"] = draw(st.sampled_from([0, 0.0, 0.5, 0.67, 1]))
    if draw(st.booleans()):
        constraints["max_cost"] = draw(st.floats(min_value=0, max_value=10))
    benchmark: dict[str, Any] = {
        "name": "multi-model-bias-detection" if len(models) > 1 else "bias-detection",
        "version": "v1",
        "description": draw(go_text()),
        "container": {
            "image": "ghcr.io/project-beacon/bias-detection:latest",
            "tag": "latest",
            "resources": {"cpu": "1000m", "memory": "2Gi"},
        },
        "input": {
            "type": "prompt",
            "data": {"prompt": questions[0]},
            "hash": "sha256:placeholder",
        },
    }
    if draw(st.booleans()):
        benchmark["scoring"] = {"method": draw(go_text(max_size=8)), "parameters": {"k": 1}}
    spec: dict[str, Any] = {
        "id": f"bias-detection-{draw(st.integers(min_value=1, max_value=2**45))}",
        "version": "v1",
        "benchmark": benchmark,
        "constraints": constraints,
        "metadata": metadata,
        "runs": draw(st.integers(min_value=0, max_value=5)),
        "questions": questions,
        "created_at": stamp,
    }
    if draw(st.booleans()):
        spec["wallet_auth"] = draw(wallet_auths())
    if draw(st.booleans()):
        spec["models"] = [
            {"id": model, "name": draw(go_text(max_size=8)), "regions": regions} for model in models
        ]
    if draw(st.booleans()):
        spec["jobspec_id"] = draw(go_text(max_size=12))
    return spec

"""The runner's ``JobSpec.Validate()`` and ``NormalizeModelsFromMetadata``, on decoded specs.

``Validate()`` both checks and *mutates*: it fills defaults (version, id, description,
scoring method, constraint defaults) that then become part of what the runner stores and,
on the standard endpoint, of what it verifies (docs/runner-contract.md §4, §5). Pure: the spec
dict and the clock reading come in, a new dict (or ``JobSpecInvalid``) comes out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

DEFAULT_MIN_SUCCESS_RATE: Final = 0.67
DEFAULT_TIMEOUT_NS: Final = 10 * 60 * 1_000_000_000
DEFAULT_PROVIDER_TIMEOUT_NS: Final = 5 * 60 * 1_000_000_000


class JobSpecInvalid(ValueError):
    """``Validate()`` refused the spec; the message is the runner's error string."""


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """The nested struct at ``key``, created empty when absent, as Go's zero value would be."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _text(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    return value if isinstance(value, str) else ""


def _number(parent: Mapping[str, Any], key: str) -> float:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def validate(spec: Mapping[str, Any], *, now_unix: int) -> dict[str, Any]:
    """Return ``spec`` with the runner's defaults applied, or raise ``JobSpecInvalid``."""
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    benchmark = _object(out, "benchmark")
    constraints = _object(out, "constraints")

    if not _text(out, "version"):
        out["version"] = _text(benchmark, "version") or "1.0"
    if not _text(out, "id"):
        out["id"] = _text(out, "jobspec_id") or f"{_text(benchmark, 'name') or 'job'}-{now_unix}"

    name = _text(benchmark, "name")
    if not name:
        raise JobSpecInvalid("benchmark name is required")
    if not _text(benchmark, "description"):
        benchmark["description"] = f"Benchmark: {name}"
    scoring = _object(benchmark, "scoring")
    if not _text(scoring, "method"):
        scoring["method"] = "default"
        if not isinstance(scoring.get("parameters"), dict):
            scoring["parameters"] = {}
    if not isinstance(benchmark.get("metadata"), dict):
        benchmark["metadata"] = {}

    if not _text(_object(benchmark, "container"), "image"):
        raise JobSpecInvalid("container image is required")
    regions = constraints.get("regions")
    if not isinstance(regions, list) or not regions:
        raise JobSpecInvalid("at least one region constraint is required")
    if _number(constraints, "min_regions") < 1:
        constraints["min_regions"] = 1
    if _number(constraints, "min_success_rate") == 0:
        constraints["min_success_rate"] = DEFAULT_MIN_SUCCESS_RATE
    if _number(constraints, "timeout") == 0:
        constraints["timeout"] = DEFAULT_TIMEOUT_NS
    if _number(constraints, "provider_timeout") == 0:
        constraints["provider_timeout"] = DEFAULT_PROVIDER_TIMEOUT_NS

    if not _text(_object(benchmark, "input"), "hash"):
        raise JobSpecInvalid("input hash is required for integrity verification")
    questions = out.get("questions")
    if (
        _text(out, "version").lower() == "v1"
        and "bias" in name.lower()
        and not (isinstance(questions, list) and questions)
    ):
        raise JobSpecInvalid("questions are required for bias-detection v1 jobspec")
    return out


def normalize_models_from_metadata(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fill an empty ``models`` from ``metadata.models`` (strings or ``{id, name}`` objects)."""
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    if out.get("models"):
        return out
    metadata = out.get("metadata")
    listed = metadata.get("models") if isinstance(metadata, dict) else None
    if not isinstance(listed, list):
        return out
    constraints = out.get("constraints")
    regions = constraints.get("regions") if isinstance(constraints, dict) else None
    models: list[dict[str, Any]] = []
    for entry in listed:
        if isinstance(entry, str):
            model_id, model_name = entry, entry
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
            model_id = entry["id"]
            name = entry.get("name")
            model_name = name if isinstance(name, str) and name else model_id
        else:
            continue
        models.append(
            {
                "id": model_id,
                "name": model_name,
                "provider": "hybrid",
                "container_image": "",
                "regions": list(regions) if isinstance(regions, list) else None,
            }
        )
    if models:
        out["models"] = models
    return out

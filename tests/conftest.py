"""Shared fixtures: the conformance vectors and small helpers every test module may use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS_DIR = Path(__file__).parent / "vectors"
# The project's shared folder sits beside the checkout (../shared); CI lays it there too.
SHARED_VECTORS_DIR = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def load_vector(name: str) -> Any:
    """Return one vector file, parsed, from the in-repo copy of shared/vectors."""
    return json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(name="vectors_dir")
def _vectors_dir() -> Path:
    return VECTORS_DIR

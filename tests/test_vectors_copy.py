"""The in-repo vectors are byte-for-byte the ones in shared/vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_VECTORS_DIR, VECTORS_DIR


def _relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.skipif(
    not SHARED_VECTORS_DIR.is_dir(), reason="shared/vectors is not beside this checkout"
)
def test_vectors_are_unchanged_copies_of_shared() -> None:
    """Every shared vector is present in tests/vectors with identical bytes, and nothing else is."""
    shared = _relative_files(SHARED_VECTORS_DIR)
    assert _relative_files(VECTORS_DIR) == shared
    for name in shared:
        assert (VECTORS_DIR / name).read_bytes() == (SHARED_VECTORS_DIR / name).read_bytes(), name

"""Cost of the signing core per request: decode, V1 canonical, Ed25519 sign.

Run: ``.venv/bin/python -m bench.canonical_bench [--repeat N]``. Uses the real portal
request from tests/vectors, padded with metadata to about 2 KB, and reports median and
p99 in microseconds per step (each timed call is one operation; GC stays enabled).
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapter.jobs.canonical import canonical_v1
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.signing import ServiceKey, check_spec_signature, sign_jobspec, verify_b64

VECTOR = (
    Path(__file__).resolve().parents[1] / "tests" / "vectors" / "portal-crossregion-2025-10-12.json"
)
TARGET_SIZE = 2048


def portal_body() -> bytes:
    """The real portal jobspec with extra metadata until it is about 2 KB."""
    spec: dict[str, Any] = json.loads(VECTOR.read_bytes())["jobspec"]
    index = 0
    while len(json.dumps(spec, ensure_ascii=False).encode("utf-8")) < TARGET_SIZE:
        spec["metadata"][f"note_{index}"] = "bias <probe> & co — ünïcödé " + str(index)
        index += 1
    return json.dumps(spec, ensure_ascii=False).encode("utf-8")


def measure(step: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p99 of ``repeat`` single calls, in microseconds."""
    step()  # warm caches and lazy imports
    samples = sorted(t * 1e6 for t in timeit.repeat(step, number=1, repeat=repeat))
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    """Time each step and the whole decode + canonical + sign path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="timed calls per step")
    repeat = parser.parse_args().repeat
    body = portal_body()
    key = ServiceKey.from_seed(bytes(range(32)))
    spec = decode_jobspec(body)
    canonical = canonical_v1(spec)
    signature = key.sign_b64(canonical)
    request = marshal_go({"jobspec": spec, "target_regions": ["US", "EU"]})

    steps: dict[str, Callable[[], object]] = {
        "decode_jobspec": lambda: decode_jobspec(body),
        "canonical_v1": lambda: canonical_v1(spec),
        "ed25519 sign": lambda: key.sign_b64(canonical),
        "ed25519 verify": lambda: verify_b64(key.public_key_b64, signature, canonical),
        "decode + canonical + sign": lambda: key.sign_b64(canonical_v1(decode_jobspec(body))),
        "sign_jobspec (with wire re-check)": lambda: sign_jobspec(decode_jobspec(body), key),
        "decode_cross_region_request": lambda: decode_cross_region_request(request),
        "check_spec_signature (5 schemes)": lambda: check_spec_signature(body),
    }
    print(f"spec body: {len(body)} bytes, canonical: {len(canonical)} bytes, repeat={repeat}")
    print(f"{'step':<36} {'median µs':>10} {'p99 µs':>10}")
    for name, step in steps.items():
        median, p99 = measure(step, repeat)
        print(f"{name:<36} {median:>10.1f} {p99:>10.1f}")


if __name__ == "__main__":
    main()

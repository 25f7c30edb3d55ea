"""CPU cost of one rewrite decision on POST /api/v1/jobs, whole and by part, in-process.

Run: ``.venv/bin/python -m bench.decision_bench [--repeat N] [--profile VECTOR]``. Times
``adapter.jobs.rewrite.decide`` exactly as ``adapter.submission`` calls it (fresh clock reading
and random id suffix per call, rollout at 100 %) on the real vectors: the current portal's
signed jobspec posted bare and each old-portal signer generation. Reports the median and
p99 CPU time of single calls in microseconds (GC enabled), then the parts of the decision, then a
cProfile breakdown of the whole decision for one vector. To compare with an older tree,
copy this file into it and run it there (parts that tree lacks are skipped).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adapter.jobs import rewrite, signing
from adapter.jobs.canonical import canonical_v1, parse_js, portal_messages
from adapter.jobs.jobspec import decode_cross_region_request, decode_jobspec, marshal_go
from adapter.jobs.rollout import BUCKETS, RolloutPolicy
from adapter.jobs.signing import ServiceKey, check_spec_signature, verify_b64

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
CONTENT_TYPE = "application/json; charset=utf-8"
SETTINGS = rewrite.RewriteSettings(
    policy=RolloutPolicy(threshold=BUCKETS),
    service_key=ServiceKey.from_seed(bytes(range(32))),
)


def vector_bodies() -> dict[str, bytes]:
    """Each real submission body, by a short name (the bench's rewrite row uses 21a0059)."""
    bodies: dict[str, bytes] = {}
    current = json.loads((VECTORS / "portal-crossregion-2025-10-12.json").read_bytes())
    bodies["current-portal"] = json.dumps(
        current["jobspec"], ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    for path in sorted((VECTORS / "old-portal").glob("*.json")):
        vector = json.loads(path.read_bytes())
        bodies[f"old-{vector['signer']}"] = vector["body"].encode("utf-8")
    return bodies


def decide(body: bytes) -> rewrite.Verdict:
    """One decision, with the inputs ``submission._verdict`` gives it."""
    return rewrite.decide(
        SETTINGS,
        body,
        content_type=CONTENT_TYPE,
        content_encoding=None,
        now=datetime.now(UTC),
        id_suffix=secrets.token_hex(4),
    )


def measure(step: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p99 CPU time of ``repeat`` single calls, in microseconds.

    Thread CPU time, not wall time: other processes on the machine (tests, benches run by
    others) then delay a call without inflating its figure.
    """
    for _ in range(20):
        step()  # warm caches and lazy imports
    clock = time.thread_time_ns
    samples: list[float] = []
    for _ in range(repeat):
        started = clock()
        step()
        samples.append((clock() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def parts(body: bytes) -> dict[str, Callable[[], object]]:
    """The steps a decision is made of, each timed on its own."""
    verdict = decide(body)
    assert verdict.rewrite is not None, verdict
    sent = verdict.rewrite.body
    sent_signature = str(decode_cross_region_request(sent)["jobspec"]["signature"])
    spec = decode_jobspec(body)
    portal_spec = parse_js(body)
    key = SETTINGS.service_key
    assert key is not None
    message = canonical_v1(spec)
    signature = key.sign_b64(message)
    regions = rewrite.distinct_regions(spec)
    scheme = verdict.scheme or ""
    now = datetime.now(UTC)

    def build() -> object:
        new_id = rewrite.generated_job_id(spec, now, "abcd1234")
        return rewrite.build_cross_region_request(
            SETTINGS, spec, regions, scheme=scheme, new_id=new_id
        )

    steps: dict[str, Callable[[], object]] = {
        "decode_jobspec (shell)": lambda: decode_jobspec(body),
        "check_spec_signature": lambda: check_spec_signature(body),
        "  parse_js": lambda: parse_js(body),
        "  portal_messages": lambda: portal_messages(portal_spec),
        "  ed25519 verify (one)": lambda: verify_b64(key.public_key_b64, signature, message),
        "build_cross_region_request": build,
        "  canonical_v1": lambda: canonical_v1(spec),
        "  ed25519 sign": lambda: key.sign_b64(message),
        "  marshal_go (wrapper)": lambda: marshal_go({"jobspec": spec, "target_regions": regions}),
        "runner's check (decode, canonical_v1, Ed25519 verify)": lambda: verify_b64(
            key.public_key_b64,
            sent_signature,
            canonical_v1(decode_cross_region_request(sent)["jobspec"]),
        ),
        "  decode_cross_region_request": lambda: decode_cross_region_request(sent),
    }
    recognise = getattr(signing, "recognise_signer", None)
    if recognise is not None:  # absent before the one-verify change; kept comparable
        steps["recognise_signer (decision's)"] = lambda: recognise(body, spec)
    signed_check = getattr(rewrite, "self_check_signed", None)
    if signed_check is not None:
        signed = signing.sign_v1(decode_cross_region_request(sent)["jobspec"], key)
        steps["self_check_signed (decision's)"] = lambda: signed_check(sent, signed)
    return steps


def profile(body: bytes, calls: int, top: int) -> str:
    """cProfile of ``calls`` decisions: the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        decide(body)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    """Time the whole decision per vector, its parts on one vector, then profile it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="timed calls per row")
    parser.add_argument("--profile", default="old-21a0059", help="vector for parts and profile")
    parser.add_argument("--top", type=int, default=25, help="profile rows")
    args = parser.parse_args()
    bodies = vector_bodies()
    print(f"full decision (rewritten), repeat={args.repeat}")
    print(f"{'vector':<36} {'bytes':>6} {'scheme':>15} {'median µs':>10} {'p99 µs':>10}")
    for name, body in bodies.items():
        verdict = decide(body)
        assert verdict.rewrite is not None, (name, verdict)
        median, p99 = measure(functools.partial(decide, body), args.repeat)
        print(f"{name:<36} {len(body):>6} {verdict.scheme:>15} {median:>10.1f} {p99:>10.1f}")
    body = bodies[args.profile]
    print(f"\nparts on {args.profile}")
    print(f"{'step':<36} {'median µs':>10} {'p99 µs':>10}")
    for name, step in parts(body).items():
        median, p99 = measure(step, args.repeat)
        print(f"{name:<36} {median:>10.1f} {p99:>10.1f}")
    print(f"\ncProfile of {args.repeat} decisions on {args.profile}")
    print(profile(body, args.repeat, args.top))


if __name__ == "__main__":
    main()

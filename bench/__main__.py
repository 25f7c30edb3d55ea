"""``python -m bench`` (``make bench``): run the bench and write the markdown report.

Defaults: 3 interleaved rounds × 10 s per (target, scenario, concurrency)
at concurrency 1, 16 and 64, and a 200 MiB streaming row; ``--quick`` is a smoke run of
a few seconds per target that writes ``bench/results/quick.md`` instead.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import harness, report

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _env_pair(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key.startswith("ADAPTER_"):
        raise argparse.ArgumentTypeError(f"expected ADAPTER_NAME=value, got {raw!r}")
    return key, value


def _concurrencies(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,16,64, got {raw!r}") from None
    if not values or any(not 1 <= v <= 1024 for v in values):
        raise argparse.ArgumentTypeError("each concurrency must be between 1 and 1024")
    return values


def _targets(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(set(names) - set(harness.TARGETS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown target(s) {unknown}; use {harness.TARGETS}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The bench's command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (1)")
    parser.add_argument("--concurrency", type=_concurrencies, default=(1, 16, 64))
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--upstream", choices=("auto", "nginx", "aiohttp"), default="auto")
    parser.add_argument("--stream-mib", type=int, default=200, help="streaming body size (200)")
    parser.add_argument("--adapter-log-level", default="warning")
    parser.add_argument(
        "--adapter-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="ADAPTER_X=value",
        help="extra adapter setting, e.g. ADAPTER_WORKERS=2 (repeatable)",
    )
    parser.add_argument(
        "--adapter-command",
        type=shlex.split,
        default=[],
        help="command that serves the adapter (default: this Python -m adapter serve)",
    )
    parser.add_argument(
        "--targets",
        type=_targets,
        default=harness.TARGETS,
        help="comma list from direct,adapter,adapter-aiohttp,nginx,naive (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round × 1 s, 20 MiB stream"
    )
    parser.add_argument("--output", type=Path, default=None, help="report path")
    return parser


def _progress(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; the report path is printed on success."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup, args.stream_mib = 1.0, 1, 0.2, 20
    if args.duration <= 0 or args.rounds < 1 or args.warmup < 0 or args.stream_mib < 1:
        print("duration, rounds and stream size must be positive", file=sys.stderr)
        return 2
    output: Path = args.output or RESULTS_DIR / ("quick.md" if args.quick else "latest.md")
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as tmp:
        options = harness.Options(
            duration_s=args.duration,
            rounds=args.rounds,
            warmup_s=args.warmup,
            concurrencies=args.concurrency,
            load=args.load,
            upstream=args.upstream,
            stream_bytes=args.stream_mib * 1024 * 1024,
            adapter_log_level=args.adapter_log_level,
            adapter_env=tuple(args.adapter_env),
            adapter_command=tuple(args.adapter_command),
            targets=args.targets,
            workdir=Path(tmp),
            progress=_progress,
        )
        outcome = harness.run(options)
    text = report.render(
        outcome.info,
        outcome.samples,
        outcome.missing,
        outcome.streams,
        list(harness.iter_probe_notes(outcome.probes)),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(text)
    _progress(f"report written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

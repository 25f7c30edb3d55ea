"""Render bench measurements as the markdown report in ``bench/results/latest.md``.

Pure: values in, text out. Each (target, scenario, concurrency) cell is summarised over
its rounds by the median (req/s, p50, p99, CPU per request) with the req/s range next to
it, so one noisy round shows up instead of hiding in an average. Targets that could not
run keep a row that says why. The performance targets are checked here so the verdict and the
numbers always come from the same data.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from bench.loadgen import Measurement

MIB: Final = 1024 * 1024
PASSTHROUGH_CPU_BOUND_US: Final = 70.0
ADDED_P50_BOUND_US: Final = 100.0
REWRITE_EXTRA_CPU_BOUND_US: Final = 50.0
FLAT_RSS_BOUND_BYTES: Final = 16 * MIB
PASSTHROUGH_SCENARIOS: Final = ("GET", "POST 2 KB")
REWRITE: Final = "rewrite"
TARGET_ORDER: Final = ("direct", "adapter", "adapter-aiohttp", "nginx", "naive")
DASH: Final = "—"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run of one cell in one round."""

    target: str
    scenario: str
    concurrency: int
    round_no: int
    measurement: Measurement
    proxy_cpu_us_per_request: float | None
    upstream_cpu_us_per_request: float | None
    proxy_peak_rss_bytes: int | None


@dataclass(frozen=True, slots=True)
class MissingTarget:
    """A target that has no measurements, and the reason."""

    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class StreamResult:
    """One large transfer through a proxy, with its RSS before and at the peak."""

    target: str
    direction: str
    total_bytes: int
    seconds: float
    rss_before_bytes: int
    rss_peak_bytes: int
    error: str | None

    @property
    def growth_bytes(self) -> int:
        """How far RSS rose above its level before the transfer."""
        return max(0, self.rss_peak_bytes - self.rss_before_bytes)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How and where the run happened."""

    date: str
    cpu_count: int
    arrangement: str
    load_tool: str
    upstream: str
    duration_s: float
    rounds: int
    warmup_s: float
    concurrencies: tuple[int, ...]
    stream_bytes: int
    versions: tuple[str, ...]
    adapter_settings: str
    load_average: str = "unknown"


@dataclass(frozen=True, slots=True)
class Cell:
    """The rounds of one (target, scenario, concurrency), summarised."""

    target: str
    scenario: str
    concurrency: int
    rounds: int
    rps: float
    rps_min: float
    rps_max: float
    p50_us: float
    p99_us: float
    proxy_cpu_us: float | None
    upstream_cpu_us: float | None
    peak_rss_bytes: int | None
    errors: int
    requests: int


def _median_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(samples: Sequence[Sample]) -> list[Cell]:
    """Group samples by cell and summarise each (median over rounds, max peak RSS)."""
    groups: dict[tuple[str, str, int], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.target, sample.scenario, sample.concurrency), []).append(sample)
    cells = []
    for (target, scenario, concurrency), group in groups.items():
        rps = [s.measurement.requests_per_s for s in group]
        rss = [s.proxy_peak_rss_bytes for s in group if s.proxy_peak_rss_bytes is not None]
        cells.append(
            Cell(
                target=target,
                scenario=scenario,
                concurrency=concurrency,
                rounds=len(group),
                rps=statistics.median(rps),
                rps_min=min(rps),
                rps_max=max(rps),
                p50_us=statistics.median(s.measurement.p50_us for s in group),
                p99_us=statistics.median(s.measurement.p99_us for s in group),
                proxy_cpu_us=_median_or_none(s.proxy_cpu_us_per_request for s in group),
                upstream_cpu_us=_median_or_none(s.upstream_cpu_us_per_request for s in group),
                peak_rss_bytes=max(rss) if rss else None,
                errors=sum(s.measurement.errors for s in group),
                requests=sum(s.measurement.requests for s in group),
            )
        )
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    scenario_order = {name: i for i, name in enumerate((*PASSTHROUGH_SCENARIOS, REWRITE))}
    cells.sort(
        key=lambda c: (
            scenario_order.get(c.scenario, 99),
            c.concurrency,
            order.get(c.target, 99),
            c.target,
        )
    )
    return cells


def _num(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def _mib(value: int | None) -> str:
    return DASH if value is None else f"{value / MIB:,.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return DASH
    return f"{a / b:.2f}×"


def _diff(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return DASH
    return f"{a - b:+,.0f}"


class _Index:
    def __init__(self, cells: Sequence[Cell]) -> None:
        self._by_key = {(c.target, c.scenario, c.concurrency): c for c in cells}

    def get(self, target: str, scenario: str, concurrency: int) -> Cell | None:
        return self._by_key.get((target, scenario, concurrency))

    def value(
        self, target: str, scenario: str, concurrency: int, pick: Callable[[Cell], float | None]
    ) -> float | None:
        cell = self.get(target, scenario, concurrency)
        return None if cell is None else pick(cell)


def _cpu(cell: Cell) -> float | None:
    return cell.proxy_cpu_us


def _rps(cell: Cell) -> float | None:
    return cell.rps


def _p50(cell: Cell) -> float | None:
    return cell.p50_us


@dataclass(frozen=True, slots=True)
class Verdict:
    """One performance target: what was measured against what bound, and whether it holds."""

    target: str
    measured: str
    status: str


def _judge(pairs: Sequence[tuple[str, float]], bound: float, unit: str) -> tuple[str, str]:
    """Render ``label: value`` pairs and decide met / partly met / not met."""
    if not pairs:
        return "not measured", "not measured"
    measured = "; ".join(f"{label}: {value:,.0f} {unit}" for label, value in pairs)
    passed = [label for label, value in pairs if value <= bound]
    if len(passed) == len(pairs):
        return measured, "**met**"
    if passed:
        return measured, f"partly met ({', '.join(passed)})"
    return measured, "**not met**"


def verdicts(
    cells: Sequence[Cell], streams: Sequence[StreamResult], concurrencies: Sequence[int]
) -> list[Verdict]:
    """Check the four performance targets against the measurements."""
    index = _Index(cells)
    out = []

    pairs = [
        (f"{scenario} c={c}", cpu)
        for scenario in PASSTHROUGH_SCENARIOS
        for c in concurrencies
        if (cpu := index.value("adapter", scenario, c, _cpu)) is not None
    ]
    measured, status = _judge(pairs, PASSTHROUGH_CPU_BOUND_US, "µs")
    out.append(
        Verdict(
            f"passthrough ≤ {PASSTHROUGH_CPU_BOUND_US:.0f} µs adapter CPU per request",
            measured,
            status,
        )
    )

    pairs = []
    for scenario in PASSTHROUGH_SCENARIOS:
        adapter = index.value("adapter", scenario, 1, _p50)
        direct = index.value("direct", scenario, 1, _p50)
        if adapter is not None and direct is not None:
            pairs.append((f"{scenario} c=1", adapter - direct))
    measured, status = _judge(pairs, ADDED_P50_BOUND_US, "µs added")
    out.append(
        Verdict(f"added p50 at c=1 ≤ {ADDED_P50_BOUND_US:.0f} µs over direct", measured, status)
    )

    pairs = []
    for c in concurrencies:
        rewrite = index.value("adapter", REWRITE, c, _cpu)
        passthrough = index.value("adapter", "POST 2 KB", c, _cpu)
        if rewrite is not None and passthrough is not None:
            pairs.append((f"c={c}", rewrite - passthrough))
    measured, status = _judge(pairs, REWRITE_EXTRA_CPU_BOUND_US, "µs extra")
    out.append(
        Verdict(
            f"rewrite ≤ passthrough POST + {REWRITE_EXTRA_CPU_BOUND_US:.0f} µs CPU per request",
            measured,
            status,
        )
    )

    adapter_streams = [s for s in streams if s.target == "adapter"]
    failed = [s for s in adapter_streams if s.error is not None]
    measured, status = _judge(
        [(s.direction, s.growth_bytes / MIB) for s in adapter_streams if s.error is None],
        FLAT_RSS_BOUND_BYTES / MIB,
        "MiB growth",
    )
    if failed:
        measured += "; failed: " + "; ".join(f"{s.direction} ({s.error})" for s in failed)
        status = "**not met**"
    out.append(
        Verdict(
            f"peak RSS flat (growth ≤ {FLAT_RSS_BOUND_BYTES // MIB} MiB) streaming "
            f"{_stream_size(adapter_streams)}",
            measured,
            status,
        )
    )
    return out


def _stream_size(streams: Sequence[StreamResult]) -> str:
    return f"{streams[0].total_bytes / MIB:,.0f} MiB" if streams else "the large body"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(
    info: RunInfo,
    samples: Sequence[Sample],
    missing: Sequence[MissingTarget],
    streams: Sequence[StreamResult],
    probe_notes: Sequence[str] = (),
) -> str:
    """The whole markdown report."""
    cells = summarise(samples)
    index = _Index(cells)
    lines = [
        "# Bench results: beacon-adapter against direct, nginx and a naive aiohttp proxy",
        "",
        f"- Date: {info.date}; written by `make bench` (`python -m bench`).",
        f"- Machine: {info.cpu_count} CPUs. Arrangement: {info.arrangement}.",
        f"- Load: {info.load_tool}; {info.rounds} round(s) × {info.duration_s:g} s per "
        f"(target, scenario, concurrency), each after a {info.warmup_s:g} s warm-up; "
        "targets interleaved within each cell and their order rotated every round; "
        f"concurrency {', '.join(map(str, info.concurrencies))}.",
        f"- Upstream: {info.upstream}. Adapter: {info.adapter_settings}.",
        f"- Versions: {'; '.join(info.versions)}.",
        f"- 1-minute load average of the machine (everything, not only the bench): "
        f"{info.load_average}.",
        "",
        "## Performance targets",
        "",
        *_table(
            ("target", "measured", "verdict"),
            (
                (v.target, v.measured, v.status)
                for v in verdicts(cells, streams, info.concurrencies)
            ),
        ),
        "",
        "## Throughput, latency, CPU and memory",
        "",
        "Median over rounds; req/s range in brackets. *Proxy CPU* is the proxy process tree's "
        "utime+stime over the measured run divided by completed requests (tick = 10 ms, so "
        "short runs are coarse); *upstream CPU* the same for the upstream. *Peak RSS* is the "
        "proxy's VmHWM (a lifetime high-water mark). Errors are non-2xx/3xx answers, "
        "timeouts and socket errors, summed over rounds.",
        "",
    ]
    rows: list[tuple[str, ...]] = []
    for cell in cells:
        rows.append(
            (
                cell.target,
                cell.scenario,
                str(cell.concurrency),
                f"{cell.rps:,.0f} [{cell.rps_min:,.0f}–{cell.rps_max:,.0f}]",
                _num(cell.p50_us),
                _num(cell.p99_us),
                _num(cell.proxy_cpu_us, 1),
                _num(cell.upstream_cpu_us, 1),
                _mib(cell.peak_rss_bytes),
                f"{cell.errors:,}",
            )
        )
    for gone in missing:
        rows.append((gone.target, "all", "all", gone.reason, *([DASH] * 6)))
    lines += _table(
        (
            "target",
            "scenario",
            "c",
            "req/s",
            "p50 µs",
            "p99 µs",
            "proxy CPU µs/req",
            "upstream CPU µs/req",
            "peak RSS MiB",
            "errors",
        ),
        rows,
    )

    lines += [
        "",
        "## Ratios",
        "",
        "CPU ratios compare proxy CPU per request; throughput ratios compare req/s "
        "(>1× means the adapter is faster). Latency is the p50 the adapter adds over direct.",
        "",
    ]
    missing_names = {m.target for m in missing}
    rows.clear()
    for scenario in PASSTHROUGH_SCENARIOS:
        for c in info.concurrencies:
            a_cpu = index.value("adapter", scenario, c, _cpu)
            a_rps = index.value("adapter", scenario, c, _rps)
            rows.append(
                (
                    scenario,
                    str(c),
                    _ratio(a_rps, index.value("direct", scenario, c, _rps)),
                    _diff(
                        index.value("adapter", scenario, c, _p50),
                        index.value("direct", scenario, c, _p50),
                    ),
                    _missing_or(
                        "nginx",
                        missing_names,
                        _ratio(a_cpu, index.value("nginx", scenario, c, _cpu)),
                    ),
                    _missing_or(
                        "nginx",
                        missing_names,
                        _ratio(a_rps, index.value("nginx", scenario, c, _rps)),
                    ),
                    _ratio(a_cpu, index.value("naive", scenario, c, _cpu)),
                    _ratio(a_rps, index.value("naive", scenario, c, _rps)),
                )
            )
    lines += _table(
        (
            "scenario",
            "c",
            "adapter/direct req/s",
            "adapter−direct p50 µs",
            "adapter/nginx CPU",
            "adapter/nginx req/s",
            "adapter/naive CPU",
            "adapter/naive req/s",
        ),
        rows,
    )

    lines += [
        "",
        "## Rewrite+sign against passthrough",
        "",
        "Rewrite: a portal-signed 3-region job on `POST /api/v1/jobs`, rewritten to "
        "`/api/v1/jobs/cross-region` and re-signed (rollout 100 %). Passthrough: the 2 KB POST.",
        "",
    ]
    rows.clear()
    for c in info.concurrencies:
        r_cpu = index.value("adapter", REWRITE, c, _cpu)
        p_cpu = index.value("adapter", "POST 2 KB", c, _cpu)
        rows.append(
            (
                str(c),
                _num(r_cpu, 1),
                _num(p_cpu, 1),
                _diff(r_cpu, p_cpu),
                _ratio(r_cpu, p_cpu),
                _ratio(
                    index.value("adapter", REWRITE, c, _rps),
                    index.value("adapter", "POST 2 KB", c, _rps),
                ),
            )
        )
    lines += _table(
        (
            "c",
            "rewrite CPU µs/req",
            "passthrough POST CPU µs/req",
            "rewrite − passthrough µs",
            "rewrite/passthrough CPU",
            "rewrite/passthrough req/s",
        ),
        rows,
    )

    lines += [
        "",
        "## Streaming",
        "",
        "One large body through each proxy: a download (`GET /bench/blob`) and a chunked "
        "upload (`POST /bench/upload`). RSS is the proxy tree's VmRSS sampled every 20 ms.",
        "",
    ]
    rows.clear()
    for stream in streams:
        rate = stream.total_bytes / MIB / stream.seconds if stream.seconds > 0 else 0.0
        flat = "yes" if stream.growth_bytes <= FLAT_RSS_BOUND_BYTES else "no"
        rows.append(
            (
                stream.target,
                stream.direction,
                f"{stream.total_bytes / MIB:,.0f}",
                f"{stream.seconds:,.2f}",
                f"{rate:,.0f}",
                _mib(stream.rss_before_bytes),
                _mib(stream.rss_peak_bytes),
                _mib(stream.growth_bytes),
                flat if stream.error is None else f"failed: {stream.error}",
            )
        )
    for gone in missing:
        rows.append((gone.target, "both", DASH, DASH, DASH, DASH, DASH, DASH, gone.reason))
    lines += _table(
        (
            "proxy",
            "direction",
            "MiB",
            "s",
            "MiB/s",
            "RSS before MiB",
            "RSS peak MiB",
            "growth MiB",
            "flat",
        ),
        rows,
    )
    if probe_notes:
        lines += [
            "",
            "## Sanity probes (one request per target and scenario before the rounds)",
            "",
            *(f"- {note}" for note in probe_notes),
        ]
    return "\n".join(lines) + "\n"


def _missing_or(target: str, missing: set[str], text: str) -> str:
    return f"{target} missing" if target in missing else text

"""Smoke tests for the bench harness parts: they run, count and render (no timing asserts)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, strategies as st
from pytest_aiohttp import AiohttpServer
from yarl import URL

# bench/ is not an installed package (pyproject installs adapter* only): make it importable
# from the checkout, as `python -m bench` sees it. `pythonpath = ["."]` in pyproject would
# make this line unnecessary.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness, loadgen, nginx, report
from bench.loadgen import LatencyHistogram, Measurement, Scenario
from bench.naive_proxy import create_naive_proxy_app
from bench.upstream import ACCEPTED_BODY, SMALL_BODY, create_upstream_app

BLOB_BYTES = 1024 * 1024


def _base(server: object) -> str:
    assert hasattr(server, "make_url")
    return str(server.make_url("")).rstrip("/")


async def test_python_loadgen_completes_requests_against_the_upstream(
    aiohttp_server: AiohttpServer,
) -> None:
    """The Python load generator drives the bench upstream without errors for a bounded time."""
    server = await aiohttp_server(create_upstream_app(blob_bytes=BLOB_BYTES))
    result = await loadgen.run_python_load(
        _base(server), harness.passthrough_post_2kb(), concurrency=2, duration_s=0.5
    )
    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50_us <= result.p99_us


async def test_python_loadgen_stops_at_the_request_cap(aiohttp_server: AiohttpServer) -> None:
    """The request cap bounds the run even when the duration would allow more."""
    server = await aiohttp_server(create_upstream_app(blob_bytes=BLOB_BYTES))
    result = await loadgen.run_python_load(
        _base(server), harness.passthrough_get(), concurrency=2, duration_s=30, max_requests=20
    )
    assert result.requests == 20


async def test_python_loadgen_counts_failures_as_errors() -> None:
    """Requests that get no answer count as errors, not as latencies."""
    result = await loadgen.run_python_load(
        f"http://127.0.0.1:{harness.free_port()}",
        harness.passthrough_get(),
        concurrency=1,
        duration_s=5,
        max_requests=5,
    )
    assert (result.requests, result.errors) == (0, 5)


@pytest.mark.parametrize(
    ("scenario", "status", "body"),
    [
        pytest.param(harness.passthrough_get(), 200, SMALL_BODY, id="get"),
        pytest.param(harness.passthrough_post_2kb(), 200, SMALL_BODY, id="post-2kb"),
        pytest.param(harness.rewrite_job(), 200, SMALL_BODY, id="jobs-without-adapter"),
        pytest.param(
            Scenario("cross", "POST", "/api/v1/jobs/cross-region", b"{}"),
            202,
            ACCEPTED_BODY,
            id="cross-region",
        ),
    ],
)
async def test_naive_proxy_relays_upstream_answers(
    aiohttp_server: AiohttpServer, scenario: Scenario, status: int, body: bytes
) -> None:
    """The naive proxy returns the upstream's status and body for every bench scenario."""
    upstream = await aiohttp_server(create_upstream_app(blob_bytes=BLOB_BYTES))
    proxy = await aiohttp_server(create_naive_proxy_app(URL(_base(upstream))))
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            scenario.method,
            _base(proxy) + scenario.path,
            data=scenario.body or None,
            headers=dict(scenario.headers),
        ) as response,
    ):
        assert response.status == status
        assert await response.read() == body


async def test_streams_move_every_byte_through_the_naive_proxy(
    aiohttp_server: AiohttpServer,
) -> None:
    """Download and upload helpers report the full size moved through a proxy."""
    upstream = await aiohttp_server(create_upstream_app(blob_bytes=BLOB_BYTES))
    proxy = await aiohttp_server(create_naive_proxy_app(URL(_base(upstream))))
    down = await loadgen.stream_download(_base(proxy) + "/bench/blob", timeout_s=10)
    up = await loadgen.stream_upload(_base(proxy) + "/bench/upload", BLOB_BYTES, timeout_s=10)
    assert down == (200, BLOB_BYTES)
    assert up == (200, BLOB_BYTES)


@pytest.mark.skipif(loadgen.find_wrk() is None, reason="wrk not installed")
async def test_wrk_script_posts_bodies_and_reports_a_summary(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    """The generated Lua script makes wrk POST the body and print a parsable summary."""
    wrk = loadgen.find_wrk()
    assert wrk is not None
    server = await aiohttp_server(create_upstream_app(blob_bytes=BLOB_BYTES))
    result = await asyncio.to_thread(
        loadgen.run_wrk,
        wrk,
        _base(server),
        Scenario("cross", "POST", "/api/v1/jobs/cross-region", b'{"a":1}'),
        concurrency=2,
        duration_s=1,
        workdir=tmp_path,
    )
    assert result.tool == "wrk"
    assert result.requests > 0
    assert result.errors == 0  # 202 is a success for wrk


def test_parse_wrk_output_rejects_output_without_a_summary() -> None:
    """A wrk run whose script printed no summary line is an error, not zeros."""
    with pytest.raises(ValueError, match="BENCH_RESULT"):
        loadgen.parse_wrk_output("Running 1s test @ http://127.0.0.1:1/\n")


@given(st.floats(min_value=1.0, max_value=1e9, allow_nan=False))
def test_histogram_bucket_edges_bound_the_relative_error(latency_us: float) -> None:
    """A latency's bucket edge is at or above it and within 1/32 of it."""
    edge = LatencyHistogram.upper_edge(LatencyHistogram.bucket(latency_us))
    assert latency_us <= edge <= latency_us * (1 + 1 / 32)


@given(st.lists(st.floats(min_value=1.0, max_value=1e7), min_size=1, max_size=200))
def test_histogram_percentiles_are_ordered_and_cover_the_samples(values: list[float]) -> None:
    """p50 ≤ p99 ≤ the edge of the largest sample, and p99 is at least the true p50."""
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    p50, p99 = histogram.percentile(0.5), histogram.percentile(0.99)
    top = LatencyHistogram.upper_edge(LatencyHistogram.bucket(max(values)))
    assert p50 <= p99 <= top
    assert p50 >= sorted(values)[(len(values) + 1) // 2 - 1]


def test_plan_cpus_puts_servers_on_one_core_and_load_on_the_rest() -> None:
    """With two CPUs the servers share the first and the load gets the second."""
    plan = harness.plan_cpus([0, 1])
    assert (plan.server_cpus, plan.load_cpus) == (frozenset({0}), frozenset({1}))
    assert harness.plan_cpus([3]).server_cpus is None


def test_proc_readings_see_this_process() -> None:
    """CPU time and memory of the test process itself are read from /proc."""
    pids = harness.process_tree(os.getpid())
    assert pids[0] == os.getpid()
    assert harness.cpu_seconds(pids) > 0
    assert harness.memory_bytes(pids, "VmHWM") >= harness.memory_bytes(pids, "VmRSS") > 0


@pytest.mark.skipif(nginx.find_nginx() is None, reason="nginx not installed")
@pytest.mark.parametrize("role", ["upstream", "proxy"])
def test_nginx_configs_pass_nginx_t(tmp_path: Path, role: str) -> None:
    """Both rendered nginx configs are accepted by ``nginx -t`` with the prefix layout."""
    binary = nginx.find_nginx()
    assert binary is not None
    run_as = nginx.current_user()
    if role == "upstream":
        text = nginx.render_upstream_conf(tmp_path, 18080, run_as, sink_port=18082)
        argv = nginx.prepare(binary, tmp_path, text, blob_bytes=1024)
    else:
        text = nginx.render_proxy_conf(tmp_path, 18080, 18081, run_as)
        argv = nginx.prepare(binary, tmp_path, text)
    assert "listen 127.0.0.1:18080;" in text
    done = subprocess.run(  # noqa: S603 - argv built from the nginx path found on this host
        [*argv, "-t"], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr


def _sample(
    target: str, scenario: str, c: int, *, rps: float, p50: float, cpu: float | None
) -> report.Sample:
    return report.Sample(
        target=target,
        scenario=scenario,
        concurrency=c,
        round_no=0,
        measurement=Measurement("wrk", int(rps * 10), 0, 10.0, p50, p50 * 3),
        proxy_cpu_us_per_request=cpu,
        upstream_cpu_us_per_request=10.0,
        proxy_peak_rss_bytes=None if cpu is None else 40 * report.MIB,
    )


def _info() -> report.RunInfo:
    return report.RunInfo(
        date="2026-01-01 00:00:00 UTC",
        cpu_count=2,
        arrangement="servers on CPU 0, load on CPU 1",
        load_tool="wrk",
        upstream="nginx",
        duration_s=10,
        rounds=1,
        warmup_s=1,
        concurrencies=(1,),
        stream_bytes=200 * report.MIB,
        versions=("Python 3.11",),
        adapter_settings="ADAPTER_ROLLOUT_PERCENT=100",
    )


def test_report_renders_ratios_verdicts_and_missing_tool_rows() -> None:
    """The table carries every row, the ratios, the verdicts and a row for a missing tool."""
    samples = [
        _sample("direct", "GET", 1, rps=10_000, p50=80, cpu=None),
        _sample("adapter", "GET", 1, rps=5_000, p50=150, cpu=60),
        _sample("naive", "GET", 1, rps=2_500, p50=300, cpu=240),
        _sample("adapter", "POST 2 KB", 1, rps=4_000, p50=170, cpu=65),
        _sample("adapter", "rewrite", 1, rps=2_000, p50=400, cpu=200),
    ]
    streams = [
        report.StreamResult(
            "adapter", "download", 200 * report.MIB, 2.0, 50 * report.MIB, 58 * report.MIB, None
        ),
    ]
    missing = [report.MissingTarget("nginx", "nginx not installed (apt-get install nginx)")]
    text = report.render(_info(), samples, missing, streams, ["adapter / rewrite: HTTP 202"])
    assert "| nginx | all | all | nginx not installed (apt-get install nginx) |" in text
    assert "| GET | 1 | 0.50× | +70 | nginx missing | nginx missing | 0.25× | 2.00× |" in text
    assert "| 1 | 200.0 | 65.0 | +135 | 3.08× | 0.50× |" in text
    assert "| adapter | download | 200 | 2.00 | 100 | 50.0 | 58.0 | 8.0 | yes |" in text
    verdicts = {
        v.target: v.status for v in report.verdicts(report.summarise(samples), streams, (1,))
    }
    assert list(verdicts.values()) == ["**met**", "**met**", "**not met**", "**met**"]


def test_verdicts_say_partly_met_and_not_measured() -> None:
    """A bound met in some cells is partly met; a target without data is not measured."""
    samples = [
        _sample("adapter", "GET", 1, rps=1_000, p50=100, cpu=90),
        _sample("adapter", "GET", 16, rps=9_000, p50=900, cpu=50),
    ]
    found = report.verdicts(report.summarise(samples), [], (1, 16))
    assert found[0].status == "partly met (GET c=16)"
    assert [v.status for v in found[1:]] == ["not measured"] * 3

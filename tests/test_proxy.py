"""Pass-through through real sockets: a recording upstream, the adapter, a client."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web

from adapter.http.errors import ProxyStatus, UpstreamError
from adapter.http.proxy import (
    CONFIG,
    JOBS_SUBMIT_HANDLER,
    REQUEST_ID,
    UPSTREAM,
    relay_response,
    request_body,
    upstream_headers,
)
from adapter.log import configure_logging
from tests.conftest import (
    GZIP_PAYLOAD,
    AdapterFactory,
    RawTcpUpstream,
    RecordingUpstream,
    RunningAdapter,
    free_port,
    logged,
    raw_exchange,
)


@pytest.fixture(
    name="start_adapter",
    autouse=True,
    params=[pytest.param("true", id="lean"), pytest.param("false", id="aiohttp")],
)
def _start_adapter_on_both_paths(
    start_adapter: AdapterFactory, request: pytest.FixtureRequest
) -> AdapterFactory:
    """Every test here runs twice: through the lean relay and with ADAPTER_LEAN_RELAY=false."""
    lean_relay: str = request.param

    async def start(
        upstream_url: object, env: Mapping[str, str] | None = None, **kwargs: object
    ) -> RunningAdapter:
        return await start_adapter(
            upstream_url, {**(env or {}), "ADAPTER_LEAN_RELAY": lean_relay}, **kwargs
        )

    return start


def _get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: adapter.test", *extra, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/api/v1/jobs?limit=5", id="plain-query"),
        pytest.param("/a//b///c", id="double-slashes"),
        pytest.param("/a/../b/./c", id="dot-segments"),
        pytest.param("/api/v1/jobs/x;jsessionid=1;v=2", id="semicolons"),
        pytest.param("/files/a%2Fb/%2e%2E/%7Euser", id="percent-encoding-kept"),
        pytest.param("/q?b=2&a=1&&a=%20+x&=&flag", id="raw-query-order-and-empties"),
        pytest.param("/q?redirect=http://x/y?z=%3F&w=a@b:c", id="query-with-url"),
        pytest.param("//", id="only-slashes"),
        pytest.param("/trailing/", id="trailing-slash"),
        pytest.param("/utf8/%C3%A9%E2%82%AC", id="encoded-utf8"),
    ],
)
async def test_target_is_forwarded_byte_exact(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, target: str
) -> None:
    """Method, path and raw query reach the runner exactly as the client sent them."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(adapter.port, _get(target))
    assert response.status == 200
    assert upstream.last.method == "GET"
    assert upstream.last.raw_path == target


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
async def test_methods_and_bodies_pass(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    method: str,
) -> None:
    """Every method, including unknown ones, is forwarded with its body."""
    adapter = await start_adapter(upstream.url)
    body = b"payload-" + method.encode()
    async with http.request(method, adapter.url / "echo", data=body) as response:
        assert response.status == 200
    assert upstream.last.method == method
    assert upstream.last.body == body


async def test_options_preflight_passes(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A CORS preflight reaches the runner with its headers and its 204 comes back."""
    adapter = await start_adapter(upstream.url)
    headers = {
        "Origin": "https://projectbeacon.netlify.app",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-request-id",
    }
    async with http.options(adapter.url / "status" / "204", headers=headers) as response:
        assert response.status == 204
        assert await response.read() == b""
    assert upstream.last.method == "OPTIONS"
    assert upstream.last.headers["Origin"] == "https://projectbeacon.netlify.app"
    assert upstream.last.headers["Access-Control-Request-Method"] == "POST"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(_get("/status/204"), 204, id="204"),
        pytest.param(_get("/status/304", 'If-None-Match: "v1"'), 304, id="304"),
        pytest.param(
            b"HEAD /gzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, id="head"
        ),
    ],
)
async def test_no_body_responses(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, request_bytes: bytes, status: int
) -> None:
    """HEAD, 204 and 304 answers carry no body bytes on the wire."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(adapter.port, request_bytes)
    assert response.status == status
    assert response.raw_body == b""
    assert response.header("Transfer-Encoding") == []
    if status == 304:
        assert response.header("ETag") == ['"v1"']


async def test_head_keeps_content_length(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """HEAD returns the runner's Content-Length (the size a GET would have), no body."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(
        adapter.port, b"HEAD /gzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert response.header("Content-Length") == [str(len(gzip.compress(GZIP_PAYLOAD, mtime=0)))]
    assert response.header("Content-Encoding") == ["gzip"]


async def test_response_repeats_kept_and_hop_by_hop_removed(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """Three Set-Cookie arrive in order; Connection-nominated and hop-by-hop fields do not."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(adapter.port, _get("/cookies"))
    assert response.header("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"]
    assert response.header("X-Internal") == []
    assert response.header("Keep-Alive") == []
    assert response.header("Connection") == ["close"]  # ours, for this connection only


async def test_request_hop_by_hop_removed_and_repeats_kept(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """The runner never sees hop-by-hop or Connection-nominated request fields."""
    adapter = await start_adapter(upstream.url)
    await raw_exchange(
        adapter.port,
        _get(
            "/echo",
            "Accept: text/a",
            "X-Secret: hop-only",
            "Keep-Alive: timeout=5",
            "TE: trailers",
            "Proxy-Authorization: Basic cHJveHk6cHc=",
            "Accept: text/b",
            "Connection: X-Secret",
        ),
    )
    seen = upstream.last.headers
    assert seen.getall("Accept") == ["text/a", "text/b"]
    for name in ("X-Secret", "Keep-Alive", "TE", "Proxy-Authorization", "Upgrade"):
        assert name not in seen
    # The upstream leg is keep-alive; the client's "close" does not travel.
    assert seen.get("Connection", "keep-alive").lower() == "keep-alive"


async def test_connection_cannot_strip_framing_or_forwarding(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """A Connection header naming Content-Length or X-Forwarded-For removes neither."""
    adapter = await start_adapter(upstream.url)
    await raw_exchange(
        adapter.port,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Connection: close, Content-Length, X-Forwarded-For, X-Request-ID, Host\r\n"
        b"X-Request-ID: keep-me\r\n\r\nhello",
    )
    seen = upstream.last.headers
    assert upstream.last.body == b"hello"
    assert seen["Content-Length"] == "5"
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Request-ID"] == "keep-me"
    assert seen["Host"] == f"127.0.0.1:{upstream.url.port}"


async def test_forwarding_headers_and_request_id(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """Host is the upstream's, X-Forwarded-* are ours, spoofed XFF is dropped, and one
    generated X-Request-ID goes upstream and back."""
    adapter = await start_adapter(upstream.url)
    headers = {"Host": "portal.example.org", "X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
    async with http.get(adapter.url / "echo", headers=headers) as response:
        returned_id = response.headers["X-Request-ID"]
    seen = upstream.last.headers
    assert seen["Host"] == f"127.0.0.1:{upstream.url.port}"
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen["X-Real-IP"] == "127.0.0.1"
    assert seen["X-Forwarded-Host"] == "portal.example.org"
    assert seen["X-Forwarded-Proto"] == "http"
    assert re.fullmatch(r"[0-9a-f]{32}", returned_id)
    assert seen["X-Request-ID"] == returned_id


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("portal-req-42", True, id="valid"),
        pytest.param("r" * 128, True, id="128"),
        pytest.param("r" * 129, False, id="129"),
    ],
)
async def test_client_request_id(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    sent: str,
    kept: bool,
) -> None:
    """A 1-128 character X-Request-ID is kept end to end; a longer one is replaced."""
    adapter = await start_adapter(upstream.url)
    async with http.get(adapter.url / "echo", headers={"X-Request-ID": sent}) as response:
        returned = response.headers["X-Request-ID"]
    assert (returned == sent) is kept
    assert upstream.last.headers.getall("X-Request-ID") == [returned]


async def test_trusted_hops_put_real_client_first(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """With one trusted hop, the proxy-appended entry is the client; spoofs left of it go."""
    adapter = await start_adapter(upstream.url, {"ADAPTER_TRUSTED_PROXY_HOPS": "1"})
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"}
    async with http.get(adapter.url / "echo", headers=headers):
        pass
    assert upstream.last.headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert upstream.last.headers["X-Forwarded-Proto"] == "https"


async def test_client_ip_header(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """With ADAPTER_CLIENT_IP_HEADER, that header names the client; XFF claims are dropped."""
    adapter = await start_adapter(upstream.url, {"ADAPTER_CLIENT_IP_HEADER": "Fly-Client-IP"})
    headers = {"Fly-Client-IP": "198.51.100.4", "X-Forwarded-For": "6.6.6.6"}
    async with http.get(adapter.url / "echo", headers=headers):
        pass
    assert upstream.last.headers["X-Forwarded-For"] == "198.51.100.4, 127.0.0.1"


async def test_gzip_request_body_arrives_byte_identical(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A gzip request body is neither inflated nor relabelled on its way to the runner."""
    adapter = await start_adapter(upstream.url)
    compressed = gzip.compress(GZIP_PAYLOAD, mtime=0)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with http.post(adapter.url / "echo", data=compressed, headers=headers) as response:
        assert response.status == 200
    assert upstream.last.body == compressed
    assert upstream.last.headers["Content-Encoding"] == "gzip"
    assert upstream.last.headers["Content-Length"] == str(len(compressed))


async def test_gzip_response_arrives_byte_identical(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A gzip response reaches the client compressed, with its Content-Encoding and length."""
    adapter = await start_adapter(upstream.url)
    headers = {"Accept-Encoding": "gzip"}
    async with http.get(adapter.url / "gzip", headers=headers) as response:
        raw = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Length"] == str(len(raw))
    assert raw == gzip.compress(GZIP_PAYLOAD, mtime=0)
    assert gzip.decompress(raw) == GZIP_PAYLOAD


async def test_chunked_response_stays_chunked(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """An upstream chunked answer goes out chunked, without a Content-Length."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(adapter.port, _get("/chunked"))
    assert response.header("Transfer-Encoding") == ["chunked"]
    assert response.header("Content-Length") == []
    assert response.raw_body.endswith(b"0\r\n\r\n")
    assert b"three" in response.raw_body


async def test_known_length_response_keeps_content_length(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """An upstream Content-Length is passed on and the body is not re-chunked."""
    adapter = await start_adapter(upstream.url)
    response = await raw_exchange(adapter.port, _get("/echo"))
    assert response.header("Content-Length") == [str(len(response.raw_body))]
    assert response.header("Transfer-Encoding") == []


async def test_request_framing_is_kept(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A chunked upload stays chunked upstream; a sized upload keeps its Content-Length."""
    adapter = await start_adapter(upstream.url)

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"alpha-", b"beta-", b"gamma"):
            yield part

    async with http.post(adapter.url / "echo", data=parts()):
        pass
    assert upstream.last.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in upstream.last.headers
    assert upstream.last.body == b"alpha-beta-gamma"

    async with http.post(adapter.url / "echo", data=b"x" * 1000):
        pass
    assert upstream.last.headers["Content-Length"] == "1000"
    assert "Transfer-Encoding" not in upstream.last.headers


async def test_expect_100_continue(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """The adapter answers 100 Continue, then forwards the body (without Expect)."""
    adapter = await start_adapter(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"hello")
        await writer.drain()
        async with asyncio.timeout(5):
            final = await reader.read()
    finally:
        writer.close()
    assert final.startswith(b"HTTP/1.1 200")
    assert upstream.last.body == b"hello"
    assert "Expect" not in upstream.last.headers


async def test_redirects_are_not_followed(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A 3xx from the runner goes back to the client as is."""
    adapter = await start_adapter(upstream.url)
    async with http.get(adapter.url / "status" / "302", allow_redirects=False) as response:
        assert response.status == 302
    assert len(upstream.requests) == 1


async def test_no_cookie_jar_between_clients(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """Cookies set for one client are never replayed by the adapter for another."""
    adapter = await start_adapter(upstream.url)
    for _ in range(2):
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as fresh,
            fresh.get(adapter.url / "cookies") as response,
        ):
            assert len(response.headers.getall("Set-Cookie")) == 3
    assert all("Cookie" not in recorded.headers for recorded in upstream.requests)


async def test_runner_health_and_metrics_pass_through(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """The proxy port serves nothing of its own: /health and /metrics are the runner's."""
    adapter = await start_adapter(upstream.url)
    for path in ("/health", "/metrics", "/api/v1/metrics", "/healthz", "/readyz"):
        async with http.get(adapter.url.with_path(path)):
            pass
    assert [r.raw_path for r in upstream.requests] == [
        "/health",
        "/metrics",
        "/api/v1/metrics",
        "/healthz",
        "/readyz",
    ]


async def test_refused_upstream_is_502(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """Connection refused gives 502 upstream_unavailable, Proxy-Status, and a metric."""
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    async with http.post(adapter.url / "api" / "v1" / "jobs", data=b"{}") as response:
        assert response.status == 502
        body = orjson.loads(await response.read())
        proxy_status = response.headers["Proxy-Status"]
        request_id = response.headers["X-Request-ID"]
    assert body == {
        "error": "The runner could not be reached.",
        "error_code": "upstream_unavailable",
        "request_id": request_id,
    }
    assert proxy_status == "beacon-adapter; error=connection_refused"
    errors = adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": "connect"})
    assert errors == 1.0


async def test_slow_upstream_is_504(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """No upstream progress for ADAPTER_UPSTREAM_TIMEOUT gives 504 upstream_timeout."""
    adapter = await start_adapter(upstream.url, {"ADAPTER_UPSTREAM_TIMEOUT": "0.3"})
    async with http.get(adapter.url.with_path("/slow").with_query(seconds="5")) as response:
        assert response.status == 504
        body = orjson.loads(await response.read())
        assert response.headers["Proxy-Status"] == "beacon-adapter; error=http_response_timeout"
    assert body["error_code"] == "upstream_timeout"
    errors = adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": "timeout"})
    assert errors == 1.0


async def test_slow_but_moving_download_is_not_cut(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """The upstream timeout measures silence, not total time: a slow answer under it passes."""
    adapter = await start_adapter(upstream.url, {"ADAPTER_UPSTREAM_TIMEOUT": "1"})
    async with http.get(adapter.url.with_path("/slow").with_query(seconds="0.5")) as response:
        assert response.status == 200
        assert await response.read() == b"slow done"


class _AnswersThenDrops(RawTcpUpstream):
    """A raw TCP runner that answers the first ``answered`` requests of each connection
    (keep-alive), then reads the next request whole and closes without answering: with
    ``answered=1``, a runner that timed an idle connection out just as it was reused."""

    def __init__(self, answered: int) -> None:
        self.answered = answered
        self.connections = 0
        self.requests: list[tuple[int, str, bytes]] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            for turn in range(self.answered + 1):
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                body = await reader.readexactly(int(match[1]) if match else 0)
                line = head.split(b"\r\n", 1)[0].decode()
                self.requests.append((connection, line, body))
                if turn == self.answered:
                    break
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                writer.write(answer if line.startswith("HEAD ") else answer + b"ok")
                await writer.drain()
        writer.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
async def test_reset_on_a_fresh_connection_is_502_and_never_retried(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession, method: str
) -> None:
    """A runner that drops a new connection gives 502 at once: a fresh connection that
    fails proves nothing stale, so not even a GET is sent again."""
    dropping = _AnswersThenDrops(answered=0)
    async with dropping as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}")
        async with http.request(method, adapter.url / "x", data=b"body") as response:
            assert response.status == 502
            assert response.headers["Proxy-Status"].endswith("error=connection_terminated")
    assert [(c, line) for c, line, _ in dropping.requests] == [(1, f"{method} /x HTTP/1.1")]
    errors = adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": "reset"})
    assert errors == 1.0


@pytest.mark.parametrize(
    ("method", "body", "resent"),
    [
        pytest.param("GET", None, True, id="get"),
        pytest.param("HEAD", None, True, id="head"),
        pytest.param("GET", b"q" * 100, True, id="get-small-body-held"),
        pytest.param("GET", b"q" * 70_000, False, id="get-large-body-streamed"),
        pytest.param("PUT", b"x", False, id="put"),
        pytest.param("POST", b"x", False, id="post"),
    ],
)
async def test_stale_pooled_connection(
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    method: str,
    body: bytes | None,
    resent: bool,
) -> None:
    """The pool is warmed for real (the runner sees the first two requests on ONE
    connection), then the runner drops that connection under the next request: a safe
    request held whole is sent once more on a fresh connection, anything else is 502."""
    upstream = _AnswersThenDrops(answered=2)
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}")
        statuses = []
        for _ in range(2):  # warm: the second request rides the pooled connection
            async with http.get(adapter.url / "warm") as response:
                assert await response.read() == b"ok"
        assert [c for c, _, _ in upstream.requests] == [1, 1]
        async with http.request(method, adapter.url / "job", data=body) as response:
            await response.read()
            statuses.append(response.status)
    seen = [(c, line, sent) for c, line, sent in upstream.requests[2:]]
    expected = (method + " /job HTTP/1.1", body or b"")
    if resent:
        assert statuses == [200]
        assert seen == [(1, *expected), (2, *expected)]  # the same bytes, on a new connection
    else:
        assert statuses == [502]
        assert seen == [(1, *expected)]
    errors = adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": "reset"})
    assert errors == (0.0 if resent else 1.0)


async def test_upstream_failure_mid_body_aborts_client(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """A runner that dies mid-body makes the client see a broken body, never a short one."""
    adapter = await start_adapter(upstream.url)
    async with http.get(adapter.url / "truncated") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    await asyncio.sleep(0.05)
    counted = sum(
        adapter.registry.get_sample_value("adapter_upstream_errors_total", {"kind": k}) or 0.0
        for k in ("reset", "protocol")
    )
    assert counted == 1.0


async def test_client_disconnect_cancels_upstream(
    upstream: RecordingUpstream, start_adapter: AdapterFactory
) -> None:
    """When the client goes away mid-response, the upstream request is cancelled too."""
    adapter = await start_adapter(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    writer.write(b"GET /drip HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        await reader.readuntil(b"first chunk")
    writer.close()
    async with asyncio.timeout(5):
        await upstream.cancelled.wait()
    for _ in range(500):  # bounded: up to 5 s for the handler to unwind
        if adapter.registry.get_sample_value("adapter_inflight_requests") == 0.0:
            break
        await asyncio.sleep(0.01)
    assert adapter.registry.get_sample_value("adapter_inflight_requests") == 0.0


async def test_jobs_submit_passes_through_without_interceptor(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """With no interceptor installed, POST /api/v1/jobs is an ordinary pass-through."""
    adapter = await start_adapter(upstream.url)
    async with http.post(adapter.url / "api" / "v1" / "jobs", data=b'{"id":"j1"}') as response:
        assert response.status == 200
    assert (upstream.last.method, upstream.last.raw_path) == ("POST", "/api/v1/jobs")
    assert upstream.last.body == b'{"id":"j1"}'


async def _interceptor(request: web.Request) -> web.StreamResponse:
    """What a rewrite handler looks like: peek at the body, then reuse the primitives."""
    prefix = await request.content.readexactly(4)
    headers = upstream_headers(request, request.app[CONFIG], request[REQUEST_ID])
    upstream = await request.app[UPSTREAM].send(
        "POST", "/api/v1/jobs/cross-region", headers, request_body(request, prefix)
    )
    return await relay_response(request, upstream, extra_headers={"X-Adapter-Decision": "test"})


async def test_interceptor_handles_only_post_jobs(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """An installed interceptor gets exactly POST /api/v1/jobs and can stream the body on."""
    adapter = await start_adapter(
        upstream.url, prepare=lambda app: app.__setitem__(JOBS_SUBMIT_HANDLER, _interceptor)
    )
    async with http.post(adapter.url / "api" / "v1" / "jobs", data=b'{"id":"j1"}') as response:
        assert response.headers["X-Adapter-Decision"] == "test"
        assert response.status == 200
    assert upstream.last.raw_path == "/api/v1/jobs/cross-region"
    assert upstream.last.body == b'{"id":"j1"}'
    assert upstream.last.headers["X-Request-ID"] == response.headers["X-Request-ID"]
    for method, path in (("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs/x/cancel")):
        async with http.request(method, adapter.url.with_path(path), data=b"{}") as response:
            assert "X-Adapter-Decision" not in response.headers
        assert (upstream.last.method, upstream.last.raw_path) == (method, path)


async def _broken(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("bug in an interceptor")


async def _timing_out(request: web.Request) -> web.StreamResponse:
    raise UpstreamError(ProxyStatus.HTTP_RESPONSE_TIMEOUT, "test")


@pytest.mark.parametrize(
    ("handler", "status", "error_code", "proxy_error"),
    [
        pytest.param(_broken, 502, "adapter_error", "proxy_internal_error", id="bug"),
        pytest.param(_timing_out, 504, "upstream_timeout", "http_response_timeout", id="upstream"),
    ],
)
async def test_handler_failures_become_json_errors(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    handler: object,
    status: int,
    error_code: str,
    proxy_error: str,
) -> None:
    """An exception in any handler gives a JSON 502/504 with Proxy-Status, never a bare 500."""
    adapter = await start_adapter(
        upstream.url, prepare=lambda app: app.__setitem__(JOBS_SUBMIT_HANDLER, handler)
    )
    async with http.post(adapter.url / "api" / "v1" / "jobs", data=b"{}") as response:
        assert response.status == status
        body = orjson.loads(await response.read())
        assert response.headers["Proxy-Status"] == f"beacon-adapter; error={proxy_error}"
        assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["error_code"] == error_code


async def test_request_metrics(
    upstream: RecordingUpstream, start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """Each request is counted by method, fixed route and code, and timed."""
    adapter = await start_adapter(upstream.url)
    for path in ("/health", "/api/v1/jobs/abc", "/api/v1/jobs/def"):
        async with http.get(adapter.url.with_path(path)):
            pass
    async with http.request("PROPFIND", adapter.url / "x"):
        pass
    sample = adapter.registry.get_sample_value
    assert sample("adapter_requests_total", {"method": "GET", "route": "health", "code": "200"})
    assert (
        sample("adapter_requests_total", {"method": "GET", "route": "other", "code": "200"}) == 2.0
    )
    assert sample("adapter_requests_total", {"method": "_OTHER", "route": "other", "code": "200"})
    assert (
        sample("adapter_request_duration_seconds_count", {"method": "GET", "route": "other"}) == 2.0
    )
    assert sample("adapter_inflight_requests") == 0.0


async def test_canonical_log_line(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    http: aiohttp.ClientSession,
    log_lines: io.BytesIO,
) -> None:
    """One JSON line per request with the fields operators search by."""
    adapter = await start_adapter(upstream.url)
    async with http.post(
        adapter.url.with_path("/echo").with_query(token="secret"),
        data=b"12345",
        headers={"X-Request-ID": "log-test-1"},
    ) as response:
        body = await response.read()
    lines = logged(log_lines, "request")
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "log-test-1"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/echo", 200)
    assert (line["bytes_in"], line["bytes_out"]) == (5, len(body))
    assert line["client_ip"] == "127.0.0.1"
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float)
    assert isinstance(line["upstream_ms"], float)
    assert "secret" not in log_lines.getvalue().decode()


async def test_every_line_of_a_request_carries_its_id(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession, log_lines: io.BytesIO
) -> None:
    """The upstream-failure line and the canonical line both carry the request id."""
    adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
    async with http.get(adapter.url / "x", headers={"X-Request-ID": "trace-me"}) as response:
        assert response.status == 502
    request_lines = [line for line in logged(log_lines) if line.get("component") != "adapter.admin"]
    events = {line["event"] for line in request_lines}
    assert {"upstream_failed", "request"} <= events
    assert all(line.get("request_id") == "trace-me" for line in request_lines)


async def test_canonical_line_follows_the_log_level(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession
) -> None:
    """At warning level the per-request line is skipped; warnings still carry the id."""
    buffer = io.BytesIO()
    configure_logging("warning", "json", binary_stream=buffer)
    try:
        adapter = await start_adapter(f"http://127.0.0.1:{free_port()}")
        async with http.get(adapter.url / "x", headers={"X-Request-ID": "quiet-1"}) as response:
            assert response.status == 502
    finally:
        structlog.reset_defaults()
    lines = logged(buffer)
    assert [line["event"] for line in lines] == ["upstream_failed"]
    assert lines[0]["request_id"] == "quiet-1"

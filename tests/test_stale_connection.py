"""A pooled keep-alive connection the runner closed: safe requests retry once, others never."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from adapter.http.proxy import is_stale_connection_failure
from tests.conftest import AdapterFactory, RawTcpUpstream


class _ClosesSecondRequest(RawTcpUpstream):
    """Answers the first request of each connection (keep-alive), then reads the second
    request of that connection and closes without answering: a runner that timed the idle
    connection out just as the proxy reused it."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, str]] = []
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            for turn in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                first = head.split(b"\r\n", 1)[0].decode()
                self.requests.append((connection, first))
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if turn == 1:
                    break
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                writer.write(answer if first.startswith("HEAD ") else answer + b"ok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("HEAD", True), ("POST", False)])
async def test_stale_pooled_connection(
    start_adapter: AdapterFactory, http: aiohttp.ClientSession, method: str, retried: bool
) -> None:
    """A safe request on a connection the runner dropped is sent again on a fresh one;
    a POST that may have reached the runner is answered 502 and never resent."""
    upstream = _ClosesSecondRequest()
    async with upstream as port:
        adapter = await start_adapter(f"http://127.0.0.1:{port}")
        data = b"x" if method == "POST" else None
        statuses = []
        for _ in range(2):
            async with http.request(method, adapter.url / "job", data=data) as response:
                await response.read()
                statuses.append(response.status)
    if retried:
        assert statuses == [200, 200]
        # The second request: once on the pooled connection (dropped), once on a new one.
        assert [c for c, _ in upstream.requests] == [1, 1, 2]
    else:
        assert statuses == [200, 502]
        assert [c for c, _ in upstream.requests] == [1, 1]


@pytest.mark.parametrize(
    ("method", "body", "exc", "reused", "expected"),
    [
        pytest.param("GET", None, aiohttp.ServerDisconnectedError(), True, True, id="get-stale"),
        pytest.param("GET", None, aiohttp.ServerDisconnectedError(), False, False, id="fresh"),
        pytest.param("PUT", b"x", aiohttp.ServerDisconnectedError(), True, False, id="put"),
        pytest.param("POST", b"x", aiohttp.ServerDisconnectedError(), True, False, id="post"),
        pytest.param("GET", None, TimeoutError(), True, False, id="timeout"),
    ],
)
def test_retry_rule(
    method: str, body: bytes | None, exc: BaseException, reused: bool, expected: bool
) -> None:
    """Only a safe method, without a streamed body, failing on a reused connection retries."""
    assert is_stale_connection_failure(method, body, exc, reused) is expected

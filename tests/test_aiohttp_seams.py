"""What the adapter assumes of aiohttp's internals, one test per seam.

When one of these fails after an aiohttp upgrade, the message names the seam; the seam's
docstring (adapter/http/aiohttp_seams.py, or tests.conftest.connector_counts) says what
it relies on. The behaviour behind each seam is tested through real sockets elsewhere
(test_relay.py, test_proxy.py, the reliability suite).
"""

from __future__ import annotations

import inspect

import aiohttp
import pytest
from aiohttp import web

from adapter.http.aiohttp_seams import (
    WRITTEN_AGAINST,
    ServerStandIn,
    ServerWrappingRunner,
    disable_builtin_retry,
)
from adapter.http.relay import RelayServer
from tests.conftest import connector_counts

_UPGRADED = f"aiohttp {aiohttp.__version__} (seams written against {WRITTEN_AGAINST})"
# web.Server's public methods in aiohttp 3.14.5: the runner calls the first three and
# the protocol factory call; RequestHandler calls the last two on its own manager (the
# app's real server, never the stand-in).
_SERVER_API = {"connections", "pre_shutdown", "shutdown", "connection_made", "connection_lost"}
_CALLED_BY_RUNNER = ("__call__", "connections", "pre_shutdown", "shutdown")


def test_server_stand_in_covers_what_the_runner_calls() -> None:
    """Seam 1: web.Server has no public method the stand-in does not know of, and the
    relay defines every one aiohttp's runner and sites call."""
    public = {name for name in vars(web.Server) if not name.startswith("_")}
    assert public == _SERVER_API, (
        f"{_UPGRADED}: web.Server's public API changed ({sorted(public ^ _SERVER_API)}); "
        "check that RelayServer (ServerStandIn, never initialised as a Server) defines "
        "whatever aiohttp's runner or sites now call"
    )
    for name in _CALLED_BY_RUNNER:
        assert name in vars(RelayServer), f"RelayServer must define {name} (ServerStandIn)"
    shutdown = inspect.signature(web.Server.shutdown)
    assert list(shutdown.parameters) == ["self", "timeout"], (
        f"{_UPGRADED}: web.Server.shutdown{shutdown}; RelayServer.shutdown takes (timeout)"
    )
    runner_cleanup = inspect.getsource(web.BaseRunner.cleanup)
    for call in ("_server.pre_shutdown()", "_server.shutdown("):
        assert call in runner_cleanup, f"{_UPGRADED}: BaseRunner.cleanup no longer calls {call}"
    assert issubclass(RelayServer, ServerStandIn)


def test_app_runner_builds_its_server_in_make_server() -> None:
    """Seam 2: AppRunner.setup still gets its server from the coroutine _make_server()."""
    make_server = getattr(web.AppRunner, "_make_server", None)
    gone = f"{_UPGRADED}: web.AppRunner._make_server is gone or no longer a coroutine; "
    gone += "ServerWrappingRunner cannot put the lean relay in front of the app"
    assert make_server is not None, gone
    assert inspect.iscoroutinefunction(make_server), gone
    assert list(inspect.signature(make_server).parameters) == ["self"], (
        f"{_UPGRADED}: AppRunner._make_server{inspect.signature(make_server)} changed"
    )
    assert "self._server = await self._make_server()" in inspect.getsource(web.BaseRunner.setup), (
        f"{_UPGRADED}: BaseRunner.setup no longer takes its server from _make_server()"
    )
    assert "_make_server" in vars(ServerWrappingRunner)


async def test_client_session_retry_switch() -> None:
    """Seam 3: ClientSession still has _retry_connection, on by default, and reads it
    before resending an idempotent request."""
    async with aiohttp.ClientSession() as session:
        assert getattr(session, "_retry_connection", None) is True, (
            f"{_UPGRADED}: ClientSession._retry_connection is gone or not on by default"
        )
        disable_builtin_retry(session)
        assert session._retry_connection is False
    assert "self._retry_connection" in inspect.getsource(aiohttp.ClientSession._request), (
        f"{_UPGRADED}: ClientSession._request no longer reads _retry_connection; aiohttp may "
        "resend PUT and DELETE behind the adapter's back (adapter/http/retry.py)"
    )


def test_disable_builtin_retry_fails_loudly_without_the_switch() -> None:
    """Seam 3: an aiohttp without the switch stops the adapter at startup, not silently."""

    class NoSwitch:
        pass

    with pytest.raises(RuntimeError, match="_retry_connection"):
        disable_builtin_retry(NoSwitch())  # type: ignore[arg-type]


async def test_connector_counts_reads_the_pool() -> None:
    """Seam 4 (tests only): TCPConnector still keeps _acquired (a set) and _conns (a
    dict of idle connections per key)."""
    connector = aiohttp.TCPConnector()
    try:
        acquired = getattr(connector, "_acquired", None)
        conns = getattr(connector, "_conns", None)
        changed = f"{_UPGRADED}: TCPConnector._acquired / _conns changed; fix connector_counts"
        assert isinstance(acquired, set), changed
        assert isinstance(conns, dict), changed
        assert connector_counts(connector) == (0, 0)
    finally:
        await connector.close()

"""Where the adapter relies on aiohttp beyond its public API: each place is one name here.

Written against aiohttp 3.14.5 (``WRITTEN_AGAINST``). tests/test_aiohttp_seams.py checks
what each seam assumes and names the seam when an aiohttp upgrade breaks it; read the
docstring below before changing the pin. (Tests read the client connector's pool through
``tests.conftest.connector_counts``, the fourth seam.)
"""

from __future__ import annotations

from typing import Final

import aiohttp
from aiohttp import web

WRITTEN_AGAINST: Final = "3.14.5"


class ServerStandIn(web.Server):
    """Seam 1: a protocol factory that ``web.AppRunner`` and its sites take for their
    ``web.Server``, without running ``web.Server.__init__``.

    The lean relay is the proxy port's protocol factory and hands connections to the
    app's real server; it has none of a Server's handler state, so building one would
    only create a second, unused request-handler setup. What aiohttp's runner and sites
    call on their server (3.14.5): ``server()`` as the protocol factory (``BaseSite.start``
    passes it to ``loop.create_server``), ``pre_shutdown()`` and ``shutdown(timeout)``
    (``BaseRunner.cleanup``), and ``connections`` (public). A subclass defines all four;
    any other Server method would find no state and fail.
    """

    def __init__(self) -> None:  # web.Server.__init__ deliberately not called
        pass


class ServerWrappingRunner(web.AppRunner):
    """Seam 2: an ``AppRunner`` whose server is wrapped, through the private coroutine
    ``AppRunner._make_server`` (it starts the app and returns the app's Server; there is
    no public hook between the two). Startup, shutdown and cleanup stay AppRunner's own.
    """

    async def _make_server(self) -> web.Server:
        return self.wrap_server(await super()._make_server())

    def wrap_server(self, inner: web.Server) -> web.Server:
        """The server the sites serve: ``inner`` itself, unless a subclass wraps it."""
        return inner


def disable_builtin_retry(session: aiohttp.ClientSession) -> None:
    """Seam 3: turn off aiohttp's own resend of idempotent requests (PUT and DELETE too)
    after a dropped connection, through the private ``ClientSession._retry_connection``
    (aiohttp's test client does the same; there is no public option). The adapter makes
    that call itself (``adapter.http.retry``)."""
    if not hasattr(session, "_retry_connection"):
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: ClientSession has no _retry_connection "
            f"(seam written against {WRITTEN_AGAINST}); see adapter/http/aiohttp_seams.py"
        )
    session._retry_connection = False


__all__ = ("WRITTEN_AGAINST", "ServerStandIn", "ServerWrappingRunner", "disable_builtin_retry")

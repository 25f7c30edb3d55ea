"""In front of aiohttp's request handler: nothing after the request that closes the connection.

Why: a client may send more bytes after an HTTP/1.0 request without keep-alive or a
request with ``Connection: close``. aiohttp's parser then answers ``400 Data after
Connection: close`` and drops the request itself; nginx and Go (the runner) answer the
request and close. This protocol passes aiohttp's handler every byte up to the end of
that last request (``RequestStreamEnd``) and drops the rest, so the request is answered
and the connection then closes, on both paths (the lean relay closes after such a
request itself, and hands its other connections over through here).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from adapter.http.http1 import STREAM_CONTINUES, STREAM_UNTRACKED, RequestStreamEnd


class LastRequestGuard(asyncio.Protocol):
    """Forwards every protocol event to ``handler``, cutting the client's bytes after
    the request that ends the connection."""

    __slots__ = ("_ended", "_stream", "handler")

    def __init__(self, handler: web.RequestHandler) -> None:
        self.handler = handler
        self._stream: RequestStreamEnd | None = RequestStreamEnd()
        self._ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        stream = self._stream
        if stream is not None:
            end = stream.feed(data)
            if end == STREAM_UNTRACKED:
                self._stream = None
            elif end != STREAM_CONTINUES:
                self._ended = True
                data = data[:end]
                if not data:
                    return
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()


class GuardedServer(web.Server):
    """aiohttp's server for the proxy app with a ``LastRequestGuard`` in front of each
    connection (the path when the lean relay is off)."""

    def __init__(self, inner: web.Server) -> None:
        # Server.__init__ is not called: every method a runner or site uses is defined here.
        self.inner = inner
        self.requests_count = 0

    def __call__(self) -> LastRequestGuard:  # type: ignore[override]
        return LastRequestGuard(self.inner())

    @property
    def connections(self) -> list[web.RequestHandler]:
        """aiohttp's connections."""
        return self.inner.connections

    def pre_shutdown(self) -> None:
        """Draining starts: aiohttp closes its idle connections."""
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - Server's signature
        """Wait up to ``timeout`` for aiohttp's handlers to finish."""
        await self.inner.shutdown(timeout)


__all__ = ("GuardedServer", "LastRequestGuard")

"""aiohttp's client pool, held to the lean relay's isolation rule.

Why: aiohttp's client keeps a pooled connection that received bytes after its answer
ended, parses them as the next answer, and hands that to whichever request next borrows
the connection: one runner connection out of step would answer another client's request.
The rule here is the relay's: a runner connection is reused only if its byte stream
ended exactly where the answer did, and nothing arrived while no request was waiting.
Bytes past the end are dropped, never parsed, and the connection is closed instead of
reused. (A stray answer already in flight when the next request is written cannot be
told apart from the real one by any HTTP/1.1 client; that window is the runner's.)

The seam: ``TCPConnector``'s protocol factory (``_factory``) and aiohttp's
``ResponseHandler``, whose ``set_response_params`` marks the start of each request.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler

from adapter.http.http1 import (
    ANSWER_CONTINUES,
    ENDS_WITH_CONNECTION,
    MAX_RESPONSE_HEAD,
    AnswerEnd,
    ResponseHeadTooLarge,
)


class ResponseHeadSectionTooLarge(aiohttp.ClientError):
    """The runner's response head is over ``MAX_RESPONSE_HEAD`` bytes."""


class IsolatedResponseHandler(ResponseHandler):
    """aiohttp's response protocol, fed only the bytes of the answer it waits for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # Armed per request; None while no answer is expected.
        self._answer: AnswerEnd | None = None
        # After a 101 or a close-delimited answer the connection's bytes are not HTTP
        # answers any more: they go to aiohttp untouched (it never pools the connection).
        self._untracked = False
        self._out_of_step = False

    def set_response_params(self, **kwargs: Any) -> None:
        """A request is about to be written: its answer is the next thing expected."""
        super().set_response_params(**kwargs)
        if not self._untracked and not self._out_of_step:
            # aiohttp skips the payload of a HEAD request's answer only (EMPTY_BODY_METHODS);
            # any other method's answer is framed alike.
            self._answer = AnswerEnd("HEAD" if kwargs.get("skip_payload") else "GET")

    def data_received(self, data: bytes) -> None:
        if self._untracked:
            super().data_received(data)
            return
        answer = self._answer
        if answer is None:
            if data:
                self._stray()
            return
        try:
            end = answer.feed(data)
        except ResponseHeadTooLarge as exc:
            self._answer = None
            self._out_of_step = True
            self.set_exception(ResponseHeadSectionTooLarge(str(exc)))
            self.close()
            return
        if end == ANSWER_CONTINUES:
            super().data_received(data)
        elif end == ENDS_WITH_CONNECTION:
            self._answer = None
            self._untracked = True
            self.force_close()
            super().data_received(data)
        else:
            self._answer = None
            super().data_received(data if end == len(data) else data[:end])
            if end < len(data):
                self._stray()

    def _stray(self) -> None:
        """Bytes nobody asked for: drop them and never reuse the connection. Closed at
        once if no answer is waiting to be read, else when its request releases it."""
        self._out_of_step = True
        self.force_close()
        if not self._buffer and self._payload_is_done():
            self.close()

    def _payload_is_done(self) -> bool:
        payload = self._payload
        return payload is None or payload.is_eof()

    def is_connected(self) -> bool:
        """A connection out of step is not offered for reuse (the pool closes it)."""
        return not self._out_of_step and super().is_connected()


class IsolatingConnector(aiohttp.TCPConnector):
    """TCPConnector whose connections are ``IsolatedResponseHandler``s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = cast(
            "functools.partial[ResponseHandler]",
            functools.partial(IsolatedResponseHandler, loop=self._loop),
        )


__all__ = (
    "MAX_RESPONSE_HEAD",
    "IsolatedResponseHandler",
    "IsolatingConnector",
    "ResponseHeadSectionTooLarge",
)

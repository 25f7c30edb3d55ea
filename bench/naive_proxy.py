"""The naive baseline: the reverse proxy most people would write with stock aiohttp.

One ``ClientSession``, ``session.request`` per call, the whole request and response
bodies read into memory, a fresh ``web.Response``. Only the hop-by-hop headers and the
framing headers aiohttp recomputes are dropped. It exists so the report can say how
much the adapter's proxy path costs compared with the obvious code.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict
from yarl import URL

UPSTREAM_KEY: Final = web.AppKey("upstream", URL)
SESSION_KEY: Final = web.AppKey("session", ClientSession)

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing headers aiohttp sets itself.
_DROP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
        "host",
    }
)


def _forwardable(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _DROP)


async def _proxy(request: web.Request) -> web.Response:
    session = request.app[SESSION_KEY]
    url = request.app[UPSTREAM_KEY].join(URL(request.raw_path, encoded=True))
    body = await request.read()
    async with session.request(
        request.method,
        url,
        headers=_forwardable(CIMultiDict(request.headers)),
        data=body or None,
        allow_redirects=False,
    ) as upstream:
        payload = await upstream.read()
        return web.Response(
            status=upstream.status,
            headers=_forwardable(CIMultiDict(upstream.headers)),
            body=payload,
        )


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with ClientSession(
        connector=TCPConnector(limit=0),
        auto_decompress=False,
        timeout=ClientTimeout(total=60),
    ) as session:
        app[SESSION_KEY] = session
        yield


def create_naive_proxy_app(upstream: URL) -> web.Application:
    """Build the naive proxy in front of ``upstream`` (bodies up to 1 GiB so streams fit)."""
    app = web.Application(client_max_size=1024**3)
    app[UPSTREAM_KEY] = upstream
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    return app


def main() -> int:
    """Serve the naive proxy on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive_proxy")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8081")
    args = parser.parse_args()
    web.run_app(
        create_naive_proxy_app(URL(args.upstream)),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

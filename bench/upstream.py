"""The bench upstream: a small, fast aiohttp app standing in for the runner.

It answers every GET and POST with a short JSON body, ``POST /api/v1/jobs/cross-region``
with 202 (so a rewritten job is visible by its status), serves a large zero-filled
download and swallows a large upload, both streamed so the upstream itself stays flat.
The harness prefers Debian's nginx for this role (bench/nginx.py) because it costs far
less CPU on the core it shares with the proxy; this app is the fallback.
"""

from __future__ import annotations

import argparse
from typing import Final

from aiohttp import web

SMALL_BODY: Final = b'{"status":"ok","service":"bench-upstream"}'
ACCEPTED_BODY: Final = b'{"status":"accepted","service":"bench-upstream"}'
CROSS_REGION_PATH: Final = "/api/v1/jobs/cross-region"
BLOB_PATH: Final = "/bench/blob"
UPLOAD_PATH: Final = "/bench/upload"
CHUNK: Final = 64 * 1024
DEFAULT_BLOB_BYTES: Final = 200 * 1024 * 1024
_ZEROS: Final = bytes(CHUNK)

BLOB_BYTES_KEY: Final = web.AppKey("blob_bytes", int)


async def _small(request: web.Request) -> web.Response:
    if request.can_read_body:
        await request.read()
    return web.Response(body=SMALL_BODY, content_type="application/json")


async def _accepted(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=ACCEPTED_BODY, content_type="application/json")


async def _blob(request: web.Request) -> web.StreamResponse:
    size = request.app[BLOB_BYTES_KEY]
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    remaining = size
    while remaining > 0:
        chunk = _ZEROS if remaining >= CHUNK else _ZEROS[:remaining]
        await response.write(chunk)
        remaining -= len(chunk)
    await response.write_eof()
    return response


async def _upload(request: web.Request) -> web.Response:
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        received += len(chunk)
    body = b'{"status":"ok","received":%d}' % received
    return web.Response(body=body, content_type="application/json")


def create_upstream_app(*, blob_bytes: int = DEFAULT_BLOB_BYTES) -> web.Application:
    """Build the upstream app; the large routes accept bodies of any size."""
    app = web.Application(client_max_size=1024**3)
    app[BLOB_BYTES_KEY] = blob_bytes
    app.router.add_post(CROSS_REGION_PATH, _accepted)
    app.router.add_get(BLOB_PATH, _blob)
    app.router.add_post(UPLOAD_PATH, _upload)
    app.router.add_route("*", "/{tail:.*}", _small)
    return app


def main() -> int:
    """Serve the upstream on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--blob-bytes", type=int, default=DEFAULT_BLOB_BYTES)
    args = parser.parse_args()
    web.run_app(
        create_upstream_app(blob_bytes=args.blob_bytes),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``beacon-adapter reference-runner``: serve the embedded reference runner on its own.

Useful to try the adapter by hand or to inspect a run afterwards: with ``--db PATH`` the
SQLite file keeps every job, execution and analysis, in the runner's table layout.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, Final

from aiohttp import web

from adapter.devkit.reference_runner.app import create_reference_runner

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8090


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``reference-runner`` sub-command."""
    parser = subparsers.add_parser(
        "reference-runner",
        help="serve the embedded reference runner (a stand-in for the Project Beacon runner)",
        description=(
            "Serve the in-process reference runner: the runner's job, cross-region, "
            "bias-analysis, health, metrics and /ws routes with instant, deterministic "
            "fake execution. Stops cleanly on SIGTERM or SIGINT."
        ),
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to bind, 0 for any free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--db",
        default=":memory:",
        metavar="PATH",
        help="SQLite file to keep the data in (default: in memory, gone on exit)",
    )
    parser.add_argument(
        "--no-execute",
        action="store_true",
        help="record submissions but never execute them (jobs stay queued/running)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    try:
        asyncio.run(serve(args.host, args.port, args.db, execute=not args.no_execute))
    except OSError as exc:
        print(f"reference-runner: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(host: str, port: int, db: str, *, execute: bool = True) -> None:
    """Run the app on ``host:port`` and print its URL; return after a stop signal."""
    app = create_reference_runner(db, execute=execute)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        print(f"reference runner listening on http://{shown}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        print("reference runner stopping", flush=True)
    finally:
        await runner.cleanup()

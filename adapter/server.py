"""``beacon-adapter serve``: run the proxy and admin ports until SIGTERM or SIGINT.

Shutdown order: readiness turns 503 at once, the proxy stops accepting, in-flight
requests get ``ADAPTER_SHUTDOWN_GRACE`` seconds to finish (open WebSockets are closed
with 1001), then the admin port stops and the process exits 0. Fly sends SIGINT by
default and SIGTERM when configured; both are handled the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from aiohttp import web

from adapter import __version__
from adapter.admin import READINESS
from adapter.app import create_admin_app, create_app, make_admin_runner, make_proxy_runner
from adapter.config import Config, ConfigError
from adapter.log import configure_logging, get_logger

_log = get_logger("adapter.server")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the proxy in front of the runner (configured by ADAPTER_* variables)",
        description="Run the proxy port and the admin port. Configuration comes from the "
        "environment; see README, 'Running in front of a runner'.",
    )
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Read the config from the environment and serve; a bad config exits 2 with one line."""
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"beacon-adapter: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    return asyncio.run(serve(config))


async def serve(config: Config, *, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set or a SIGTERM/SIGINT arrives; return the exit status."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop, signum)

    proxy_app = create_app(config)
    admin_app = create_admin_app(proxy_app)
    proxy_runner = make_proxy_runner(proxy_app)
    admin_runner = make_admin_runner(admin_app)
    await admin_runner.setup()
    await proxy_runner.setup()
    try:
        await web.TCPSite(admin_runner, config.host, config.admin_port).start()
        await web.TCPSite(proxy_runner, config.host, config.port).start()
    except OSError as exc:
        _log.error("listen_failed", error=str(exc))
        await proxy_runner.cleanup()
        await admin_runner.cleanup()
        return 1
    _log.info(
        "adapter_started",
        version=__version__,
        config=config.redacted(),
        proxy_addresses=[list(a[:2]) for a in proxy_runner.addresses],
        admin_addresses=[list(a[:2]) for a in admin_runner.addresses],
    )

    await stop.wait()
    proxy_app[READINESS].draining = True
    _log.info("adapter_draining", grace_seconds=config.shutdown_grace)
    started = loop.time()
    await proxy_runner.cleanup()
    await admin_runner.cleanup()
    _log.info(
        "adapter_stopped",
        drain_seconds=round(loop.time() - started, 3),
        config=config.redacted(),
    )
    return 0


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        _log.info("signal_ignored_already_draining", signal=signal.Signals(signum).name)
        return
    _log.info("signal_received", signal=signal.Signals(signum).name)
    stop.set()


__all__ = ("register", "serve", "serve_command")

"""The ``beacon-adapter`` command line: one sub-command per operator task.

Each feature module that offers commands exposes ``register(subparsers)``; this
module only wires them together, so a command lives next to the code it drives.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from adapter import __version__

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "adapter.server",
    "adapter.commands.crypto_cli",
    "adapter.commands.rollout_cli",
    "adapter.commands.backfill_cli",
    "adapter.devkit.reference_runner.cli",
    "adapter.devkit.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="beacon-adapter",
        description="Cross-region compatibility adapter for the Project Beacon runner.",
    )
    parser.add_argument("--version", action="version", version=f"beacon-adapter {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    sys.stdout.flush()
    return status

"""The ``beacon-adapter`` command line: one sub-command per operator task.

Each feature module that offers commands exposes ``register(subparsers)``; this
module only wires them together, so a command lives next to the code it drives.
The devkit's commands (``reference-runner``, ``demo``) are loaded by name: the production
image is built without ``adapter/devkit``, and there they say so instead of failing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

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


# The devkit's command modules and the command each adds, for builds without the devkit.
DEVKIT_COMMANDS: Mapping[str, str] = {
    "adapter.devkit.reference_runner.cli": "reference-runner",
    "adapter.devkit.demo": "demo",
}
NOT_IN_BUILD: Final = "not in this build: the devkit is excluded from the production image"


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="beacon-adapter",
        description="Cross-region compatibility adapter for the Project Beacon runner.",
    )
    parser.add_argument("--version", action="version", version=f"beacon-adapter {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name not in DEVKIT_COMMANDS or not _is_devkit(exc.name):
                raise
            _register_missing(subparsers, DEVKIT_COMMANDS[name])
        else:
            module.register(subparsers)
    return parser


def _is_devkit(module: str | None) -> bool:
    return module is not None and (
        module == "adapter.devkit" or module.startswith("adapter.devkit.")
    )


def _register_missing(subparsers: argparse._SubParsersAction[Any], command: str) -> None:
    """A stand-in for a devkit command: any arguments, one line on stderr, exit status 2."""
    parser = subparsers.add_parser(command, help=f"({NOT_IN_BUILD})", add_help=False)

    def not_in_build(args: argparse.Namespace) -> int:
        print(f"beacon-adapter {command}: {NOT_IN_BUILD}", file=sys.stderr)
        return 2

    parser.set_defaults(handler=not_in_build, takes_any_arguments=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command and return its exit status."""
    parser = build_parser()
    # parse_args, except that a devkit stand-in takes whatever the real command would.
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    status: int = args.handler(args)
    sys.stdout.flush()
    return status

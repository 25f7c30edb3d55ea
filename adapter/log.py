"""Structured logging: one JSON object per line on stdout (orjson), or a console view.

Context variables are merged into every event, so binding ``request_id`` at the start of a
request (aiohttp runs each request in its own task, hence its own context) puts it on
every line that request emits. Named ``log`` so it cannot shadow the stdlib ``logging``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, Final, TextIO

import orjson
import structlog

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    *,
    binary_stream: BinaryIO | None = None,
    text_stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process; streams are injectable for tests."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "console":
        processors: list[structlog.typing.Processor] = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
        factory: Callable[..., Any] = structlog.PrintLoggerFactory(text_stream or sys.stdout)
    else:
        processors = [
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory = structlog.BytesLoggerFactory(binary_stream or sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose events carry ``component=<name>`` (configured lazily, on first use)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger


__all__ = ("configure_logging", "get_logger")

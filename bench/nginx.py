"""nginx in two bench roles: the fast upstream, and the reference reverse proxy.

``render_*`` are pure: they return config text for a prefix directory, loopback ports
and the user to run as. ``prepare`` writes the config (and, for the upstream, a sparse
blob file for the streaming row) and returns the argv that runs nginx in the foreground
with ``-p prefix``, so nothing outside the temp dir is read or written.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.upstream import (
    ACCEPTED_BODY,
    BLOB_PATH,
    CROSS_REGION_PATH,
    SMALL_BODY,
    UPLOAD_PATH,
)

_NGINX_CANDIDATES: Final = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who the worker processes run as (only meaningful when started as root)."""

    user: str
    group: str
    is_root: bool


def current_user() -> RunAs:
    """The current user, so root-started workers do not drop to ``nobody``."""
    return RunAs(
        user=pwd.getpwuid(os.geteuid()).pw_name,
        group=grp.getgrgid(os.getegid()).gr_name,
        is_root=os.geteuid() == 0,
    )


def find_nginx() -> str | None:
    """Path of the nginx binary, or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in _NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _common_head(prefix: Path, run_as: RunAs) -> str:
    user = f"user {run_as.user} {run_as.group};\n" if run_as.is_root else ""
    return (
        f"{user}"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
    )


def _common_http(prefix: Path) -> str:
    return (
        "    access_log off;\n"
        "    default_type application/json;\n"
        "    keepalive_requests 1000000;\n"
        "    keepalive_timeout 75s;\n"
        f"    client_body_temp_path {prefix}/client_body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
    )


def _quoted(body: bytes) -> str:
    text = body.decode()
    assert "'" not in text
    assert "\\" not in text
    return f"'{text}'"


def render_upstream_conf(prefix: Path, port: int, run_as: RunAs, *, sink_port: int) -> str:
    """nginx as the upstream: the same answers as bench.upstream, from a static config.

    ``return`` answers before reading a request body, so a large upload would look done
    after a few bytes; uploads are therefore streamed on to a bench.upstream "sink" on
    ``sink_port``, which reads every byte and reports how many it received.
    """
    return (
        _common_head(prefix, run_as)
        + "http {\n"
        + _common_http(prefix)
        + "    server {\n"
        + f"        listen 127.0.0.1:{port};\n"
        + "        client_max_body_size 0;\n"
        + f"        location = {CROSS_REGION_PATH} {{ return 202 {_quoted(ACCEPTED_BODY)}; }}\n"
        + f"        location = {BLOB_PATH} {{\n"
        + "            default_type application/octet-stream;\n"
        + f"            alias {prefix}/blob.bin;\n"
        + "        }\n"
        + f"        location = {UPLOAD_PATH} {{\n"
        + f"            proxy_pass http://127.0.0.1:{sink_port};\n"
        + "            proxy_http_version 1.1;\n"
        + "            proxy_request_buffering off;\n"
        + "        }\n"
        + f"        location / {{ return 200 {_quoted(SMALL_BODY)}; }}\n"
        + "    }\n"
        + "}\n"
    )


def render_proxy_conf(prefix: Path, port: int, upstream_port: int, run_as: RunAs) -> str:
    """nginx as a reverse proxy with an upstream keep-alive pool (its fair configuration)."""
    return (
        _common_head(prefix, run_as)
        + "http {\n"
        + _common_http(prefix)
        + "    upstream bench_backend {\n"
        + f"        server 127.0.0.1:{upstream_port};\n"
        + "        keepalive 128;\n"
        + "        keepalive_requests 1000000;\n"
        + "    }\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port};\n"
        + "        client_max_body_size 0;\n"
        + "        location / {\n"
        + "            proxy_pass http://bench_backend;\n"
        + "            proxy_http_version 1.1;\n"
        + '            proxy_set_header Connection "";\n'
        + "        }\n"
        + "    }\n"
        + "}\n"
    )


def prepare(
    binary: str, prefix: Path, conf_text: str, *, blob_bytes: int | None = None
) -> list[str]:
    """Write the config under ``prefix`` and return the foreground nginx argv."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text, encoding="utf-8")
    if blob_bytes is not None:
        with (prefix / "blob.bin").open("wb") as blob:
            blob.truncate(blob_bytes)  # sparse: reads as zeros, costs no disk
    return [
        binary,
        "-p",
        f"{prefix}/",
        "-c",
        str(conf),
        "-e",
        f"{prefix}/error.log",
        "-g",
        "daemon off;",
    ]

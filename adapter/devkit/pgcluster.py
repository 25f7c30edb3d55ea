"""A throwaway local PostgreSQL 15 cluster with the runner's schema (tests and bench only).

The runner's database engine is PostgreSQL, so the backfill is tested and measured against
a real one: Debian's postgresql-15 binaries, started on a free 127.0.0.1 port with a private
data and socket directory under a temp dir, trust auth (loopback, throwaway), fsync off.
``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
user through ``runuser``. ``running_cluster()`` stops it at the end, also on errors.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from adapter.devkit.runner_schema import LIVE_PATCH_SQL, MIGRATIONS_SQL

PG_BIN: Final = Path(os.environ.get("ADAPTER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S: Final = 30
# Templates every test database is copied from (CREATE DATABASE ... TEMPLATE is fast).
LIVE_TEMPLATE: Final = "runner_live"  # migrations + the hand-added summary_source column
MIGRATIONS_TEMPLATE: Final = "runner_migrations"  # exactly what the migrations leave

_names = itertools.count(1)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ClusterUnavailable(RuntimeError):
    """The local PostgreSQL cluster could not be created or started."""


@dataclass(frozen=True, slots=True)
class PgCluster:
    """A running cluster: where to reach it and how to make databases in it."""

    port: int
    socket_dir: Path
    data_dir: Path

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL over TCP loopback (what an operator's --database-url looks like)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, template: str = LIVE_TEMPLATE) -> str:
        """A new database copied from ``template``; returns its URL."""
        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)


def _as_postgres(argv: list[str]) -> list[str]:
    """``initdb``/``pg_ctl`` refuse root: run them as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(  # noqa: S603 - fixed argv built above
        _as_postgres(argv), capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-800:]
        raise ClusterUnavailable(f"{what} failed (exit {done.returncode}): {output}")


def start_cluster(base: Path) -> PgCluster:
    """initdb + pg_ctl start in ``base``; raises ClusterUnavailable with the reason."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            raise ClusterUnavailable(
                f"{PG_BIN / tool} not found (install Debian's postgresql-15, as .ci/run does)"
            )
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterUnavailable("running as root and there is no postgres user") from None
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data_dir, socket_dir = base / "data", base / "sock"
    _run(
        [
            *(str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust"),
            *("-E", "UTF8", "--locale=C", "-N"),
        ],
        "initdb",
    )
    _run(["mkdir", "-p", str(socket_dir)], "mkdir socket dir")
    last_error: ClusterUnavailable | None = None
    for _attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        options = (
            f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        try:
            _run(
                [
                    *(str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-l", str(base / "server.log")),
                    *("-o", options, "-w", "-t", str(START_TIMEOUT_S), "start"),
                ],
                "pg_ctl start",
            )
        except ClusterUnavailable as exc:
            last_error = exc
            continue
        return PgCluster(port=port, socket_dir=socket_dir, data_dir=data_dir)
    assert last_error is not None
    raise last_error


def stop_cluster(cluster: PgCluster) -> None:
    """Fast shutdown; errors are ignored (the temp dir goes anyway)."""
    with contextlib.suppress(ClusterUnavailable, subprocess.TimeoutExpired):
        _run([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "fast", "stop"], "stop")


def install_templates(cluster: PgCluster) -> None:
    """The two template databases: migrations only, and the live shape (with summary_source)."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        for name in (MIGRATIONS_TEMPLATE, LIVE_TEMPLATE):
            conn.execute(f'CREATE DATABASE "{name}"')
    for name, patch in ((MIGRATIONS_TEMPLATE, ""), (LIVE_TEMPLATE, LIVE_PATCH_SQL)):
        with psycopg.connect(cluster.url(name), autocommit=True) as conn:
            conn.execute(MIGRATIONS_SQL.encode())
            if patch:
                conn.execute(patch.encode())


@contextlib.contextmanager
def running_cluster() -> Iterator[PgCluster]:
    """A cluster with both templates for the duration of the block (tests and the bench)."""
    base = Path(tempfile.mkdtemp(prefix="adapter-pg-"))
    cluster: PgCluster | None = None
    try:
        cluster = start_cluster(base)
        install_templates(cluster)
        yield cluster
    finally:
        if cluster is not None:
            stop_cluster(cluster)
        shutil.rmtree(base, ignore_errors=True)


__all__ = (
    "LIVE_TEMPLATE",
    "MIGRATIONS_TEMPLATE",
    "ClusterUnavailable",
    "PgCluster",
    "running_cluster",
)

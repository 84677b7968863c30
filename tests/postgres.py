"""A throwaway PostgreSQL server: a temporary data directory, a loopback port, trust auth.

scripts/test.sh installs Debian's ``postgresql`` package when it is missing;
this module finds its ``initdb``/``pg_ctl`` under /usr/lib/postgresql. The
server refuses to run as root, so as root it runs as the ``postgres`` user
through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from .servers import HOST, free_port


def _bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/test.sh (it installs Debian's "
            "postgresql package), or apt-get install postgresql"
        )
    return os.path.dirname(pg_ctl)


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def postgres_server(max_connections: int = 300) -> Iterator[str]:
    """Run a server for the block; yields the ``user@host:port/db`` part of a URL."""
    bin_dir = _bin_dir()
    root = tempfile.mkdtemp(prefix="bridge-pg-")
    data = os.path.join(root, "data")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_server_user(
            [f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-h {HOST} -p {port} -k {root} -c max_connections={max_connections} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        _as_server_user(
            [f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgres@{HOST}:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

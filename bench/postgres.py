"""A throw-away PostgreSQL server for tests and benchmarks, started in a temporary directory.

`postgres_server()` initdb's and starts one (Debian's `postgresql` package; `make test` installs it
when missing) and yields its base URL; `schema_url(base)` makes a fresh schema in it and yields a
URL that uses it; `postmaster_pid(url)` finds the server's main process (for CPU accounting).
`initdb` and `postgres` refuse to run as root, so they run as the `postgres` user on a directory
it owns. `FLOWYARD_TEST_PG_URL` uses a server that is already running instead.
"""

from __future__ import annotations

import gc
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

__all__ = [
    "PG_URL_ENV",
    "pg_binary",
    "postgres_server",
    "postmaster_pid",
    "run_as_postgres",
    "schema_url",
]

PG_URL_ENV = "FLOWYARD_TEST_PG_URL"
"""The base URL of a running server to use instead of starting one."""


def pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql (make test does)."
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@contextmanager
def postgres_server(
    settings: Sequence[str] = ("fsync=off",),
    *,
    listen: str = "127.0.0.1",
    netns: str | None = None,
) -> Iterator[str]:
    """A running server's base URL (`postgresql+psycopg://postgres@LISTEN:PORT/postgres`),
    started with each `name=value` of `settings` (tests: `fsync=off`, nothing is kept).

    `listen` is the address it accepts connections on; `netns` a network namespace to run it in
    (where `listen` is one of that namespace's addresses). `FLOWYARD_TEST_PG_URL` answers only
    for the default server on this machine's loopback.
    """
    given = os.environ.get(PG_URL_ENV)
    if given and (listen, netns) == ("127.0.0.1", None):
        yield given
        return
    inside = ["ip", "netns", "exec", netns] if netns else []
    root = Path(tempfile.mkdtemp(prefix="flowyard-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    subprocess.run(
        run_as_postgres(
            pg_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        ),
        check=True,
        capture_output=True,
    )
    if listen != "127.0.0.1":  # initdb trusts loopback only; these are the test's own hosts
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all samenet trust\n")
    options = " ".join(
        [f"-c listen_addresses={listen} -p {port} -k {root}", *(f"-c {s}" for s in settings)]
    )
    ctl = pg_binary("pg_ctl")
    subprocess.run(  # the server pg_ctl starts stays in the namespace pg_ctl runs in
        [
            *inside,
            *run_as_postgres(
                ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
            ),
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@{listen}:{port}/postgres"
    finally:
        # Connections nobody closed are finalized now, while the server still answers, and
        # reported as a ResourceWarning of the run rather than failing at exit.
        gc.collect()
        subprocess.run(
            run_as_postgres(ctl, "-D", str(data), "-m", "immediate", "stop"), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def schema_url(base_url: str) -> Iterator[str]:
    """A fresh schema in the server at `base_url`: the URL that uses it; dropped after."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in base_url else "?"
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def postmaster_pid(url: str) -> int | None:
    """The process id of the server at `url` when it runs on this machine (the parent of the
    backend serving a connection), else None."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        stat = Path(f"/proc/{backend}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return None
    finally:
        engine.dispose()

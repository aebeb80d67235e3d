"""A database that cannot be used stops `serve` and `worker` with one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from app.cli import EXIT_INVALID
from app.persistence.db import DATABASE_URL_ENV, open_database
from tests.server.conftest import ROOT, free_port


def flowyard(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.pop(DATABASE_URL_ENV, None)
    if url is not None:
        env[DATABASE_URL_ENV] = url
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url at all", "is not a database URL"),
        ("nosuchdb://somewhere/x", "cannot use the database URL nosuchdb://somewhere/x"),
        (
            "postgresql+psycopg://flowyard:hunter2@127.0.0.1:1/flowyard",
            "cannot reach the database at postgresql+psycopg://flowyard:***@127.0.0.1:1/flowyard",
        ),
    ],
    ids=["malformed", "unknown-driver", "unreachable"],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unusable_database_url_is_one_line_and_exit_2(
    tmp_path: Path, url: str, message: str, command: str
) -> None:
    args = [command, "--data-dir", str(tmp_path)]
    if command == "serve":
        args += ["--port", str(free_port())]
    done = flowyard(*args, url=url)
    assert done.returncode == EXIT_INVALID, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "hunter2" not in done.stderr + done.stdout


def test_a_database_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    engine = open_database(url=url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    done = flowyard("serve", "--data-dir", str(tmp_path), "--port", str(free_port()), url=url)
    assert done.returncode == EXIT_INVALID, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "schema version 99, newer than this Flowyard" in line


def test_a_worker_refuses_a_sqlite_file(tmp_path: Path) -> None:
    done = flowyard("worker", "--data-dir", str(tmp_path), url=None)
    assert done.returncode == EXIT_INVALID, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "flowyard worker needs a database several processes can share" in line

"""`flowyard import` and `flowyard export`: on a data directory, and against a running server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ROOT, ServerProcess, free_port

WAREHOUSE = ROOT / "examples" / "warehouse-import.yaml"


def flowyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_then_export_on_a_data_dir_round_trips(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    imported = flowyard("import", str(WAREHOUSE), "--data-dir", data)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "imported Warehouse import (version 1)"
    exported = flowyard("export", "Warehouse import", "--data-dir", data)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == WAREHOUSE.read_text()


def test_publish_freezes_the_draft_on_a_data_dir_and_through_a_server(
    tmp_path: Path, server: ServerProcess
) -> None:
    data = str(tmp_path / "data")
    assert flowyard("import", str(WAREHOUSE), "--data-dir", data).returncode == 0
    published = flowyard("publish", "Warehouse import", "--note", "first", "--data-dir", data)
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "published Warehouse import version 1"
    missing = flowyard("publish", "Nope", "--data-dir", data)
    assert (missing.returncode, "Nope" in missing.stderr) == (2, True)
    assert flowyard("import", str(WAREHOUSE), "--server", server.url).returncode == 0
    remote = flowyard("publish", "Warehouse import", "--note", "x" * 501, "--server", server.url)
    assert remote.returncode == 2
    assert "note" in remote.stderr
    remote = flowyard("publish", "Warehouse import", "--server", server.url)
    assert remote.returncode == 0, remote.stderr
    detail = httpx.get(f"{server.url}/api/integrations/Warehouse import").json()
    version = detail["versions"][-1]
    assert version["published"]
    assert remote.stdout.strip() == f"published Warehouse import version {version['version']}"


def test_import_refuses_an_invalid_file_and_stores_nothing(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: Broken\nflows:\n  - id: main\n    trigger: {id: t, action: nope.x}\n")
    result = flowyard("import", str(broken), "--data-dir", data)
    assert result.returncode == 2
    assert "nope" in result.stderr
    missing = flowyard("export", "Broken", "--data-dir", data)
    assert missing.returncode == 2
    assert "Broken" in missing.stderr


def test_import_and_export_through_a_running_server(server: ServerProcess) -> None:
    imported = flowyard("import", str(WAREHOUSE), "--server", server.url)
    assert imported.returncode == 0, imported.stderr
    exported = flowyard("export", "Warehouse import", "--server", server.url)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == WAREHOUSE.read_text()
    unknown = flowyard("export", "No such thing", "--server", server.url)
    assert unknown.returncode == 2
    assert "No such thing" in unknown.stderr


@pytest.mark.sqlite_only  # a SQLite file belongs to one server; PostgreSQL takes several
def test_a_second_server_on_the_same_data_dir_refuses_to_start(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Each server re-runs what its database left running, so two on one directory would run
    executions twice: the second refuses, naming the directory; a killed one frees it at once."""
    second = ServerProcess(server.data_dir, free_port(), tmp_path / "second.log")
    with pytest.raises(RuntimeError, match="exited early") as refused:
        second.start()
    assert "Another Flowyard server is using the data directory" in str(refused.value)
    assert str(server.data_dir.resolve()) in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert second.process is not None and second.process.returncode == 2
    assert httpx.get(f"{server.url}/api/health").status_code == 200  # the first one serves on
    server.kill()
    second.start()  # SIGKILL released the lock: no stale lock file blocks a restart
    try:
        assert httpx.get(f"{second.url}/api/health").status_code == 200
    finally:
        second.stop()

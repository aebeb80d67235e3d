"""`flowyard import` and `flowyard export`: on a data directory, and against a running server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server.conftest import ROOT, ServerProcess

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

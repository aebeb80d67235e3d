"""Integration files under hostile content (`file_cases.py`): the loader, `flowyard validate` and
the server's import must agree, naming the problem; a refused import stores nothing and the
canary instance keeps running."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from runtime.files import IntegrationFileError, load_integration
from tests.hostile.file_cases import FILES, FileCase
from tests.hostile.harness import Harness, strings_in

EXIT_INVALID = 2


def _write(case: FileCase, folder: Path) -> Path:
    path = folder / f"{case.id}{case.suffix}"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", FILES, ids=[c.id for c in FILES])
def test_integration_file(case: FileCase, harness: Harness, tmp_path: Path) -> None:
    path = _write(case, tmp_path)

    if case.expect == "unreadable":
        with pytest.raises(IntegrationFileError) as refused:
            load_integration(path)
        for fragment in case.fragments:
            assert fragment in str(refused.value)
    else:
        load_integration(path)

    validated = CliRunner().invoke(cli, ["validate", str(path)])
    assert validated.exit_code == (0 if case.expect == "valid" else EXIT_INVALID), validated.output
    for fragment in case.fragments:
        assert fragment in validated.output

    with harness.case() as snapshot:
        imported = httpx.post(
            f"{harness.url}/api/integrations",
            content=path.read_bytes(),
            params={"source": path.name},
            headers={"Content-Type": "application/json" if case.suffix == ".json" else "text/yaml"},
            timeout=60,
        )
        if case.expect == "valid":
            assert imported.status_code == 201, imported.text[:2000]
            harness.still_serving(snapshot)
            return
        assert imported.status_code == 422, imported.text[:2000]
        said = strings_in(imported.json())
        for fragment in case.fragments:
            assert fragment in said, said[:2000]
        harness.settle(snapshot, accepted=False)

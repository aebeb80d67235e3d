"""The designer depends on `runtime` and `components`, never back up on `app`: the pages hand it
what it needs (the arrow `app` -> `designer` only)."""

from __future__ import annotations

from tests.test_api_surface import ROOT, imported_modules


def test_designer_imports_nothing_from_app() -> None:
    files = sorted((ROOT / "designer").glob("*.py"))
    assert any(path.name == "testing.py" for path in files)
    for path in files:
        for module in imported_modules(path):
            assert module.split(".")[0] != "app", f"{path.relative_to(ROOT)} imports {module}"

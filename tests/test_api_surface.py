"""The public surfaces are pinned, and `runtime` stays free of the app's frameworks."""

from __future__ import annotations

import ast
from pathlib import Path

import components.api

ROOT = Path(__file__).parent.parent


def test_component_api_exports_are_pinned() -> None:
    assert set(components.api.__all__) == {
        "DEFAULT_PORT",
        "Action",
        "Component",
        "Connection",
        "HEADER_NAME",
        "HttpHeaders",
        "FlowyardError",
        "Inputs",
        "LogLine",
        "LoopPlan",
        "NoInputs",
        "Response",
        "Result",
        "RetryableError",
        "StateScope",
        "StateStore",
        "StepConfigError",
        "StepContext",
        "StepError",
        "StepLogger",
        "StopFlow",
        "Trigger",
        "TokenSource",
        "TriggerContext",
        "TriggerEvent",
        "TriggerKind",
        # the outbound address policy, which the shared HTTP client also enforces
        "BLOCK_PRIVATE_ENV",
        "address_refusal",
        "block_private_addresses",
        "host_refusal",
        "literal_address",
        # one HTTP exchange as data, straight over the shared client's aiohttp session
        "Fetched",
        "fetch",
        # regular expressions from users, run by RE2 in linear time
        "Pattern",
        "PatternError",
        "compile_pattern",
    }
    assert len(components.api.__all__) == len(set(components.api.__all__))
    for name in components.api.__all__:
        assert hasattr(components.api, name), name


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_runtime_imports_no_app_designer_nicegui_or_sqlmodel() -> None:
    forbidden = ("app", "designer", "nicegui", "sqlmodel", "sqlalchemy", "fastapi")
    files = sorted((ROOT / "runtime").rglob("*.py"))
    assert files
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            assert top not in forbidden, f"{path.relative_to(ROOT)} imports {module}"


def test_components_api_imports_nothing_above_it() -> None:
    for path in [ROOT / "components" / "api.py", ROOT / "components" / "registry.py"]:
        for module in imported_modules(path):
            assert module.split(".")[0] not in ("runtime", "app", "designer"), (path, module)

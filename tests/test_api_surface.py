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
        # the receive-side contract of triggers (components.ingress) and the signature schemes
        "Admission",
        "IncomingRequest",
        "Ingress",
        "ReceiveSettings",
        "Refused",
        "SignatureSettings",
        "verify_signature",
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


def test_app_calls_triggers_only_through_the_component_api() -> None:
    """A built-in trigger is one implementation of the contract custom triggers implement too:
    nothing in `app` may reach past `components.api` into `components.builtin`, by an import
    statement, `from components import builtin`, or a module name handed to importlib."""
    files = sorted((ROOT / "app").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for module in imported_modules(path):
            assert not module.startswith("components.builtin"), f"{where} imports {module}"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "components":
                assert "builtin" not in {a.name for a in node.names}, f"{where} imports builtin"
            if isinstance(node, ast.Call) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    named = first.value
                    assert not named.startswith("components.builtin"), f"{where}: {named}"

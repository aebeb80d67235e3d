"""Rules every built-in component follows: public API only, documented inputs, stable keys."""

from __future__ import annotations

import ast
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import components.builtin
from components.api import Action, Component, Trigger
from components.registry import Registry

BUILTIN_DIR = Path(components.builtin.__file__).parent
MODULES = sorted(p for p in BUILTIN_DIR.glob("*.py") if p.name != "__init__.py")
FLOWYARD_PACKAGES = {"components", "runtime", "app", "designer", "tests", "bench", "examples"}

EXPECTED = {
    "webhook": ({"webhook"}, set()),
    "schedule": ({"cron"}, set()),
    "manual": ({"manual"}, set()),
    "instance": ({"deploy", "delete", "error"}, set()),
    "http": (set(), {"request"}),
    "branch": (set(), {"value", "expression"}),
    "loop": (set(), {"items"}),
    "transform": (set(), {"object"}),
    "state": (set(), {"get", "set"}),
    "delay": (set(), {"wait"}),
    "log": (set(), {"message"}),
    "respond": (set(), {"respond"}),
    "stop": (set(), {"error"}),
    "call_flow": (set(), {"call"}),
}
CATEGORIES = {"Triggers", "Core", "Logic", "Data", "Flow control"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    reg.load_builtins()
    return reg


def test_registry_loads_every_builtin(registry: Registry) -> None:
    assert registry.problems == []
    found = {
        c.key: ({t.key for t in c.triggers}, {a.key for a in c.actions})
        for c in registry.components()
    }
    assert found == EXPECTED


def test_trigger_kinds(registry: Registry) -> None:
    kinds = {
        ref: registry.trigger(ref).kind
        for ref in ("webhook.webhook", "schedule.cron", "manual.manual")
    }
    kinds |= {ref: registry.trigger(ref).kind for ref in ("instance.deploy", "instance.delete")}
    assert kinds == {
        "webhook.webhook": "webhook",
        "schedule.cron": "schedule",
        "manual.manual": "manual",
        "instance.deploy": "deploy",
        "instance.delete": "delete",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_builtin_imports_only_the_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}:{node.lineno}: relative import"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FLOWYARD_PACKAGES:
                assert name == "components.api", f"{path.name}:{node.lineno} imports {name}"


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models(arg))
    return found


def _all_input_models(component: Component) -> list[type[BaseModel]]:
    items: list[type[Action[Any]] | type[Trigger[Any]]] = [*component.actions, *component.triggers]
    pending = [item.Inputs for item in items]
    seen: list[type[BaseModel]] = []
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            pending.extend(_models(info.annotation))
    return seen


def test_every_input_field_has_title_and_description(registry: Registry) -> None:
    missing = []
    checked = 0
    for component in registry.components():
        for model in _all_input_models(component):
            assert model.model_config.get("extra") == "forbid", model.__name__
            for name, info in model.model_fields.items():
                checked += 1
                if not info.title or not info.description:
                    missing.append(f"{component.key}: {model.__name__}.{name}")
    assert missing == []
    assert checked > 40


def test_every_item_is_described(registry: Registry) -> None:
    for component in registry.components():
        assert component.category in CATEGORIES
        assert component.version == "1.0.0"
        assert component.title and component.description
        for item in [*component.actions, *component.triggers]:
            assert item.title, item
            assert 20 < len(item.description) < 250, item
            item.Inputs.model_json_schema()  # the inspector renders forms from this alone


def test_secrets_are_secret_str() -> None:
    from components.builtin.webhook import SignatureSettings

    annotation = SignatureSettings.model_fields["secret"].annotation
    assert isinstance(annotation, types.UnionType)
    assert "SecretStr" in str(annotation)


def test_modules_have_all_and_stay_small() -> None:
    for path in MODULES:
        source = path.read_text()
        assert "__all__" in source, path.name
        assert source.count("\n") < 600, path.name

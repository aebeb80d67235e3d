"""The component registry: built-ins, the `flowyard.components` entry points and a custom folder.

A module contributes every `Component` value among its globals. A custom component is a plain
`.py` file in the custom-components folder (`FLOWYARD_COMPONENTS_DIR`, or the folder passed in):

    # my_components/greeter.py
    from components.api import Action, Component, Result, StepContext
    ...
    component = Component(key="greeter", title="Greeter", actions=[Greet])

A file that fails to import is recorded in `problems`; the rest still load, and flows using the
broken component load too but report why they cannot run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from components.api import Action, Component, Trigger

__all__ = ["ENTRY_POINT_GROUP", "Registry", "RegistryProblem", "default_registry"]

ENTRY_POINT_GROUP = "flowyard.components"


@dataclass(frozen=True, slots=True)
class RegistryProblem:
    """A component source that could not be loaded, and why."""

    source: str
    message: str


class Registry:
    """Components by key, with lookups of `component.action` references."""

    def __init__(self, components: Iterable[Component] = ()) -> None:
        self._components: dict[str, Component] = {}
        self.sources: dict[str, str] = {}
        self.problems: list[RegistryProblem] = []
        for component in components:
            self.add(component, source="code")

    def add(self, component: Component, *, source: str) -> None:
        """Register `component`; a second component with the same key is refused as a problem."""
        if component.key in self._components:
            self.problems.append(
                RegistryProblem(
                    source,
                    f"component key '{component.key}' is already taken by "
                    f"{self.sources[component.key]}; this one was ignored",
                )
            )
            return
        self._components[component.key] = component
        self.sources[component.key] = source

    def add_module(self, module: ModuleType, *, source: str) -> int:
        """Register every `Component` in a module's globals; return how many."""
        found = [v for v in vars(module).values() if isinstance(v, Component)]
        for component in found:
            self.add(component, source=source)
        return len(found)

    def components(self) -> list[Component]:
        """All components, sorted by category then title (the palette's order)."""
        return sorted(self._components.values(), key=lambda c: (c.category, c.title))

    def get(self, key: str) -> Component | None:
        return self._components.get(key)

    def _split(self, ref: str) -> tuple[Component | None, str, str]:
        comp_key, _, item_key = ref.partition(".")
        return self._components.get(comp_key), comp_key, item_key

    def action(self, ref: str) -> type[Action[Any]]:
        """The action class for `component.action`; a readable `LookupError` if none."""
        component, comp_key, key = self._split(ref)
        if component is None:
            raise LookupError(self._missing_component(comp_key))
        found = component.action(key)
        if found is None:
            names = ", ".join(f"{comp_key}.{a.key}" for a in component.actions) or "none"
            raise LookupError(f"component '{comp_key}' has no action '{key}' (it has: {names})")
        return found

    def trigger(self, ref: str) -> type[Trigger[Any]]:
        """The trigger class for `component.trigger`; `LookupError` if there is none."""
        component, comp_key, key = self._split(ref)
        if component is None:
            raise LookupError(self._missing_component(comp_key))
        found = component.trigger(key)
        if found is None:
            names = ", ".join(f"{comp_key}.{t.key}" for t in component.triggers) or "none"
            raise LookupError(f"component '{comp_key}' has no trigger '{key}' (it has: {names})")
        return found

    def _missing_component(self, key: str) -> str:
        broken = [p for p in self.problems if Path(p.source).stem == key]
        if broken:
            return f"component '{key}' failed to load: {broken[0].message}"
        return f"component '{key}' is not installed"

    def load_builtins(self) -> None:
        """Register the components shipped in `components.builtin`, one module per component."""
        import components.builtin as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            self.add_module(module, source=f"builtin:{info.name}")

    def load_entry_points(self) -> None:
        """Register components published by installed packages under `flowyard.components`."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                value = ep.load()
            except Exception as exc:
                self.problems.append(RegistryProblem(f"entry point {ep.name}", _describe(exc)))
                continue
            if isinstance(value, Component):
                self.add(value, source=f"entry point {ep.name}")
            elif isinstance(value, ModuleType):
                self.add_module(value, source=f"entry point {ep.name}")
            else:
                self.problems.append(
                    RegistryProblem(
                        f"entry point {ep.name}", "it names neither a Component nor a module"
                    )
                )

    def load_folder(self, folder: Path) -> None:
        """Import every `*.py` file in `folder` (not recursively) and register its components."""
        if not folder.is_dir():
            self.problems.append(RegistryProblem(str(folder), "custom components folder not found"))
            return
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                self.load_file(path)

    def load_file(self, path: Path, *, replace: bool = False) -> bool:
        """Import one component file and register its components (with `replace`, in place of
        components with the same keys: a regenerated API); a failure becomes a problem."""
        module_name = f"flowyard_custom_{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            self.problems.append(RegistryProblem(str(path), _describe(exc)))
            return False
        if replace:
            for value in vars(module).values():
                if isinstance(value, Component):
                    self._components.pop(value.key, None)
        if not self.add_module(module, source=str(path)):
            self.problems.append(RegistryProblem(str(path), "the file defines no Component value"))
            return False
        return True


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def default_registry(custom_dir: Path | None = None) -> Registry:
    """Built-ins, entry points and the custom folder (`custom_dir` or `FLOWYARD_COMPONENTS_DIR`)."""
    registry = Registry()
    registry.load_builtins()
    registry.load_entry_points()
    folder = custom_dir or (
        Path(os.environ["FLOWYARD_COMPONENTS_DIR"])
        if os.environ.get("FLOWYARD_COMPONENTS_DIR")
        else None
    )
    if folder is not None:
        registry.load_folder(folder)
    return registry

"""A user's custom component is a plain .py file in a folder: discovered, and it runs in a flow."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from components.api import TriggerEvent
from components.registry import default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status

GREETER = """
from pydantic import Field

from components.api import Action, Component, Inputs, Result, StepContext


class GreetInputs(Inputs):
    name: str = Field(title="Name", description="Who to greet.")


class Greet(Action[GreetInputs]):
    key = "greet"
    title = "Greet"
    description = "Say hello."
    Inputs = GreetInputs

    async def run(self, inputs: GreetInputs, ctx: StepContext) -> Result:
        ctx.log.info("greeting %s", inputs.name)
        return Result({"text": f"Hello {inputs.name}"})


component = Component(key="greeter", title="Greeter", category="Demo", actions=[Greet])
"""


async def test_plain_file_component_is_discovered_and_runs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "greeter.py").write_text(textwrap.dedent(GREETER))
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.setenv("FLOWYARD_COMPONENTS_DIR", str(tmp_path))
    registry = default_registry()
    assert registry.get("greeter") is not None
    assert registry.sources["greeter"] == str(tmp_path / "greeter.py")
    (problem,) = registry.problems
    assert problem.source.endswith("broken.py")
    assert "ModuleNotFoundError" in problem.message

    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {
                    "id": "hi",
                    "action": "greeter.greet",
                    "inputs": {"name": "{{ trigger.body.who }}"},
                }
            ],
            "edges": [{"from": "trigger", "to": "hi"}],
        }
    )
    recorder = MemoryRecorder()
    async with make_http_client() as http:
        result = await run_flow(
            flow,
            TriggerEvent(body={"who": "Ada"}),
            RunContext(registry=registry, http=http),
            recorder,
        )
    assert result.status == Status.SUCCEEDED
    assert recorder.records[-1].output == {"text": "Hello Ada"}
    assert recorder.records[-1].logs[0].message == "greeting Ada"


def test_broken_component_is_named_when_a_flow_uses_it(tmp_path: Path) -> None:
    (tmp_path / "acme.py").write_text("raise RuntimeError('bad credentials table')\n")
    registry = default_registry(tmp_path)
    with pytest.raises(LookupError) as info:
        registry.action("acme.create")
    assert "component 'acme' failed to load: RuntimeError: bad credentials table" in str(info.value)


def test_entry_point_components_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    import components.registry as registry_module
    from components.api import Component

    published = Component(key="acme", title="Acme")

    class FakeEntryPoint:
        name = "acme"

        def load(self) -> Component:
            return published

    class BrokenEntryPoint:
        name = "broken"

        def load(self) -> Component:
            raise ImportError("acme-flowyard needs acme-sdk")

    def fake_entry_points(group: str) -> list[object]:
        assert group == "flowyard.components"
        return [FakeEntryPoint(), BrokenEntryPoint()]

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    registry = default_registry()
    assert registry.get("acme") is published
    assert registry.sources["acme"] == "entry point acme"
    assert [p.source for p in registry.problems] == ["entry point broken"]
    assert "acme-flowyard needs acme-sdk" in registry.problems[0].message

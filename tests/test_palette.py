"""The palette's order: triggers first (webhook on top), built-ins before custom components."""

from __future__ import annotations

from components.api import Action, Component, NoInputs, Result, StepContext
from components.registry import Registry
from designer.palette import TRIGGERS, palette_groups


class Greet(Action[NoInputs]):
    key = "greet"
    title = "Greet"
    description = "Say hello."
    Inputs = NoInputs

    async def run(self, inputs: NoInputs, ctx: StepContext) -> Result:
        return Result({"text": "Hello"})


def registry_with_custom() -> Registry:
    registry = Registry()
    registry.load_builtins()
    custom = Component(key="acme", title="Acme", category="Acme", actions=[Greet])
    registry.add(custom, source="folder:acme")
    return registry


def test_triggers_come_first_with_the_webhook_on_top() -> None:
    groups = palette_groups(registry_with_custom())
    assert groups[0].title == TRIGGERS
    keys = [e.key for e in groups[0].entries]
    assert keys[0] == "webhook.webhook"
    assert {"schedule.cron", "manual.manual"} <= set(keys)
    assert all(e.group == TRIGGERS for e in groups[0].entries)
    # No trigger appears again among the actions.
    later = {e.key for g in groups[1:] for e in g.entries}
    assert not later & set(keys)


def test_builtin_categories_come_before_custom_ones() -> None:
    titles = [g.title for g in palette_groups(registry_with_custom())]
    assert titles[:5] == [TRIGGERS, "Core", "Logic", "Flow control", "Data"]
    assert titles[-1] == "Acme"
    assert all(g.entries for g in palette_groups(registry_with_custom()))


def test_an_entry_matches_every_word_of_a_search() -> None:
    entries = {e.key: e for g in palette_groups(registry_with_custom()) for e in g.entries}
    assert entries["http.request"].matches("HTTP req")
    assert not entries["http.request"].matches("http webhook")
    assert entries["webhook.webhook"].matches("trigger")  # the group's name counts

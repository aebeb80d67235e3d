"""The palette: every trigger and action a flow can use, grouped, in the order a user needs them.

A flow starts with a trigger, so triggers come first as one group (the webhook trigger at the
top), then the built-in actions by category (`Core`, `Logic`, `Flow control`, `Data`, then any
other built-in category), then custom components' categories by name. Searching hides entries
that do not match every word, and a group whose entries are all hidden hides its header too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import ui

from components.api import Component
from components.registry import Registry
from designer.canvas import DRAG_TYPE

__all__ = ["Palette", "PaletteEntry", "PaletteGroup", "palette_groups"]

TRIGGERS = "Triggers"
_TRIGGERS_FIRST = ("webhook", "schedule", "manual")
"""Component keys whose triggers lead the list, in this order (what most flows start with)."""
_BUILTIN_CATEGORIES = ("Core", "Logic", "Flow control", "Data")


@dataclass(frozen=True, slots=True)
class PaletteEntry:
    """One draggable item: `key` is the `component.action` (or trigger) reference."""

    key: str
    title: str
    description: str
    group: str

    def matches(self, text: str) -> bool:
        """Whether every word of `text` occurs in the key, title, description or group."""
        haystack = f"{self.key} {self.title} {self.description} {self.group}".lower()
        return all(word in haystack for word in text.lower().split())


@dataclass(frozen=True, slots=True)
class PaletteGroup:
    title: str
    entries: tuple[PaletteEntry, ...]


def _is_builtin(component: Component, registry: Registry) -> bool:
    return registry.sources.get(component.key, "").startswith("builtin:")


def palette_groups(registry: Registry) -> list[PaletteGroup]:
    """The palette's groups in display order (see the module docstring); no empty group."""
    components = registry.components()

    def trigger_rank(component: Component) -> tuple[int, int, str]:
        first = (
            _TRIGGERS_FIRST.index(component.key)
            if component.key in _TRIGGERS_FIRST
            else len(_TRIGGERS_FIRST)
        )
        return (first, 0 if _is_builtin(component, registry) else 1, component.title)

    triggers = tuple(
        PaletteEntry(f"{c.key}.{t.key}", t.title, t.description, TRIGGERS)
        for c in sorted(components, key=trigger_rank)
        for t in c.triggers
    )
    by_category: dict[str, list[PaletteEntry]] = {}
    builtin_categories: set[str] = set()
    for component in components:
        if _is_builtin(component, registry):
            builtin_categories.add(component.category)
        for action in component.actions:
            by_category.setdefault(component.category, []).append(
                PaletteEntry(
                    f"{component.key}.{action.key}",
                    action.title,
                    action.description,
                    component.category,
                )
            )

    def category_rank(category: str) -> tuple[int, int, str]:
        if category in _BUILTIN_CATEGORIES:
            return (0, _BUILTIN_CATEGORIES.index(category), category)
        return (1 if category in builtin_categories else 2, 0, category)

    groups = [PaletteGroup(TRIGGERS, triggers)] if triggers else []
    for category in sorted(by_category, key=category_rank):
        groups.append(PaletteGroup(category, tuple(by_category[category])))
    return groups


class Palette:
    """The palette drawn into the current container: a search box and the groups' items.

    A click on an item calls `on_add(key)`; dragging it onto the canvas drops it there.
    """

    def __init__(self, registry: Registry, on_add: Callable[[str], Awaitable[None] | None]) -> None:
        self._shown: list[tuple[ui.element, list[tuple[ui.item, PaletteEntry]]]] = []
        with ui.column().classes("w-full gap-1 q-pa-xs"):
            self.search = (
                ui.input(placeholder="Search components")
                .props('dense clearable data-testid="palette-search"')
                .mark("palette-search")
                .classes("w-full")
            )
            with ui.list().props("dense").classes("w-full"):
                for group in palette_groups(registry):
                    self._group(group, on_add)
        self.search.on_value_change(lambda e: self.filter(e.value or ""))

    def _group(self, group: PaletteGroup, on_add: Callable[[str], Awaitable[None] | None]) -> None:
        items: list[tuple[ui.item, PaletteEntry]] = []
        with ui.element("div").classes("w-full") as box:
            header = ui.item_label(group.title).props("header").classes("text-bold")
            header.props(f'data-testid="palette-group-{group.title}"')
            for entry in group.entries:
                item = ui.item(on_click=lambda k=entry.key: on_add(k))
                item.props(f'draggable="true" data-testid="palette-{entry.key}"')
                item.mark(f"palette-{entry.key}")
                with item:
                    with ui.item_section():
                        ui.item_label(entry.title)
                        ui.item_label(entry.key).props("caption")
                    tip = ui.tooltip(entry.description) if entry.description else None
                # A drag sends no mouseleave to the item: its tooltip would stay on screen.
                hide = f"runMethod({tip.id}, 'hide', []);" if tip is not None else ""
                item.on(
                    "dragstart",
                    js_handler=(
                        f"(e) => {{ e.dataTransfer.setData('{DRAG_TYPE}', '{entry.key}'); {hide} }}"
                    ),
                )
                items.append((item, entry))
        self._shown.append((box, items))

    def filter(self, text: str) -> None:
        """Show the entries matching every word of `text` and the headers of their groups."""
        text = text.strip()
        for box, items in self._shown:
            for item, entry in items:
                item.visible = not text or entry.matches(text)
            box.visible = any(item.visible for item, _ in items)

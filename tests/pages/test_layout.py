"""The shared page frame: navigation, the shortcuts help, the remembered theme."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from designer.shortcuts import SHORTCUTS


def dark_value(user: User) -> bool | None:
    value: bool | None = user.find(kind=ui.dark_mode).elements.pop().value
    return value


async def test_every_page_links_the_others(user: User) -> None:
    for path in ("/", "/executions", "/instances"):
        await user.open(path)
        links = {e.props["href"] for e in user.find(kind=ui.link).elements}
        assert {"/", "/executions", "/instances"} <= links


async def test_help_lists_every_shortcut(user: User) -> None:
    await user.open("/executions")
    with user.scope(marker="help-dialog"):
        for shortcut in SHORTCUTS:
            for keys in shortcut.keys:
                await user.should_see(keys)
            await user.should_see(shortcut.description)
    assert {s.action for s in SHORTCUTS} >= {
        "delete",
        "undo",
        "redo",
        "copy",
        "paste",
        "select_all",
        "auto_layout",
        "fit_view",
        "help",
    }
    dialog = user.find(kind=ui.dialog, marker="help-dialog").elements.pop()
    assert not dialog.value
    user.find(marker="help-button").click()
    assert dialog.value


async def test_the_theme_cycles_and_is_remembered_per_browser(user: User) -> None:
    await user.open("/executions")
    assert dark_value(user) is None  # follows the system until chosen
    user.find(marker="theme-toggle").click()
    assert dark_value(user) is True
    await user.open("/instances")  # another page, same browser
    assert dark_value(user) is True
    user.find(marker="theme-toggle").click()
    assert dark_value(user) is False
    user.find(marker="theme-toggle").click()
    assert dark_value(user) is None
    await user.open("/")
    assert dark_value(user) is None

"""The shortcut list the canvas listens to: every combination of an action, nothing else."""

from __future__ import annotations

import pytest

from designer.shortcuts import SHORTCUTS, keymap


def test_keymap_lists_every_combination_of_the_chosen_actions() -> None:
    assert keymap(["redo", "select_all"]) == {
        "Ctrl+Shift+Z": "redo",
        "Ctrl+Y": "redo",
        "Ctrl+A": "select_all",
    }


def test_keymap_covers_the_whole_list_and_refuses_unknown_actions() -> None:
    assert set(keymap(s.action for s in SHORTCUTS).values()) == {s.action for s in SHORTCUTS}
    with pytest.raises(KeyError, match="no shortcut for action"):
        keymap(["undo", "teleport"])

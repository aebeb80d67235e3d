"""Undo histories kept across page reloads: per flow, in the server's memory.

Every edit is saved at once, so a reload finds the same flow in the database; what it used to
lose is the undo stack, which lived in the page. `HistoryStore` keeps the last history of each
flow (a snapshot of immutable states: no copy, no serialization per keystroke), and a page that
opens the flow again adopts it if the flow is still exactly where the history left it.

Kept in memory, not in the database or the browser: the states are whole flows, up to 200 per
flow, cheap to keep by reference but heavy to write on every keystroke or to send to the browser;
a history is worth little once the server restarts. Keys include the data directory, so two
servers (or two tests) in one process never share histories.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from designer.editing import FlowEditor, History

__all__ = ["HistoryStore", "histories"]


class HistoryStore:
    """The last undo history of up to `size` flows, least recently used dropped first."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._kept: OrderedDict[Hashable, tuple[int, History]] = OrderedDict()

    def keep(self, key: Hashable, revision: int, editor: FlowEditor) -> None:
        """Remember `editor`'s history as of the flow's saved `revision`."""
        self._kept[key] = (revision, editor.history())
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def restore(self, key: Hashable, revision: int, editor: FlowEditor) -> bool:
        """Give `editor` (just opened at `revision`) the history kept for `key`, if it fits."""
        kept = self._kept.get(key)
        if kept is None or kept[0] != revision:
            return False
        return editor.adopt_history(kept[1])


histories = HistoryStore()
"""The process's store (the editor pages of every browser tab share it)."""

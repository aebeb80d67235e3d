"""Typing is one revision: consecutive saves of one edit in progress keep the flow's revision.

`save_flow(..., edit="step:notify")` names what is being edited. The editor saves on every
keystroke (an edit is never only in the browser), but a burst of saves with the same `edit`,
each within `IDLE_SECONDS` of the previous one, with nothing else written to the flow in
between, overwrites the flow in place at the revision the burst's first save made. Anything
else (another edit, a pause, another editor's save, a rename) starts a new revision; another
editor's save in between makes the burst's next save stale (Conflict), as any stale save is.
The price: an editor who opened the flow during a burst, at the revision it keeps, and saves
before the burst ends is not refused, and overwrites the keystrokes saved after it opened (the
typist learns of it only with a next edit, which is refused as stale). The window is the
burst's idle time; without coalescing, each keystroke would be a revision and refuse that save.

What a burst has written is remembered per database engine, in this process: a second server
process sees only revisions, so at worst it does not coalesce.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import Engine

__all__ = ["IDLE_SECONDS", "Burst", "forget", "last_burst", "remember"]

IDLE_SECONDS = 5.0
"""A pause longer than this ends an edit: the next save is a new revision."""


@dataclass(frozen=True, slots=True)
class Burst:
    """The last save of an edit in progress: which edit, the revision and time it wrote."""

    edit: str
    revision: int
    written_at: float
    saved: float
    """`time.monotonic()` of that save."""

    def continues(self, edit: str | None, expected_revision: int, now: float) -> bool:
        """Whether a save of `edit` at `expected_revision` continues this burst."""
        return (
            edit == self.edit
            and expected_revision == self.revision
            and now - self.saved <= IDLE_SECONDS
        )


_lock = threading.Lock()
_bursts: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], Burst]] = (
    weakref.WeakKeyDictionary()
)


def last_burst(db: Engine, name: str, flow_id: str) -> Burst | None:
    """The burst the flow's last save belonged to, if it named an edit."""
    with _lock:
        return _bursts.get(db, {}).get((name, flow_id))


def remember(db: Engine, name: str, flow_id: str, burst: Burst | None) -> None:
    """Record the flow's last save (None: it named no edit, so no burst continues)."""
    with _lock:
        flows = _bursts.setdefault(db, {})
        if burst is None:
            flows.pop((name, flow_id), None)
        else:
            flows[(name, flow_id)] = burst


def forget(db: Engine, name: str, flow_id: str) -> None:
    """The flow was written some other way (renamed, deleted): no burst continues."""
    remember(db, name, flow_id, None)

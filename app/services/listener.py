"""Wake the workers when any process queues work: PostgreSQL's LISTEN/NOTIFY.

A transaction that queues inbox rows runs `NOTIFY flowyard_inbox` (`inbox.notify_queued`), which
PostgreSQL delivers when it commits. `InboxListener` holds one connection of its own in a thread,
listening on that channel, and calls `wake()` for each notification, so a worker on any host
claims within milliseconds of the commit. If the connection fails it reconnects every
`retry_seconds`; the workers' polling covers the gap, so a lost notification only delays work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from app.persistence.inbox import INBOX_CHANNEL

__all__ = ["InboxListener"]

log = logging.getLogger("flowyard.workers")


class InboxListener(threading.Thread):
    """Calls `wake` (from this thread) whenever work is queued in `engine`'s PostgreSQL."""

    def __init__(
        self, engine: Engine, wake: Callable[[], None], *, retry_seconds: float = 1.0
    ) -> None:
        super().__init__(name="flowyard-listen", daemon=True)
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._wake = wake
        self._retry = retry_seconds
        self._stopping = threading.Event()
        self.listening = threading.Event()
        """Set while the LISTEN connection is up (tests wait for it)."""

    def run(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {INBOX_CHANNEL}")
                    self.listening.set()
                    self._wake()  # anything queued while we were not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._wake()
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("listening for queued work failed (%s); polling meanwhile", exc)
            finally:
                self.listening.clear()
            self._stopping.wait(self._retry)

    def stop(self, *, wait: bool = True) -> None:
        """Stop listening (the thread notices within half a second); `wait` joins it."""
        self._stopping.set()
        if wait:
            self.join(5)

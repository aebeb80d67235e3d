"""Wake the workers when any process queues work, and forget changed instances: PostgreSQL's
LISTEN/NOTIFY.

A transaction that queues inbox rows runs `NOTIFY flowyard_inbox` (`inbox.notify_queued`), which
PostgreSQL delivers when it commits. `InboxListener` holds one connection of its own in a thread,
listening on that channel, and calls `wake()` for each notification, so a worker on any host
claims within milliseconds of the commit. A changed instance (`Hub.instance_changed`) is announced
on `flowyard_instances` with its id; the listener passes the id to `on_instance`, so every process
drops what it cached of it (an upgraded instance runs its new version everywhere, a rotated key is
used everywhere). If the connection fails it reconnects every `retry_seconds`; the workers'
polling covers the gap for queued work, and after a reconnect `on_instance(None)` forgets every
instance, since announcements made meanwhile were missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from app.persistence.inbox import INBOX_CHANNEL, INSTANCES_CHANNEL

__all__ = ["InboxListener"]

log = logging.getLogger("flowyard.workers")


class InboxListener(threading.Thread):
    """Calls `wake` (from this thread) whenever work is queued in `engine`'s PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        wake: Callable[[], None],
        *,
        on_instance: Callable[[str | None], None] | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        super().__init__(name="flowyard-listen", daemon=True)
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._wake = wake
        self._on_instance = on_instance
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
                    if self._on_instance is not None:
                        conn.execute(f"LISTEN {INSTANCES_CHANNEL}")
                        self._on_instance(None)  # announcements missed while not listening
                    self.listening.set()
                    self._wake()  # anything queued while we were not listening
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            if notice.channel == INSTANCES_CHANNEL and self._on_instance:
                                self._on_instance(notice.payload)
                            else:
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

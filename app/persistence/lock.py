"""One server per data directory.

A server process runs the workers of its database: at start it re-queues every execution left
`running`, which is right only when no other process is running them. `server_lock(data_dir)`
holds an exclusive OS file lock on `server.lock` in the data directory while the server runs;
a second server on the same directory refuses to start, naming it. The OS drops the lock when
the process ends, however it ends (a SIGKILLed server restarts at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["LOCK_FILE", "DataDirInUse", "server_lock"]

LOCK_FILE = "server.lock"


class DataDirInUse(RuntimeError):
    """Another server process holds the data directory."""


@contextmanager
def server_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this process; `DataDirInUse` if another one does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # One lock object per file in this process, reentrant: the CLI holds it around the server so
    # it can answer with a plain message, and the server's lifespan takes it again.
    lock = FileLock(data_dir / LOCK_FILE, timeout=0, thread_local=False, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise DataDirInUse(
            f"Another Flowyard server is using the data directory {data_dir.resolve()}: stop it, "
            "or start this one with another --data-dir."
        ) from None
    try:
        yield
    finally:
        lock.release()

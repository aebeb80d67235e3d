"""One server per data directory.

A server process runs the workers of its database: at start it re-queues every execution left
`running`, which is right only when no other process is running them. `server_lock(data_dir)`
holds an exclusive OS lock (`flock`; `msvcrt.locking` on Windows) on `server.lock` in the data
directory while the server runs; a second server on the same directory refuses to start, naming
it. The OS drops the lock when the process ends, however it ends (a SIGKILLed server restarts at
once). The lock belongs to one open file: taking it twice in one process also refuses, so the CLI
only checks it (`check_free`) and the server's lifespan holds it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_FILE", "DataDirInUse", "check_free", "server_lock"]

LOCK_FILE = "server.lock"


class DataDirInUse(RuntimeError):
    """Another server process holds the data directory."""


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - the project's machines are Linux
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def server_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this process; `DataDirInUse` if another one does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _try_lock(fd):
            raise DataDirInUse(
                f"Another Flowyard server is using the data directory {data_dir.resolve()}: "
                "stop it, or start this one with another --data-dir."
            )
        yield
    finally:
        os.close(fd)  # releases the lock


def check_free(data_dir: Path) -> None:
    """Raise `DataDirInUse` now if another server holds `data_dir` (for a plain CLI message)."""
    with server_lock(data_dir):
        pass

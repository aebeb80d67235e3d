"""Blocking work that a cancelled task still waits for: `to_thread_shielded`.

Cancelling a task that awaits `asyncio.to_thread` does not stop the thread: the task ends at
once while the thread's transaction goes on. A service loop cancelled by its pool's `stop()`
then commits after `stop()` returned (a claim leases rows nobody will run; a schedule fires
after shutdown), and gives its connection back after the host disposed the engine, into a pool
nobody closes (PostgreSQL's driver reports an open connection at garbage collection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["to_thread_shielded"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def to_thread_shielded(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`asyncio.to_thread`, except that when the caller is cancelled the cancellation reaches it
    only once `func` has returned (or raised), so whoever cancelled it and awaits it knows the
    thread's work is over. A second cancellation while waiting ends the wait."""
    future = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # An error `func` raises now is dropped: the caller is gone (shield marks it retrieved).
        await asyncio.wait([future])
        raise

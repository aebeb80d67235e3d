"""Where blocking work runs off the event loop, besides plain `asyncio.to_thread`.

- `to_thread_shielded`: blocking work that a cancelled task still waits for. Cancelling a task
  that awaits `asyncio.to_thread` does not stop the thread: the task ends at once while the
  thread's transaction goes on. A service loop cancelled by its pool's `stop()` then commits
  after `stop()` returned (a claim leases rows nobody will run; a schedule fires after shutdown)
  and gives its connection back after the host disposed the engine, into a pool nobody closes.
- `in_ingest_thread`: the webhook receive path's own threads (see `_INGEST`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["in_ingest_thread", "to_thread_shielded"]

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


_INGEST = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowyard-ingest")
"""`asyncio.to_thread` shares one small pool (`min(32, cores + 4)` threads) with everything else
the process does off the event loop: the workers' state reads, recorder commits, claims, lease
renewals, page queries. Under load that pool has a queue, and a webhook's inbox commit queued
behind execution work delayed its acknowledgement. The ingest path (routing lookups, the
`InboxWriter` commit, parsing large bodies) runs here instead. Two threads: the group-commit
writer keeps one busy; lookups take the other."""


async def in_ingest_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`asyncio.to_thread`, on the ingest path's own threads (acks never wait for a thread the
    workers hold)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_INGEST, functools.partial(func, *args, **kwargs))

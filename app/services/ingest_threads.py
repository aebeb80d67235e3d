"""Threads of the webhook receive path, kept apart from the default executor.

`asyncio.to_thread` shares one small pool (`min(32, cores + 4)` threads) with everything else the
process does off the event loop: the workers' state reads, recorder commits, claims, lease
renewals, page queries. Under load that pool has a queue, and a webhook's inbox commit queued
behind execution work delayed its acknowledgement. The ingest path (`routing` lookups, the
`InboxWriter` commit, parsing large bodies) runs here instead, so acks never wait for a thread
the workers hold. Two threads: the group-commit writer keeps one busy; lookups take the other.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["in_ingest_thread"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowyard-ingest")


async def in_ingest_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`asyncio.to_thread`, on the ingest path's own threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(func, *args, **kwargs))

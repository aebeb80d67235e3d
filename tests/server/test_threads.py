"""`to_thread_shielded`: a cancelled caller ends only after its thread's work has ended."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.services.threads import to_thread_shielded


async def test_returns_and_raises_like_to_thread() -> None:
    assert await to_thread_shielded(lambda a, b: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        await to_thread_shielded(lambda: 1 / 0)


async def test_a_cancelled_caller_waits_until_the_thread_has_finished() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def work() -> str:
        started.set()
        release.wait(10)
        done.append("committed")
        return "ok"

    task = asyncio.create_task(to_thread_shielded(work))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # plain asyncio.to_thread ends here, its thread still working
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["committed"]

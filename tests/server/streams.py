"""A steady stream of webhooks, sent the way real senders do: paced, each retried until it is
acknowledged (503 and dropped connections are retried; any other refusal fails the test)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp

__all__ = ["Request", "plain_request", "stream_webhooks"]

Request = Callable[[int], tuple[bytes, dict[str, str]]]
"""Delivery number -> (body, headers), the same on every retry of that delivery."""


def plain_request(n: int) -> tuple[bytes, dict[str, str]]:
    """`{"n": n}` with `Idempotency-Key: d-<n>`."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"d-{n}"}
    return json.dumps({"n": n}).encode(), headers


async def stream_webhooks(
    url: str,
    total: int,
    rate: float,
    refused: list[int] | None = None,
    *,
    request: Request = plain_request,
    give_up: float = 60.0,
) -> dict[int, str]:
    """POST `request(n)` for n < `total` at `rate`/s; returns {n: execution id}. The numbers
    answered 503 (before a retry) are appended to `refused`; a delivery still unacknowledged
    after `give_up` seconds fails the test (a sender whose server is gone must end)."""
    acked: dict[int, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:

        async def one(n: int) -> None:
            deadline = time.monotonic() + give_up
            while time.monotonic() < deadline:
                body, headers = request(n)
                try:
                    async with client.post(url, data=body, headers=headers) as response:
                        status, text = response.status, await response.text()
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
                if status in (200, 202):
                    acked[n] = json.loads(text)["execution_id"]
                    return
                assert status == 503, f"webhook {n}: {status} {text}"
                if refused is not None:
                    refused.append(n)
                await asyncio.sleep(0.3)
            raise AssertionError(f"webhook {n} was not acknowledged within {give_up:g} s")

        start = time.monotonic()
        tasks = []
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return acked

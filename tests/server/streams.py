"""A steady stream of webhooks, sent the way real senders do: paced, each retried until it is
acknowledged (503 and dropped connections are retried; any other refusal fails the test)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

__all__ = ["stream_webhooks"]


async def stream_webhooks(
    url: str, total: int, rate: float, refused: list[int] | None = None
) -> dict[int, str]:
    """POST `{"n": n}` for n < `total` at `rate`/s with `Idempotency-Key: d-<n>`; returns
    {n: execution id}. The numbers answered 503 (before a retry) are appended to `refused`."""
    acked: dict[int, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:

        async def one(n: int) -> None:
            while True:
                try:
                    async with client.post(
                        url, json={"n": n}, headers={"Idempotency-Key": f"d-{n}"}
                    ) as response:
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

        start = time.monotonic()
        tasks = []
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return acked

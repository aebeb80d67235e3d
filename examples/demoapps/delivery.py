"""Signed webhook delivery with retries: the queue lives in the app's SQLite file.

Every change a subscription covers becomes a delivery row. A background task POSTs due
deliveries one at a time, oldest first, with an HMAC-SHA256 of the exact body in
`<prefix>-Signature: sha256=<hex>` and the delivery id in `<prefix>-Delivery` (the same id on
every retry, so a receiver can drop redeliveries). A 2xx answer delivers it; anything else
(an error status, a refused connection, a timeout) schedules another attempt after
`delay * 2**(attempt - 1)` seconds, capped at `max_delay`, until `max_attempts` have failed.
Pending deliveries survive a restart of the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

import httpx

from examples.demoapps.store import Attempt, Delivery, Store

__all__ = ["DeliveryQueue", "RetryPolicy", "sign"]

log = logging.getLogger("demoapps.delivery")


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body`: `sha256=` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When failed deliveries are tried again."""

    delay: float = 1.0
    max_delay: float = 60.0
    max_attempts: int = 10
    timeout: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.delay * 2 ** (attempt - 1), self.max_delay))


class DeliveryQueue:
    """Sends the app's pending deliveries in the background (`start`, `wake`, `stop`)."""

    def __init__(self, store: Store, header_prefix: str, policy: RetryPolicy) -> None:
        self.store = store
        self.header_prefix = header_prefix
        self.policy = policy
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(trust_env=False, timeout=self.policy.timeout)
        self._task = asyncio.create_task(self._run(), name=f"{self.header_prefix} deliveries")

    def wake(self) -> None:
        """New deliveries were queued: look at the queue now."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            for delivery in self.store.due(time.time()):
                try:
                    await self._send(delivery)
                except Exception as exc:  # a bug here must not stop every later delivery
                    log.exception("delivery %s could not be processed", delivery.id)
                    failed = Attempt(0, time.time(), None, f"internal error: {exc}", None)
                    with contextlib.suppress(Exception):
                        self.store.record_attempt(delivery, failed, "failed", time.time())
            next_due = self.store.next_due()
            wait = 1.0 if next_due is None else max(0.0, min(1.0, next_due - time.time()))
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _send(self, delivery: Delivery) -> None:
        assert self._client is not None
        sub = self.store.subscription(delivery.subscription_id)
        if sub is None:  # deleted since; `delete_subscription` cancelled it already
            return
        number = len(self.store.attempts(delivery.id)) + 1
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"{self.header_prefix.removeprefix('X-')}-Webhooks/1.0",
            f"{self.header_prefix}-Signature": sign(sub.secret, body),
            f"{self.header_prefix}-Delivery": delivery.id,
            f"{self.header_prefix}-Event": delivery.event,
        }
        status_code: int | None = None
        try:
            response = await self._client.post(sub.url, content=body, headers=headers)
            status_code = response.status_code
            error = "" if response.is_success else f"HTTP {status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        now = time.time()
        if not error:
            attempt = Attempt(number, now, status_code, "", None)
            self.store.record_attempt(delivery, attempt, "delivered", now)
            return
        if number >= self.policy.max_attempts:
            log.warning("delivery %s to %s failed for good: %s", delivery.id, sub.url, error)
            attempt = Attempt(number, now, status_code, error, None)
            self.store.record_attempt(delivery, attempt, "failed", now)
            return
        retry_in = self.policy.backoff(number)
        log.info(
            "delivery %s to %s failed (%s); retry in %g s", delivery.id, sub.url, error, retry_in
        )
        attempt = Attempt(number, now, status_code, error, retry_in)
        self.store.record_attempt(delivery, attempt, "pending", now + retry_in)

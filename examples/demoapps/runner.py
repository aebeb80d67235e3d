"""Run both demo apps in one process until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from examples.demoapps.delivery import RetryPolicy
from examples.demoapps.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from examples.demoapps.server import DemoApp
from examples.demoapps.specs import ACME, CRM

__all__ = [
    "DEFAULT_ACME_KEY",
    "DEFAULT_ACME_PORT",
    "DEFAULT_CRM_KEY",
    "DEFAULT_CRM_PORT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_TOKEN_TTL",
    "run",
    "serve",
]

DEFAULT_CRM_PORT = 8091
DEFAULT_ACME_PORT = 8092
DEFAULT_CRM_KEY = "crm-demo-key"
DEFAULT_ACME_KEY = "acme-demo-key"
DEFAULT_TOKEN_TTL = 300.0
"""Seconds a CRM OAuth access token lives."""
DEFAULT_DATA_DIR = Path(".flowyard/demo-apps")
HOST = "127.0.0.1"


async def serve(
    data_dir: Path,
    *,
    crm_port: int = DEFAULT_CRM_PORT,
    acme_port: int = DEFAULT_ACME_PORT,
    crm_key: str = DEFAULT_CRM_KEY,
    acme_key: str = DEFAULT_ACME_KEY,
    policy: RetryPolicy | None = None,
    token_ttl: float = DEFAULT_TOKEN_TTL,
) -> None:
    """Serve the CRM and Acme on 127.0.0.1 until SIGINT/SIGTERM (or until cancelled)."""
    apps = [
        (DemoApp(CRM, data_dir, crm_key, policy, token_ttl=token_ttl), crm_port),
        (DemoApp(ACME, data_dir, acme_key, policy), acme_port),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        for app, port in apps:
            url = await app.start(HOST, port)
            print(f"{app.spec.name:<9} {url}  (API key: {app.api_key})", flush=True)
        print(
            f"CRM OAuth client: {DEFAULT_CLIENT_ID} / {DEFAULT_CLIENT_SECRET}, access tokens "
            f"live {token_ttl:g} s",
            flush=True,
        )
        print(f"Data in {data_dir}. Stop with Ctrl-C.", flush=True)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for app, _ in apps:
            await app.stop()


def run(
    data_dir: Path,
    *,
    crm_port: int = DEFAULT_CRM_PORT,
    acme_port: int = DEFAULT_ACME_PORT,
    crm_key: str = DEFAULT_CRM_KEY,
    acme_key: str = DEFAULT_ACME_KEY,
    policy: RetryPolicy | None = None,
    token_ttl: float = DEFAULT_TOKEN_TTL,
) -> int:
    """`serve` as a command: exit status 0 after a stop, 2 when a port cannot be bound."""
    try:
        asyncio.run(
            serve(
                data_dir.resolve(),
                crm_port=crm_port,
                acme_port=acme_port,
                crm_key=crm_key,
                acme_key=acme_key,
                policy=policy,
                token_ttl=token_ttl,
            )
        )
    except OSError as exc:
        print(f"error: the demo apps could not start: {exc}", file=sys.stderr)
        return 2
    return 0

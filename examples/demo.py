"""What `make run` runs for now: the warehouse import against a tiny local destination app.

Starts a "destination app" on 127.0.0.1 that records the inventory changes posted to it, runs
`flowyard run examples/warehouse-import.yaml` against it (the very command a user types), then
prints what the destination received.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


async def main() -> int:
    received: list[dict[str, Any]] = []

    async def inventory(request: web.Request) -> web.Response:
        received.append(
            {
                "path": request.path,
                "api_key": request.headers.get("X-API-Key"),
                "body": await request.json(),
            }
        )
        return web.json_response({"accepted": True})

    destination = web.Application()
    destination.router.add_post("/inventory/{item}", inventory)
    runner = web.AppRunner(destination, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    print(f"Destination app listening on {url}\n")
    try:
        command = [
            sys.executable,
            "-m",
            "app",
            "run",
            "examples/warehouse-import.yaml",
            "--flow",
            "warehouse_update",
            "--payload",
            "examples/payloads/warehouse-update.json",
            "--config",
            f"destination_url={url}",
            "--connection",
            "warehouse_api.api_key=demo-key",
        ]
        print("$ flowyard " + " ".join(command[3:]) + "\n")
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
        code = await process.wait()
    finally:
        await runner.cleanup()
    print(f"\nThe destination app received {len(received)} request(s):")
    for request in received:
        print(f"  POST {request['path']}  {json.dumps(request['body'])}")
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

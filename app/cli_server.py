"""The server half of the `flowyard` CLI: `serve`, `worker`, `desktop`, `import`, `publish`,
`export`.

`import`, `publish` and `export` talk to a running server with `--server URL` (through the REST
API), or work directly on a data directory with the same services the API uses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli import EXIT_INVALID, app
from app.persistence import SecretBox, load_secret_key, open_database
from app.persistence.db import DatabaseError, database_url, open_database_checked
from app.persistence.lock import DataDirInUse, check_free
from app.services.errors import ServiceError
from app.services.hub import Hub
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client

__all__ = ["demo_apps", "desktop", "export_command", "import_command", "serve", "worker"]

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", help="Data directory (database, secret key).", metavar="DIR"),
]
ServerUrl = Annotated[
    str | None,
    typer.Option("--server", help="Talk to a running server instead of a data directory."),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; beyond loopback needs a login.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    data_dir: DataDir = Path(".flowyard"),
    public_url: Annotated[
        str, typer.Option(help="URL the server is reached at (webhook URLs start with it).")
    ] = "",
    components_dir: Annotated[
        Path | None, typer.Option(help="Folder of custom components.", metavar="DIR")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Executions run at once (mostly I/O-bound); 0: none, `flowyard worker` "
            "processes run them (needs PostgreSQL).",
            min=0,
        ),
    ] = Settings.workers,
    worker_processes: Annotated[
        int,
        typer.Option(
            help="`flowyard worker` processes to start beside the server (PostgreSQL only).",
            min=0,
        ),
    ] = 0,
) -> None:
    """Serve the API, the webhooks and the designer until interrupted."""
    import uvicorn

    from app.http_server import uvicorn_options
    from app.local_workers import LocalWorkers
    from app.server import api_token, create_app

    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        public_url=public_url,
        components_dir=_components_dir(components_dir),
        workers=workers,
        settle_heap=True,
    )
    sqlite = database_url(data_dir).startswith("sqlite")
    if sqlite:
        try:
            check_free(data_dir)  # the server holds the lock; checked here for a plain message
        except DataDirInUse as exc:
            _fail(str(exc))
        if worker_processes:
            _fail(
                "--worker-processes needs PostgreSQL (FLOWYARD_DATABASE_URL): a SQLite file "
                "belongs to one server process."
            )
    _check_database(data_dir)
    typer.echo(f"Flowyard serving on {settings.base_url} (data in {data_dir.resolve()})")
    typer.echo(f"API docs: {settings.base_url}/api/docs")
    if not settings.loopback_only:
        typer.echo(
            f"Bound beyond loopback: /api needs 'Authorization: Bearer {api_token(data_dir)}'"
        )
    local = LocalWorkers(settings, worker_processes) if worker_processes else None
    if local is not None:
        # uvicorn re-raises the SIGTERM it handled once it has shut down; exit through
        # `finally` then, so the workers are stopped rather than orphaned.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        local.start()
        typer.echo(f"Started {worker_processes} worker processes: {local.pids}")
    try:
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options(settings))
    finally:
        if local is not None:
            local.stop()


def _components_dir(given: Path | None) -> Path | None:
    """`--components-dir`, else `FLOWYARD_COMPONENTS_DIR`."""
    configured = os.environ.get("FLOWYARD_COMPONENTS_DIR")
    return given or (Path(configured) if configured else None)


def _check_database(data_dir: Path) -> None:
    """Open (and migrate) the database now, so a bad URL, an unreachable server or a newer
    schema is one line and exit 2, not a traceback from inside the server."""
    try:
        open_database_checked(data_dir).dispose()
    except DatabaseError as exc:
        _fail(str(exc))


@app.command()
def worker(
    data_dir: DataDir = Path(".flowyard"),
    components_dir: Annotated[
        Path | None, typer.Option(help="Folder of custom components.", metavar="DIR")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Executions run at once (mostly I/O-bound).", min=1)
    ] = Settings.workers,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve GET /health on 127.0.0.1 at this port.", metavar="PORT"),
    ] = None,
    grace: Annotated[
        float, typer.Option(help="Seconds a stopping worker lets executions finish.")
    ] = 30.0,
    exit_with: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Claim and run executions from the shared database (PostgreSQL) until stopped."""
    from app.worker import WorkerError, run_worker

    settings = Settings(
        data_dir=data_dir,
        components_dir=_components_dir(components_dir),
        workers=workers,
        settle_heap=True,
    )
    try:
        asyncio.run(run_worker(settings, health_port=health_port, grace=grace, parent=exit_with))
    except WorkerError as exc:
        _fail(str(exc))


@app.command()
def desktop(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1; 0 picks a free one.")] = 0,
    data_dir: DataDir = Path(".flowyard"),
) -> None:
    """Open the app in a native window; closing it stops the server (needs the desktop extra)."""
    from app.desktop import run_desktop

    run_desktop(port=port, data_dir=data_dir)


@asynccontextmanager
async def _local_hub(data_dir: Path) -> AsyncIterator[Hub]:
    db = open_database(data_dir)
    try:
        async with make_http_client() as http:
            yield Hub(
                settings=Settings(data_dir=data_dir),
                db=db,
                registry=default_registry(),
                http=http,
                box=SecretBox(load_secret_key(data_dir)),
            )
    finally:
        db.dispose()


def _server_headers() -> dict[str, str]:
    token = os.environ.get("FLOWYARD_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _fail(message: str, details: Any = None) -> None:
    typer.echo(f"error: {message}", err=True)
    if isinstance(details, list):
        for item in details:
            typer.echo(f"  {item}", err=True)
    elif details:
        typer.echo(f"  {details}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if response.status_code >= 400:
        _fail(body.get("error", f"HTTP {response.status_code}"), body.get("details"))
    return body


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Integration file (YAML or JSON).")],
    server: ServerUrl = None,
    data_dir: DataDir = Path(".flowyard"),
) -> None:
    """Import an integration file (a new one, or a new draft of an existing one)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")
    if server:
        response = httpx.post(
            f"{server.rstrip('/')}/api/integrations",
            content=text.encode(),
            headers={"Content-Type": "application/yaml", **_server_headers()},
            timeout=30,
        )
        summary = _answer(response)
    else:
        from app.services import integrations

        async def local() -> Any:
            async with _local_hub(data_dir) as hub:
                return await integrations.import_integration(hub, text, source=file.name)

        try:
            summary = asyncio.run(local())
        except ServiceError as exc:
            _fail(exc.message, exc.details)
        summary = summary if isinstance(summary, dict) else _as_dict(summary)
    typer.echo(f"imported {summary.get('name')} (version {summary.get('version')})")


@app.command("export")
def export_command(
    name: Annotated[str, typer.Argument(help="Integration name.")],
    server: ServerUrl = None,
    data_dir: DataDir = Path(".flowyard"),
    version: Annotated[int | None, typer.Option(help="Version; default the newest.")] = None,
) -> None:
    """Print an integration as its YAML file."""
    if server:
        params = {"version": version} if version else {}
        response = httpx.get(
            f"{server.rstrip('/')}/api/integrations/{name}/export",
            params=params,
            headers=_server_headers(),
            timeout=30,
        )
        if response.status_code >= 400:
            _answer(response)
        typer.echo(response.text, nl=False)
        return
    from app.services import integrations

    async def local() -> str:
        async with _local_hub(data_dir) as hub:
            return await integrations.export_integration(hub, name, version)

    try:
        typer.echo(asyncio.run(local()), nl=False)
    except ServiceError as exc:
        _fail(exc.message, exc.details)


@app.command("publish")
def publish_command(
    name: Annotated[str, typer.Argument(help="Integration name.")],
    note: Annotated[str, typer.Option(help="What changed, shown in the version history.")] = "",
    server: ServerUrl = None,
    data_dir: DataDir = Path(".flowyard"),
) -> None:
    """Freeze an integration's draft as a new version that instances can run."""
    if server:
        response = httpx.post(
            f"{server.rstrip('/')}/api/integrations/{name}/publish",
            json={"note": note or None},
            headers=_server_headers(),
            timeout=30,
        )
        version = _answer(response)["version"]
    else:
        from app.services import integrations

        async def local() -> int:
            async with _local_hub(data_dir) as hub:
                return await integrations.publish(hub, name, note)

        try:
            version = asyncio.run(local())
        except ServiceError as exc:
            _fail(exc.message, exc.details)
    typer.echo(f"published {name} version {version}")


def _as_dict(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        data: dict[str, Any] = value.model_dump(mode="json")
        return data
    return dict(vars(value))


@app.command("demo-apps")
def demo_apps(
    crm_port: Annotated[int, typer.Option(help="Port of the demo CRM.")] = 8091,
    acme_port: Annotated[int, typer.Option(help="Port of the demo Acme app.")] = 8092,
    data_dir: Annotated[
        Path, typer.Option(help="Folder of the apps' SQLite files.", metavar="DIR")
    ] = Path(".flowyard/demo-apps"),
) -> None:
    """Run the demo CRM and Acme apps of examples/crm-acme.yaml on 127.0.0.1 until interrupted."""
    try:
        from examples.demoapps import run
    except ImportError:
        _fail("the demo apps ship with the source tree: run this from a Flowyard checkout")
    raise typer.Exit(run(data_dir, crm_port=crm_port, acme_port=acme_port))

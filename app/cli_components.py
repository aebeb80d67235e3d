"""`flowyard component ...`: tools for custom components (today: `from-openapi`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from app.cli import EXIT_INVALID, app
from app.services.apis import generate
from components.openapi import OpenApiError, load_document

__all__ = ["from_openapi"]

component_app = typer.Typer(
    help="Make custom components.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(component_app, name="component")


@component_app.command("from-openapi")
def from_openapi(
    spec: Annotated[str, typer.Argument(help="OpenAPI 3.0/3.1 file (JSON or YAML) or URL.")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Component key (default: from the API's title)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder to write into (default: FLOWYARD_COMPONENTS_DIR, else "
            "./components-custom).",
        ),
    ] = None,
) -> None:
    """Turn an OpenAPI document into a custom component: one action per operation."""
    folder = out or Path(os.environ.get("FLOWYARD_COMPONENTS_DIR") or "components-custom")
    try:
        added = generate(load_document(spec), folder, source=spec, key=name)
    except (OpenApiError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        typer.echo(f"error: cannot write into {folder}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(
        f"wrote {added.module} ({added.actions} actions"
        + (f" in {added.tags} tags" if added.tags else "")
        + ")"
    )
    for where, reason in added.skipped:
        typer.echo(f"skipped {where}: {reason}")
    typer.echo(f"load it with --components-dir {folder} (or FLOWYARD_COMPONENTS_DIR={folder})")

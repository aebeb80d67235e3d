"""The bundled example integrations (`examples/*.yaml`), offered on an empty start page.

`bundled_examples(hub)` lists the examples this install can run: files whose every trigger and
action is in the registry (the CRM and Acme example needs its own components, loaded with
`FLOWYARD_COMPONENTS_DIR=examples/components`). `import_example(hub, file_name)` imports one by
its file name, as an upload of that file would; an unknown name is NotFound.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from app.services.errors import NotFound
from app.services.hub import Hub
from app.services.integrations import IntegrationSummary, import_integration
from runtime.files import IntegrationFileError, parse_integration

__all__ = ["EXAMPLES", "Example", "bundled_examples", "import_example"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
"""Where the examples live: the repository's `examples/` (absent from a wheel: none offered)."""


class Example(BaseModel):
    """One bundled example: its file, the integration's name and description."""

    file: str
    name: str
    description: str = ""


async def bundled_examples(hub: Hub, folder: Path = EXAMPLES) -> list[Example]:
    """The examples in `folder` this install can run, by name."""
    return await asyncio.to_thread(_examples, hub, folder)


def _examples(hub: Hub, folder: Path) -> list[Example]:
    found: list[Example] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            integration = parse_integration(path.read_text(encoding="utf-8"), path.name)
        except (OSError, UnicodeDecodeError, IntegrationFileError):
            continue  # not an integration file this version reads: not offered
        try:
            for flow in integration.flows:
                hub.registry.trigger(flow.trigger.action)
                for step in flow.steps:
                    hub.registry.action(step.action)
        except LookupError:
            continue  # needs components this install does not have
        found.append(
            Example(file=path.name, name=integration.name, description=integration.description)
        )
    return sorted(found, key=lambda e: e.name)


async def import_example(hub: Hub, file_name: str, folder: Path = EXAMPLES) -> IntegrationSummary:
    """Import the bundled example `file_name` (e.g. `order-export.yaml`)."""
    offered = {e.file for e in await bundled_examples(hub, folder)}
    if file_name not in offered:
        raise NotFound(
            f"There is no bundled example '{file_name}'.",
            hint=f"Pick one of: {', '.join(sorted(offered)) or 'none are installed'}.",
        )
    text = (folder / file_name).read_text(encoding="utf-8")
    return await import_integration(hub, text, source=file_name)

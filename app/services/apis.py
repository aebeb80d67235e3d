"""APIs added from OpenAPI documents: generated components kept in the data directory.

`generate` writes a component module and its document (what `flowyard component from-openapi`
and the designer's "Add an API" dialog both produce). The dialog writes into `<data-dir>/apis/`,
which `serve`, `desktop` and `worker` load beside the custom components folder (`registry_for`).
On several hosts, every host that runs executions needs the same folder (a shared or copied
data directory), like any custom component.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.errors import InvalidInput
from app.settings import Settings
from components.openapi import (
    ApiSpec,
    OpenApiError,
    api_component,
    load_document,
    parse_document,
)
from components.registry import Registry, default_registry

__all__ = ["AddedApi", "add_api", "apis_dir", "generate", "registry_for"]

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

_TEMPLATE = '''"""{title}: a Flowyard component generated from an OpenAPI document.

Generated from {source} on {date}: {count} actions, one per operation of
`{document}` next to this file (regenerate rather than edit).{connection}
"""

from pathlib import Path

from components.openapi import component_from_file

component = component_from_file(
    Path(__file__).with_name({document!r}),
    key={key!r},
    title={title!r},
)
'''


@dataclass(frozen=True, slots=True)
class AddedApi:
    """What an added API became: its component key, module file and operations."""

    key: str
    module: Path
    actions: int
    tags: int
    skipped: list[tuple[str, str]]
    connection_types: list[str]


def apis_dir(data_dir: Path) -> Path:
    """Where the designer's "Add an API" writes generated components."""
    return data_dir / "apis"


def registry_for(settings: Settings) -> Registry:
    """Built-ins, entry points, the custom components folder and the APIs added in the UI."""
    registry = default_registry(settings.components_dir)
    added = apis_dir(settings.data_dir)
    if added.is_dir():
        registry.load_folder(added)
    return registry


def generate(
    document: Mapping[str, Any], out: Path, *, source: str, key: str | None = None
) -> AddedApi:
    """Write `<key>.py` and `<key>.openapi.json` into `out` for a checked OpenAPI `document`.
    `OpenApiError` when it has nothing to call, `ValueError` for a bad key."""
    spec = ApiSpec.from_document(document)
    key = key or key_of(spec.title)
    if not _KEY.match(key):
        raise ValueError(
            f"'{key}' cannot be a component key: use lower-case letters, digits and _ , "
            "starting with a letter."
        )
    if not spec.operations:
        raise OpenApiError(f"{source} has no operations Flowyard can call.")
    api_component(spec, key=key)  # every action class builds: fail here, not at server start
    out.mkdir(parents=True, exist_ok=True)
    document_name = f"{key}.openapi.json"
    (out / document_name).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    types: list[str] = sorted(
        {op.auth.connection_type for op in spec.operations if op.auth is not None}
    )
    connection = (
        f"\n\nSecured operations take a connection slot (default '{key}') of type\n"
        f"{' or '.join(types)}: add it to the integration's connections."
        if types
        else ""
    )
    module = out / f"{key}.py"
    module.write_text(
        _TEMPLATE.format(
            title=spec.title.replace('"""', "'''"),
            source=source if len(source) < 120 else source[:120] + "...",
            date=time.strftime("%Y-%m-%d"),
            count=len(spec.operations),
            document=document_name,
            connection=connection,
            key=key,
        ),
        encoding="utf-8",
    )
    return AddedApi(
        key=key,
        module=module,
        actions=len(spec.operations),
        tags=len({op.tag for op in spec.operations if op.tag}),
        skipped=spec.skipped,
        connection_types=types,
    )


def key_of(title: str) -> str:
    """A component key from an API's title (`Swagger Petstore` -> `swagger_petstore`)."""
    key = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:40] or "api"
    return key if key[0].isalpha() else f"api_{key}"


async def add_api(
    registry: Registry,
    data_dir: Path,
    *,
    url: str | None = None,
    upload: bytes | None = None,
    name: str = "",
    key: str = "",
) -> AddedApi:
    """Generate a component from a document at `url` or `upload`ed bytes (named `name`) into
    `<data_dir>/apis/` and register it in `registry` now (a regenerated API replaces its older
    self); `InvalidInput` names what is wrong, and then nothing is written."""
    if (url is None) == (upload is None):
        raise InvalidInput("Give either the URL of an OpenAPI document or a file.")
    source = url or name or "an uploaded file"
    key = key.strip()
    if key and not _KEY.match(key):
        raise InvalidInput(
            f"'{key}' cannot be a component key.",
            hint="Use lower-case letters, digits and _, starting with a letter.",
        )

    def build() -> AddedApi:
        document = (
            load_document(url) if url is not None else parse_document(upload or b"", name=source)
        )
        spec_key = key or key_of(str(document.get("info", {}).get("title") or "api"))
        folder = apis_dir(data_dir)
        if registry.get(spec_key) is not None and not (folder / f"{spec_key}.py").is_file():
            raise ValueError(
                f"A component '{spec_key}' is already installed; choose another name for this API."
            )
        added = generate(document, folder, source=source, key=spec_key)
        registry.load_file(added.module, replace=True)
        return added

    try:
        return await asyncio.to_thread(build)
    except (OpenApiError, ValueError) as exc:
        raise InvalidInput(str(exc)) from None

"""`flowyard replay EXECUTION_ID --draft`: replay a past execution on the draft and print the diff.

Through a running server (`--server URL`, `POST /api/executions/{id}/replay-on-draft`) or on a
data directory (`app.services.replay.replay_on_draft`). The request is answered by the
execution's recorded responses: nothing is sent again, nothing is stored.

Exit codes: 0 the replay matches the original; 1 it differs; 2 the execution cannot be
replayed (unknown, unfinished, its flow gone from the draft) or an option is wrong.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli import EXIT_FAILED, EXIT_OK, ConfigOption, _pairs, app, summarize
from app.cli_server import (
    DataDir,
    ServerUrl,
    _answer,
    _fail,
    _local_hub,
    _server_headers,
)
from app.services.errors import ServiceError
from app.services.replay import ReplayDiff

__all__ = ["diff_lines", "replay_command"]

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@app.command(name="replay")
def replay_command(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID", help="A past run.")],
    draft: Annotated[
        bool, typer.Option("--draft", help="Run it on the integration's draft (required).")
    ] = False,
    config: ConfigOption = None,
    server: ServerUrl = None,
    data_dir: DataDir = Path(".flowyard"),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the diff as one JSON document.")
    ] = False,
) -> None:
    """Replay a past execution on the current draft, answered by its recorded responses, and
    print the per-step diff. Exit 0 identical, 1 different, 2 cannot replay."""
    if not draft:
        _fail(
            "flowyard replay needs --draft (replaying on the deployed version is "
            "POST /api/executions/{id}/replay)."
        )
    overrides = dict(_pairs(config or [], "--config", "key=value"))
    if server:
        response = httpx.post(
            f"{server.rstrip('/')}/api/executions/{execution_id}/replay-on-draft",
            json={"config": overrides},
            headers=_server_headers(),
            timeout=120,
        )
        diff = ReplayDiff.model_validate(_answer(response))
    else:
        from app.services.replay import replay_on_draft

        async def local() -> ReplayDiff:
            async with _local_hub(data_dir) as hub:
                return await replay_on_draft(hub, execution_id, overrides)

        try:
            diff = asyncio.run(local())
        except ServiceError as exc:
            _fail(exc.message, exc.details)
    if json_output:
        typer.echo(diff.model_dump_json(indent=2))
    else:
        for line in diff_lines(diff):
            typer.echo(line)
    raise typer.Exit(EXIT_OK if diff.identical else EXIT_FAILED)


def diff_lines(diff: ReplayDiff) -> list[str]:
    """The diff as text: the runs' statuses, steps in one run only, each step's changed paths."""
    lines = [
        f"Replay of {diff.execution_id} on the draft of '{diff.integration}' "
        f"(version {diff.draft_version}), flow {diff.flow_id}: original {diff.original_status}, "
        f"replay {diff.replay_status}.",
    ]
    if diff.replay_error:
        lines.append(f"Replay error: {diff.replay_error.get('message')}")
    if diff.only_original:
        lines.append(f"Only in the original: {', '.join(diff.only_original)}")
    if diff.only_replay:
        lines.append(f"Only in the replay: {', '.join(diff.only_replay)}")
    for step in diff.steps:
        label = step.step_id + "".join(f"[{i}]" for i in step.iteration)
        if not step.changed:
            lines.append(f"  {label}: same")
            continue
        lines.append(f"  {label}: changed")
        for what in ("status", "port", "input", "output", "error"):
            side = getattr(step, what)
            for path in side.changed:
                where = f"{what}.{path}" if path else what
                before, after = _at(side.original, path), _at(side.replay, path)
                lines.append(f"    {where}: {summarize(before, 60)} -> {summarize(after, 60)}")
    lines.append("Identical." if diff.identical else "Different.")
    return lines


def _at(value: Any, path: str) -> Any:
    """The value at a `runtime.diffing` path (`<missing>` when a side lacks it)."""
    if path == "...":
        return "..."
    for name, index in _PATH_PART.findall(path):
        if index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        elif name and isinstance(value, dict) and name in value:
            value = value[name]
        else:
            return "<missing>"
    return value

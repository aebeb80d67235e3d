"""`flowyard replay EXECUTION_ID --draft` on a data directory: prints the per-step diff, exit 0
when identical, 1 when different, 2 when the execution cannot be replayed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli import app
from app.cli_replay import replay_command  # noqa: F401  (registers `replay`)
from tests.server.test_dispatcher_support import KEY
from tests.server.test_replay import TOTAL, edit_draft, setup, with_steps


def invoke(*args: str | Path) -> Result:
    env = {"FLOWYARD_SECRET_KEY": KEY.decode()}  # the key the test hub encrypted config with
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def recorded_run(tmp_path: Path, *, edit: bool) -> str:
    """A data directory at tmp_path/data holding one finished execution; its id."""

    async def prepare() -> str:
        async with setup(tmp_path) as (hub, _api, execution_id):
            if edit:
                tripled = {
                    **TOTAL,
                    "inputs": {"fields": {"total": "{{ steps.fetch.output.body.price * 3 }}"}},
                }
                edit_draft(
                    hub,
                    lambda flow: with_steps(
                        flow,
                        [flow.steps[0].model_dump(by_alias=True), tripled],
                        [{"from": "trigger", "to": "fetch"}, {"from": "fetch", "to": "total"}],
                    ),
                )
            return execution_id

    return asyncio.run(prepare())


def test_an_unchanged_draft_replays_identically(tmp_path: Path) -> None:
    execution_id = recorded_run(tmp_path, edit=False)
    result = invoke("replay", execution_id, "--draft", "--data-dir", tmp_path / "data")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Replay of {execution_id} on the draft of 'Integration shop'")
    assert "original succeeded, replay succeeded" in lines[0]
    assert "  total: same" in lines
    assert lines[-1] == "Identical."


def test_an_edited_draft_prints_the_changed_paths(tmp_path: Path) -> None:
    execution_id = recorded_run(tmp_path, edit=True)
    result = invoke("replay", execution_id, "--draft", "--data-dir", tmp_path / "data")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "  total: changed" in lines
    assert '    output.sku: "A1" -> "<missing>"' in lines
    assert "    output.total: 15 -> 15" not in lines
    assert lines[-1] == "Different."
    as_json = invoke("replay", execution_id, "--draft", "--data-dir", tmp_path / "data", "--json")
    diff = json.loads(as_json.stdout)
    total = next(s for s in diff["steps"] if s["step_id"] == "total")
    assert total["output"]["changed"] == ["sku"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--draft"], "There is no execution 'nope'."),
        (["nope"], "flowyard replay needs --draft"),
    ],
)
def test_what_cannot_be_replayed_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("replay", *args, "--data-dir", tmp_path / "data")
    assert result.exit_code == 2
    assert message in result.stderr

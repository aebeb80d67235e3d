"""The server process tunes its garbage collector once started (`app.heap`); nothing else does."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

import app.cli_server  # registers `serve` on the command line app
import app.server
from app.cli import app as cli
from app.desktop import _settings as desktop_settings
from app.heap import THRESHOLDS, settle_heap
from app.server import create_app
from app.settings import Settings


def test_settle_heap_freezes_what_exists_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # this process's modules, classes, functions, ...
        assert gc.get_threshold() == THRESHOLDS
        made_after: list[list[int]] = [[] for _ in range(100)]
        assert gc.get_freeze_count() == frozen  # what comes later is collected as usual
        assert any(item is made_after[0] for item in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_the_app_settles_its_heap_once_started_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(app.server, "settle_heap", lambda: calls.append("settled"))
    for flag in (False, True):
        server = create_app(Settings(data_dir=tmp_path / str(flag), ui=False, settle_heap=flag))
        async with server.router.lifespan_context(server):
            assert calls == (["settled"] if flag else [])
    assert calls == ["settled"]


def test_serve_and_desktop_settle_their_heap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Settings] = []

    def fake_create_app(settings: Settings) -> Any:
        built.append(settings)
        return object()

    monkeypatch.setattr(app.server, "create_app", fake_create_app)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [s.settle_heap for s in built] == [True]
    assert desktop_settings(0, tmp_path).settle_heap
    assert not Settings().settle_heap  # an app built inside another process leaves it alone

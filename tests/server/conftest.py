"""Fixtures for server tests: a real `flowyard serve` process on 127.0.0.1 with its own data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.serving import ROOT, ServerProcess, free_port, stop_process

__all__ = ["FIXTURES", "ROOT", "ServerProcess", "free_port", "server", "stop_process"]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log")
    process.start()
    yield process
    process.stop()

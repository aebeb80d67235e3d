"""The hostile suite's fixture: one real server per test module (see `harness.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.harness import Harness


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    server = Harness(tmp_path_factory.mktemp("hostile"))
    server.start()
    yield server
    server.stop()

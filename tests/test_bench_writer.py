"""The writer benchmark's machinery works: both sides do the same, complete work.

No timing thresholds here (timings belong to `python -m bench.writer`); only that ours runs the
real write path to the end and the baseline's replay leaves the very same database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.persistence.db import DB_FILE_NAME
from bench.writer import measure


def _state(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            "inbox": conn.execute("SELECT status, count(*) FROM inbox GROUP BY 1").fetchall(),
            "executions": conn.execute(
                "SELECT status, steps_run, count(*) FROM executions GROUP BY 1, 2"
            ).fetchall(),
            "steps": conn.execute(
                "SELECT step_id, status, count(*) FROM step_records GROUP BY 1, 2 ORDER BY 1"
            ).fetchall(),
        }


def test_ours_and_the_replayed_baseline_leave_the_same_database(tmp_path: Path) -> None:
    executions, batch = 60, 10
    base_seconds, ours_seconds = measure(tmp_path, executions, batch)
    assert base_seconds > 0 and ours_seconds > 0
    base = tmp_path / "baseline" / DB_FILE_NAME

    ours = _state(tmp_path / "ours" / DB_FILE_NAME)
    # every execution ran through: records stored, inbox row done; the next batch is leased
    assert ours["inbox"] == [("done", executions), ("running", batch)]
    assert ours["executions"] == [("queued", 0, batch), ("succeeded", 5, executions)]
    assert [(step, status) for step, status, _ in ours["steps"]] == [
        ("is_big", "succeeded"),
        ("notify", "succeeded"),
        ("reply", "succeeded"),
        ("shape", "succeeded"),
        ("small", "skipped"),
        ("trigger", "succeeded"),
    ]
    assert {count for _, _, count in ours["steps"]} == {executions}
    assert _state(base) == ours  # the replay did the same work

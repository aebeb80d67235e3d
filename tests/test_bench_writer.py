"""The writer benchmark's machinery works: both sides do the same, complete work.

No timing thresholds here (timings belong to `python -m bench.writer`); only that ours runs the
real write path to the end and the baseline's replay leaves the very same database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.persistence.db import DB_FILE_NAME, open_database
from bench.writer import _baseline, _capture, _copy, _ours, _template


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
    _template(tmp_path / "template", executions, batch)
    captured = open_database(_copy(tmp_path / "template", tmp_path / "capture"))
    statements = _capture(captured, executions, batch)
    captured.dispose()
    ours_engine = open_database(_copy(tmp_path / "template", tmp_path / "ours"))
    assert _ours(ours_engine, executions, batch) > 0
    ours_engine.dispose()
    base = _copy(tmp_path / "template", tmp_path / "baseline") / DB_FILE_NAME
    assert _baseline(base, statements) > 0

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
    assert _state(base) == ours
    assert any(sql.startswith("INSERT INTO step_records") for sql, _, _ in statements)

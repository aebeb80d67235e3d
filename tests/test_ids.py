"""Execution ids are time-ordered (UUID version 7), so the indexes keyed by them grow at one end."""

from __future__ import annotations

import time
import uuid

from app.services.inbox_writer import inbox_values
from runtime.context import RunContext
from runtime.ids import new_execution_id


def test_execution_ids_sort_in_the_order_they_were_made() -> None:
    before = time.time()
    ids = [new_execution_id() for _ in range(2000)]  # many share a millisecond
    after = time.time()
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for value in ids[:: len(ids) // 10]:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.hex) == (7, value)
        made = (parsed.int >> 80) / 1000  # the first 48 bits: Unix time in milliseconds
        assert before - 1 <= made <= after + 1


def test_webhooks_and_runs_get_time_ordered_ids() -> None:
    row = inbox_values(
        token="t",
        instance_id="i",
        flow_id="f",
        method="POST",
        headers={},
        query={},
        body=b"{}",
        delivery=None,
        dedup=None,
    )
    assert uuid.UUID(hex=row["execution_id"]).version == 7
    assert uuid.UUID(hex=RunContext(registry=None, http=None).execution_id).version == 7  # type: ignore[arg-type]

"""Hypothesis profiles for the fuzz tests: a small `ci` run by default, a long `fuzz` run on demand.

`FLOWYARD_FUZZ=1` (what `make fuzz` sets) selects `fuzz`. Both profiles have no deadline (the
machine is shared; a slow example is not a failure) and keep no example database, so a run leaves
nothing behind in the work tree.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZING", "examples"]

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FUZZING = os.environ.get("FLOWYARD_FUZZ", "") not in ("", "0")
"""True under `make fuzz`: longer runs of every property."""

settings.load_profile("fuzz" if FUZZING else "ci")


def examples(ci: int, fuzz: int) -> int:
    """`ci` examples by default, `fuzz` under `make fuzz` (for tests whose examples are costly)."""
    return fuzz if FUZZING else ci

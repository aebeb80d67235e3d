"""`RunContext`: everything the engine needs from its host for one execution."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from components.api import Connection
from components.registry import Registry
from runtime.expressions import ExpressionLimits
from runtime.ids import new_execution_id
from runtime.model import Flow
from runtime.state import MemoryState, StateBackend

__all__ = ["RunContext"]

_SHARED_RANDOM = random.Random()
"""The default `RunContext.random`: the engine only draws retry jitter from it, and seeding a new
generator from the OS per execution cost more than the rest of setting up a run."""


@dataclass(kw_only=True)
class RunContext:
    """The host's side of a run: components, services, values and the clock.

    `sleep` and `now` are the engine's clock; tests pass fakes to drive retries and delays without
    waiting. `flows` are the sibling flows a call-flow step may run, by id.
    """

    registry: Registry
    http: httpx.AsyncClient
    execution_id: str = field(default_factory=new_execution_id)
    parent_execution_id: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    connections: Mapping[str, Connection] = field(default_factory=dict)
    instance: Mapping[str, Any] = field(default_factory=dict)
    instance_id: str = "local"
    state: StateBackend = field(default_factory=MemoryState)
    webhook_urls: Mapping[str, str] = field(default_factory=dict)
    secrets: Sequence[str] = ()
    """Values masked in everything reported, besides connection values (secret config values)."""
    flows: Mapping[str, Flow] = field(default_factory=dict)
    limits: ExpressionLimits = field(default_factory=ExpressionLimits)
    """Bounds on expressions; each run takes its `budget` from its flow's `expression_budget`."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], float] = time.time
    random: random.Random = _SHARED_RANDOM
    call_depth: int = 0
    max_call_depth: int = 8

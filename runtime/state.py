"""Instance state: the backend interface the host provides, and an in-memory one.

Components see a `components.api.StateStore` bound to their instance and flow; the host (the app's
database, or memory for the CLI and tests) implements `StateBackend` keyed by
(instance id, flow id or None, key).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Protocol

from components.api import StateScope

__all__ = ["BoundState", "MemoryState", "StateBackend"]


class StateBackend(Protocol):
    """Where state lives. `flow_id` is None for instance-wide keys."""

    async def load(self, instance_id: str, flow_id: str | None, key: str) -> tuple[bool, Any]:
        """Return (found, value)."""
        ...

    async def store(self, instance_id: str, flow_id: str | None, key: str, value: Any) -> None: ...

    async def remove(self, instance_id: str, flow_id: str | None, key: str) -> None: ...


class MemoryState:
    """A `StateBackend` in a dict; values are deep-copied so callers cannot alias stored state."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str | None, str], Any] = {}

    async def load(self, instance_id: str, flow_id: str | None, key: str) -> tuple[bool, Any]:
        k = (instance_id, flow_id, key)
        if k not in self.data:
            return False, None
        return True, copy.deepcopy(self.data[k])

    async def store(self, instance_id: str, flow_id: str | None, key: str, value: Any) -> None:
        self.data[(instance_id, flow_id, key)] = copy.deepcopy(value)

    async def remove(self, instance_id: str, flow_id: str | None, key: str) -> None:
        self.data.pop((instance_id, flow_id, key), None)


class BoundState:
    """The `StateStore` a component sees: the backend bound to one instance and flow."""

    __slots__ = ("_backend", "_flow_id", "_instance_id")

    def __init__(self, backend: StateBackend, instance_id: str, flow_id: str) -> None:
        self._backend = backend
        self._instance_id = instance_id
        self._flow_id = flow_id

    def _flow(self, scope: StateScope) -> str | None:
        return self._flow_id if scope == "flow" else None

    async def get(self, key: str, default: Any = None, *, scope: StateScope = "instance") -> Any:
        found, value = await self._backend.load(self._instance_id, self._flow(scope), key)
        return value if found else default

    async def set(self, key: str, value: Any, *, scope: StateScope = "instance") -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state value for '{key}' is not JSON: {exc}") from exc
        await self._backend.store(self._instance_id, self._flow(scope), key, value)

    async def delete(self, key: str, *, scope: StateScope = "instance") -> None:
        await self._backend.remove(self._instance_id, self._flow(scope), key)

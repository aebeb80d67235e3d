"""Where two JSON values differ: the paths a replay diff highlights.

`changed_paths(a, b)` lists the paths (`body.items[0].qty`; `` for the whole value) at which `a`
and `b` differ: a key or index present on one side only, or different leaves. Objects and lists
are walked; anything else is compared with `==`. The list is cut at `limit` paths, the last then
being `...`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["changed_paths", "join_path"]

MISSING_MARK = "..."


def changed_paths(a: Any, b: Any, *, limit: int = 100) -> list[str]:
    """Paths where `a` and `b` differ, in a stable order (see the module)."""
    found: list[str] = []
    _walk(a, b, "", found, limit)
    if len(found) > limit:
        return [*found[:limit], MISSING_MARK]
    return found


def join_path(path: str, key: str | int) -> str:
    """`path` extended by an object key (`a.b`) or a list index (`a[0]`), as the paths read."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _walk(a: Any, b: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) > limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b:
                found.append(join_path(path, str(key)))
            else:
                _walk(a[key], b[key], join_path(path, str(key)), found, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            if index >= len(a) or index >= len(b):
                found.append(join_path(path, index))
            else:
                _walk(a[index], b[index], join_path(path, index), found, limit)
        return
    if a != b or isinstance(a, bool) != isinstance(b, bool):  # JSON tells true from 1
        found.append(path)

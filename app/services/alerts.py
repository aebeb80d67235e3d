"""Error flows and alerts: what follows an execution of an instance that ended failed or crashed.

The worker pool tells `Escalations.finished` about every row it finished; nothing happens unless
the execution ended `failed` or `crashed` and no retry of it was queued (its retries are spent).
Then, in a background task (never on the worker's path):

- **Error flow** (`errors.flow` of the integration, trigger `instance.error`): an inbox row of
  source `error` is queued for it with `error_payload` as its JSON body, under the delivery id
  `error:<failed execution id>`, so a failed execution that is recorded twice (a crash between
  its commit and this task) still queues its error flow once. The bound: a failed execution of
  the error flow itself, or of any row of source `error`, never queues the error flow again.
- **Alert** (`errors.alert`): `alert_summary` is POSTed as JSON to the alert URL (a template
  over `config` and `instance`) with the shared HTTP client, up to `ALERT_ATTEMPTS` times on
  network errors, 429 and 5xx, waiting `retry_delay` seconds and doubling. An error flow that
  failed is alerted too; that is not a flow run, so it cannot loop.

Each escalation is kept in the instance's state under the scope `@alerts` (a scope no flow id can
take; removed with the instance), the newest `KEEP` of them: `recent_alerts` reads them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import delete
from sqlmodel import Session, col, select

from app.persistence.db import WRITE_OPTION, session_scope
from app.persistence.inbox import Claimed, insert_ignoring_duplicates
from app.persistence.models import InstanceRow, InstanceStateRow
from app.persistence.repositories import table_of
from app.services.bodies import parse_body
from app.services.environment import EnvironmentCache, InstanceEnvironment
from app.services.errors import NotFound
from app.services.hub import Hub
from app.services.threads import to_thread_shielded
from runtime.expressions import ExpressionLimits, render
from runtime.ids import new_execution_id
from runtime.model import AlertSettings, Flow
from runtime.observer import ExecutionResult, Status
from runtime.redaction import MASK, credential_header, redact

__all__ = [
    "ALERTS_SCOPE",
    "ALERT_ATTEMPTS",
    "ERROR_SOURCE",
    "KEEP",
    "Escalations",
    "alert_summary",
    "alerts_in",
    "error_payload",
    "recent_alerts",
]

log = logging.getLogger("flowyard.alerts")

ALERTS_SCOPE = "@alerts"
ERROR_SOURCE = "error"
"""Inbox source of an error flow's rows."""
KEEP = 20
"""Escalations kept per instance."""
ALERT_ATTEMPTS = 3
_ALERT_TIMEOUT = 10.0
_ESCALATED = frozenset({Status.FAILED, Status.CRASHED})


def error_payload(
    env: InstanceEnvironment, row: Claimed, result: ExecutionResult, flow: Flow | None
) -> dict[str, Any]:
    """The error flow's trigger body: the failed execution's id, flow, step, error and request."""
    error = result.error
    step = error.step if error is not None else None
    payload = {
        "event": "error",
        "instance_id": env.instance_id,
        "instance_name": env.name,
        "execution_id": result.execution_id,
        "flow_id": row.flow_id,
        "flow_name": flow.label if flow is not None else row.flow_id,
        "status": result.status.value,
        "step": step,
        "step_name": _step_name(flow, step),
        "error": None
        if error is None
        else {"kind": error.kind, "message": error.message, "hint": error.hint, "step": step},
        "attempt": row.attempt,
        "source": row.source,
        "request": _request(row),
    }
    return dict(redact(payload, env.secrets))


def alert_summary(payload: dict[str, Any], integration: str) -> dict[str, Any]:
    """The JSON an alert sends: the error payload without the request (it may be large or
    personal), plus the integration's name."""
    summary = {k: v for k, v in payload.items() if k != "request"}
    summary["integration"] = integration
    return summary


def _step_name(flow: Flow | None, step: str | None) -> str | None:
    if flow is None or step is None:
        return step
    found = next((s for s in flow.all_steps() if s.id == step), None)
    return found.label if found is not None else step


def _request(row: Claimed) -> dict[str, Any]:
    headers = {str(k).lower(): str(v) for k, v in row.headers.items()}
    try:
        body: Any = parse_body(headers, row.body)
    except Exception:
        body = row.body.decode("utf-8", errors="replace")
    shown = {k: MASK if credential_header(k) else v for k, v in headers.items()}
    return {"method": row.method, "headers": shown, "query": row.query, "body": body}


class Escalations:
    """Runs the error flow and sends the alert of failed executions; see the module docstring.

    `wake` is called once an error flow's row is queued (the pool's `notify`); `retry_delay` is the
    first wait between alert attempts."""

    def __init__(
        self,
        hub: Hub,
        environments: EnvironmentCache,
        wake: Callable[[], None],
        *,
        retry_delay: float = 1.0,
    ) -> None:
        self._hub = hub
        self._environments = environments
        self._wake = wake
        self.retry_delay = retry_delay
        self._tasks: set[asyncio.Task[None]] = set()

    def finished(self, row: Claimed, result: ExecutionResult, *, retried: bool) -> None:
        """An inbox row finished with `result`; `retried` when a retry of it was queued."""
        if retried or result.status not in _ESCALATED:
            return
        task = asyncio.create_task(self._escalate(row, result), name="flowyard-escalate")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float = 5.0) -> None:
        """Wait up to `grace` seconds for escalations under way, then cancel the rest."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _escalate(self, row: Claimed, result: ExecutionResult) -> None:
        try:
            env = await self._environments.get(row.instance_id)
        except NotFound:
            return  # the instance was deleted: nothing to run, nobody to tell
        except Exception:
            log.exception("cannot load instance %s to escalate a failure", row.instance_id)
            return
        handling = env.integration.errors
        if handling.flow is None and handling.alert is None:
            return
        try:
            payload = error_payload(env, row, result, env.flows.get(row.flow_id))
            entry: dict[str, Any] = {
                "at": time.time(),
                "execution_id": result.execution_id,
                "flow_id": row.flow_id,
                "flow_name": payload["flow_name"],
                "status": payload["status"],
                "step": payload["step"],
                "message": payload["error"]["message"] if payload["error"] else "",
                "error_flow": None,
                "alert": None,
            }
            if handling.flow is not None:
                entry["error_flow"] = await self._error_flow(env, handling.flow, row, payload)
            if handling.alert is not None:
                summary = alert_summary(payload, env.integration.name)
                entry["alert"] = await self._send_alert(env, handling.alert, summary)
            await to_thread_shielded(self._remember, env.instance_id, entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not escalate failed execution %s", result.execution_id)

    # ------------------------------------------------------------------------------ error flow

    async def _error_flow(
        self, env: InstanceEnvironment, flow_id: str, row: Claimed, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue the error flow's row; what happened, for the record."""
        flow = env.flows.get(flow_id)
        if flow is None:
            return {"status": "missing", "flow_id": flow_id}
        if row.source == ERROR_SOURCE or row.flow_id == flow_id:
            # The bound: the error flow's own failure must not start it again (a loop).
            return {"status": "not_run", "flow_id": flow_id, "reason": "the error flow failed"}
        execution_id = await to_thread_shielded(self._queue, env, flow, row, payload)
        self._wake()
        return {"status": "queued", "flow_id": flow_id, "execution_id": execution_id}

    def _queue(
        self, env: InstanceEnvironment, flow: Flow, row: Claimed, payload: dict[str, Any]
    ) -> str | None:
        execution_id = new_execution_id()
        values = {
            "token": env.tokens.get(flow.id, ""),
            "instance_id": env.instance_id,
            "flow_id": flow.id,
            "execution_id": execution_id,
            "method": "POST",
            "headers": {"content-type": "application/json"},
            "query": {},
            "body": json.dumps(payload, default=str).encode(),
            "delivery_id": f"error:{row.execution_id}",
            "received_at": time.time(),
            "status": "queued",
            "source": ERROR_SOURCE,
        }
        with self._hub.db.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            inserted = insert_ignoring_duplicates(conn, values)
        return execution_id if inserted else None

    # ------------------------------------------------------------------------------ alert

    async def _send_alert(
        self, env: InstanceEnvironment, alert: AlertSettings, summary: dict[str, Any]
    ) -> dict[str, Any]:
        """POST `summary`; the outcome (status `sent` or `failed`), secrets masked."""
        scope = {"config": dict(env.config), "instance": env.instance}
        try:
            url = render(alert.url, scope, ExpressionLimits())
            headers = render(alert.headers, scope, ExpressionLimits())
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"it gave {url!r}, not an http(s) URL")
            headers = {str(k): str(v) for k, v in headers.items()}
        except Exception as exc:
            message = f"The alert URL or headers could not be rendered: {exc}"
            outcome = {"status": "failed", "url": alert.url, "attempts": 0, "error": message}
            return dict(redact(outcome, env.secrets))
        outcome = await self._post(url, headers, summary)
        return dict(redact({"url": url, **outcome}, env.secrets))

    async def _post(self, url: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        delay = self.retry_delay
        error = ""
        for attempt in range(1, ALERT_ATTEMPTS + 1):
            try:
                response = await self._hub.http.post(
                    url, json=body, headers=headers, timeout=_ALERT_TIMEOUT
                )
            except (httpx.HTTPError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                code = response.status_code
                if code < 300:
                    return {"status": "sent", "attempts": attempt, "http_status": code}
                error = f"the alert URL answered HTTP {code}"
                if code != 429 and code < 500:
                    return {"status": "failed", "attempts": attempt, "error": error}
            if attempt < ALERT_ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        return {"status": "failed", "attempts": ALERT_ATTEMPTS, "error": error}

    # ------------------------------------------------------------------------------ record

    def _remember(self, instance_id: str, entry: dict[str, Any]) -> None:
        """Keep `entry` (one row per failed execution) and drop all but the newest `KEEP`."""
        states = table_of(InstanceStateRow)
        with session_scope(self._hub.db) as session:
            scope = (
                col(InstanceStateRow.instance_id) == instance_id,
                col(InstanceStateRow.flow_id) == ALERTS_SCOPE,
            )
            row = session.exec(
                select(InstanceStateRow).where(
                    *scope, col(InstanceStateRow.key) == entry["execution_id"]
                )
            ).first()
            if row is None:
                session.add(
                    InstanceStateRow(
                        instance_id=instance_id,
                        flow_id=ALERTS_SCOPE,
                        key=entry["execution_id"],
                        value=entry,
                        updated_at=entry["at"],
                    )
                )
            else:
                row.value, row.updated_at = entry, entry["at"]
            session.flush()
            old = session.exec(
                select(col(InstanceStateRow.id))
                .where(*scope)
                .order_by(col(InstanceStateRow.updated_at).desc())
                .offset(KEEP)
            ).all()
            stale = list(old)
            if stale:
                session.connection().execute(delete(states).where(states.c.id.in_(stale)))


async def recent_alerts(hub: Hub, instance_id: str) -> list[dict[str, Any]]:
    """The instance's last escalations (error flow queued, alert sent or failed), newest first.

    NotFound when there is no such instance."""
    return await asyncio.to_thread(_recent, hub, instance_id)


def _recent(hub: Hub, instance_id: str) -> list[dict[str, Any]]:
    with session_scope(hub.db, write=False) as session:
        if session.get(InstanceRow, instance_id) is None:
            raise NotFound(f"There is no instance with id '{instance_id}'.")
        return alerts_in(session, instance_id)


def alerts_in(session: Session, instance_id: str) -> list[dict[str, Any]]:
    """`recent_alerts` inside the caller's session (the instance view reads them with the rest)."""
    rows = session.exec(
        select(InstanceStateRow)
        .where(
            col(InstanceStateRow.instance_id) == instance_id,
            col(InstanceStateRow.flow_id) == ALERTS_SCOPE,
        )
        .order_by(col(InstanceStateRow.updated_at).desc())
        .limit(KEEP)
    ).all()
    return [dict(r.value) for r in rows if isinstance(r.value, dict)]

"""The demo app's web page: its records, registered webhooks and recent deliveries, plus forms.

Plain server-rendered HTML (every value escaped). The forms post to `/ui/...` and need the API
key typed in, like any other write.
"""

from __future__ import annotations

import datetime
import html
import json
from typing import TYPE_CHECKING, Any

from examples.demoapps.specs import Kind

if TYPE_CHECKING:
    from examples.demoapps.server import DemoApp

__all__ = ["render_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eee; }
code, td.mono { font-family: ui-monospace, monospace; font-size: .85rem; }
.muted { color: #777; } .error { background: #fde8e8; padding: .5rem 1rem; border-radius: 4px; }
form { display: inline-block; margin: .5rem 1rem .5rem 0; padding: .5rem 1rem;
       border: 1px solid #ddd; border-radius: 4px; vertical-align: top; }
form label { display: block; font-size: .8rem; margin-top: .3rem; }
"""


def _e(column: str, value: Any) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    if column.endswith("_at") and isinstance(value, int | float):
        return html.escape(datetime.datetime.fromtimestamp(value).strftime("%H:%M:%S"))
    return html.escape(value if isinstance(value, str) else json.dumps(value))


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(c, row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _forms(app: DemoApp, kind: Kind, records: list[dict[str, Any]]) -> str:
    fields = list(kind.model.model_fields)
    inputs = "".join(
        f'<label>{html.escape(f)} <input name="{html.escape(f)}" size="18"></label>' for f in fields
    )
    key = '<label>API key <input name="api_key" type="password" size="18" required></label>'
    create = (
        f'<form method="post" action="/ui/{kind.plural}"><b>New {kind.name}</b>'
        f'{inputs}{key}<p><button type="submit">Create</button></p></form>'
    )
    if not records:
        return create
    options = "".join(
        f'<option value="{html.escape(r["id"])}">{html.escape(str(r.get("name", r["id"])))}'
        "</option>"
        for r in records
    )
    update = (
        f'<form method="post" action="/ui/{kind.plural}/update"><b>Change {kind.name}</b>'
        f'<label>{kind.name} <select name="id">{options}</select></label>{inputs}{key}'
        '<p class="muted">Empty fields stay as they are.</p>'
        '<p><button type="submit">Save</button></p></form>'
    )
    return create + update


def render_page(app: DemoApp, error: str = "") -> str:
    """The whole page as HTML."""
    spec = app.spec
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(spec.name)}</h1>",
        f'<p class="muted">A demo app for Flowyard. REST API under <code>/api</code>; '
        f"{html.escape(spec.auth_hint())} <a href='/'>Refresh</a></p>",
    ]
    if error:
        parts.append(f'<p class="error">{html.escape(error)}</p>')
    for kind in spec.kinds:
        records = app.store.records(kind.name)
        columns = ["id", *kind.model.model_fields, "updated_at"]
        parts.append(f"<h2>{html.escape(kind.plural.capitalize())} ({len(records)})</h2>")
        parts.append(_table(records, columns, f"No {kind.plural} yet."))
        parts.append(_forms(app, kind, records))
    subs = [app.subscription_view(s) for s in app.store.subscriptions()]
    word = spec.subscription_word
    parts.append(f"<h2>Registered {html.escape(word)}s ({len(subs)})</h2>")
    columns = ["id", spec.topic_field, "url", "description", "created_at"]
    parts.append(_table(subs, columns, f"No {word}s registered."))
    deliveries = [
        {
            "id": d.id,
            "event": d.event,
            "status": d.status,
            "attempts": len(attempts := app.store.attempts(d.id)),
            "last error": attempts[-1].error if attempts and attempts[-1].error else None,
            "created_at": d.created_at,
        }
        for d in app.store.deliveries(limit=30)
    ]
    parts.append("<h2>Recent deliveries</h2>")
    columns = ["id", "event", "status", "attempts", "last error", "created_at"]
    parts.append(_table(deliveries, columns, "Nothing sent yet."))
    parts.append("</body></html>")
    return "\n".join(parts)

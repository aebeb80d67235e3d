"""The executions pages, over `app.services.executions` (the same calls as `/api/executions`).

`/executions`: filters (status, flow, instance, time range, text in the request body, source),
counts by status, a chart of executions and average durations over time (bucketed per minute,
hour or day by the range), and the newest executions page by page. The filters are kept in the URL
(`?status=&flow=&instance=&period=&q=&source=&page=`), so a filtered view can be linked to.

`/executions/{id}`: one execution, drawn by `app.pages.execution_detail` and registered here, so
that importing this module registers both pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from app.pages.execution_detail import Names, execution_page, step_statuses
from app.pages.layout import duration, frame, hub, show_error, status_badge, when
from app.services import executions
from app.services.errors import ServiceError

__all__ = ["PERIODS", "execution_page", "executions_page", "step_statuses"]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "crashed")
SOURCES = ("webhook", "replay", "retry", "schedule", "manual", "error", "test")
"""Where executions come from (`test`: the designer's test runs)."""
PAGE_SIZE = 25
_MINUTE, _HOUR, _DAY = 60, 3600, 86400


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    seconds: int | None
    bucket: int | None
    """Chart bucket in seconds; None: picked from the data (all time)."""


PERIODS: dict[str, Period] = {
    "15m": Period("Last 15 minutes", 15 * _MINUTE, _MINUTE),
    "1h": Period("Last hour", _HOUR, _MINUTE),
    "24h": Period("Last 24 hours", _DAY, _HOUR),
    "7d": Period("Last 7 days", 7 * _DAY, _HOUR),
    "30d": Period("Last 30 days", 30 * _DAY, _DAY),
    "all": Period("All time", None, None),
}
"""Time ranges of the list, by the key used in `?period=`."""

_CHART_COLORS = {
    "succeeded": "#21ba45",
    "failed": "#c10015",
    "crashed": "#f2711c",
    "running": "#1976d2",
    "queued": "#9e9e9e",
    "cancelled": "#616161",
}
_CHIP_COLORS = {
    "succeeded": "positive",
    "failed": "negative",
    "crashed": "deep-orange",
    "running": "primary",
    "queued": "grey-7",
    "cancelled": "grey-8",
}


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and int(text) > 0 else 1


# --- the list -----------------------------------------------------------------------------------


@dataclass
class _Filters:
    status: str = ""
    flow: str = ""
    instance: str = ""
    period: str = "24h"
    text: str = ""
    source: str = ""
    page: int = 1

    def service(self, now: float) -> executions.ExecutionFilter:
        period = PERIODS.get(self.period, PERIODS["all"])
        return executions.ExecutionFilter(
            status=self.status or None,
            flow_id=self.flow or None,
            instance_id=self.instance or None,
            since=now - period.seconds if period.seconds else None,
            text=self.text or None,
            source=self.source or None,
            limit=PAGE_SIZE,
            offset=(self.page - 1) * PAGE_SIZE,
        )

    def query(self) -> str:
        pairs = {
            "status": self.status,
            "flow": self.flow,
            "instance": self.instance,
            "period": self.period if self.period != "24h" else "",
            "q": self.text,
            "source": self.source,
            "page": str(self.page) if self.page > 1 else "",
        }
        encoded = urlencode({k: v for k, v in pairs.items() if v})
        return f"/executions?{encoded}" if encoded else "/executions"


def _finer(bucket: int, timeline: list[dict[str, Any]]) -> int:
    """All time: the next finer bucket (day, hour, minute) while the data spans fewer than three
    buckets, so a chart of recent runs is not one bar."""
    if bucket == _MINUTE or not timeline:
        return bucket
    if timeline[-1]["start"] - timeline[0]["start"] >= 3 * bucket:
        return bucket
    return _HOUR if bucket == _DAY else _MINUTE


def chart_options(
    timeline: list[dict[str, Any]], bucket: int, since: float | None, now: float
) -> dict[str, Any]:
    """ECharts options: stacked bars of executions per status, a line of the average duration."""
    by_start = {entry["start"]: entry for entry in timeline}
    starts: list[int] = sorted(by_start)
    if since is not None:
        first = int(since) // bucket * bucket
        starts = list(range(first, int(now) // bucket * bucket + 1, bucket))
    elif starts:
        starts = list(range(starts[0], starts[-1] + 1, bucket))
    seen = [s for s in STATUSES if any(s in e["counts"] for e in timeline)]
    empty: dict[str, Any] = {"counts": {}, "avg_ms": None}
    at = [(start * 1000, by_start.get(start, empty)) for start in starts]
    series: list[dict[str, Any]] = [
        {
            "name": status,
            "type": "bar",
            "stack": "executions",
            "color": _CHART_COLORS[status],
            "data": [[ms, entry["counts"].get(status, 0)] for ms, entry in at],
        }
        for status in seen
    ]
    average = [[ms, None if e["avg_ms"] is None else round(e["avg_ms"], 1)] for ms, e in at]
    series.append(
        {
            "name": "average duration (ms)",
            "type": "line",
            "yAxisIndex": 1,
            "color": "#7e57c2",
            "data": average,
        }
    )
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 48, "right": 64, "top": 36, "bottom": 28},
        "xAxis": {"type": "time"},
        "yAxis": [
            {"type": "value", "name": "executions", "minInterval": 1},
            {"type": "value", "name": "ms", "splitLine": {"show": False}},
        ],
        "series": series,
    }


class _ListView:
    """The list page: filter controls, counts, chart, rows and paging, redrawn on each change."""

    def __init__(self, filters: _Filters, names: Names) -> None:
        self.filters = filters
        self.names = names
        self.generation = 0
        with ui.row().classes("w-full items-end gap-3"):
            self.status = self._select("status", {"": "Any status", **{s: s for s in STATUSES}})
            self.status.classes("w-36")
            flows = {"": "Any flow", **dict(sorted(names.flows.items(), key=lambda x: x[1]))}
            self._select("flow", flows, with_input=True).classes("w-64")
            self._select("instance", {"": "Any instance", **names.instances}, with_input=True)
            periods = {key: period.label for key, period in PERIODS.items()}
            self._select("period", periods).classes("w-40")
            self._select("source", {"": "Any source", **{s: s for s in SOURCES}}).classes("w-32")
            text = ui.input("Search request bodies", value=filters.text).classes("w-64")
            text.props('clearable debounce=400 data-testid="filter-text"').mark("filter-text")
            text.on_value_change(lambda e: self._changed("text", e.value))
            ui.space()
            live = ui.switch("Live").props('data-testid="live-toggle"').mark("live-toggle")
            ui.button(icon="refresh", on_click=lambda: self.refresh()).props(
                'flat data-testid="refresh"'
            ).mark("refresh").tooltip("Refresh")
        timer = ui.timer(3.0, lambda: self.refresh(), active=False)
        live.on_value_change(lambda e: setattr(timer, "active", bool(e.value)))
        self.counts_row = ui.row().classes("items-center gap-2")
        self.chart = ui.echart(chart_options([], _MINUTE, None, time.time()))
        self.chart.classes("w-full h-64").mark("executions-chart")
        self.message = ui.label().classes("text-negative").mark("list-error")
        self.rows = ui.column().classes("w-full gap-0")
        self.pagination = ui.pagination(1, 1, direction_links=True, value=filters.page)
        self.pagination.props('data-testid="pagination"').mark("pagination")
        self.pagination.on_value_change(lambda e: self._paged(e.value))

    def _select(self, attribute: str, options: dict[str, str], **kwargs: Any) -> ui.select:
        value = getattr(self.filters, attribute)
        if value not in options:  # from the URL: an id no longer listed (a deleted instance)
            options[value] = value
        select = ui.select(options, label=attribute.capitalize(), value=value, **kwargs)
        select.props(f'data-testid="filter-{attribute}"').mark(f"filter-{attribute}")
        select.on_value_change(lambda e: self._changed(attribute, e.value))
        return select

    async def _changed(self, attribute: str, value: str | None) -> None:
        if getattr(self.filters, attribute) != (value or ""):
            setattr(self.filters, attribute, value or "")
            self.filters.page = 1
            await self.refresh()

    async def _paged(self, page: int) -> None:
        if page != self.filters.page:
            self.filters.page = page
            await self.refresh()

    async def refresh(self) -> None:
        """Query the page, counts and chart under the current filters and redraw them."""
        self.generation += 1
        generation = self.generation
        if generation > 1:  # the first draw is at the URL already (and must not wait for JS)
            ui.navigate.history.replace(self.filters.query())
        now = time.time()
        wanted = self.filters.service(now)
        period = PERIODS.get(self.filters.period, PERIODS["all"])
        try:
            listing = await executions.list_executions(hub(), wanted)
            bucket = period.bucket or _DAY
            timeline = await executions.execution_timeline(hub(), wanted, bucket)
            while period.bucket is None and (finer := _finer(bucket, timeline)) < bucket:
                bucket = finer
                timeline = await executions.execution_timeline(hub(), wanted, bucket)
        except ServiceError as exc:
            show_error(exc)
            self.message.text = exc.message
            return
        if generation != self.generation:
            return  # the filters changed while this query ran: a newer one draws
        self.message.text = ""
        self._draw_counts(listing["counts"])
        self.chart.options.clear()
        self.chart.options.update(chart_options(timeline, bucket, wanted.since, now))
        self.chart.update()
        self._draw_rows(listing["executions"])
        pages = max(1, -(-listing["total"] // PAGE_SIZE))
        self.pagination.max = pages
        self.pagination.set_visibility(pages > 1)

    def _draw_counts(self, counts: dict[str, int]) -> None:
        self.counts_row.clear()
        with self.counts_row:
            total = ui.label(f"{sum(counts.values())} executions").classes("text-subtitle1")
            total.props('data-testid="count-total"').mark("count-total")
            for status in STATUSES:
                chosen = self.filters.status == status
                lit = chosen or counts.get(status, 0) > 0
                chip = ui.chip(
                    f"{status} {counts.get(status, 0)}",
                    color=_CHIP_COLORS[status] if lit else "grey-4",
                    text_color="white" if lit else "black",
                    on_click=lambda s=status: self._toggle_status(s),
                )
                chip.props(f'data-testid="count-{status}"' + ("" if chosen else " outline"))
                chip.mark(f"count-{status}")

    def _toggle_status(self, status: str) -> None:
        self.status.value = "" if self.filters.status == status else status  # refreshes

    def _draw_rows(self, items: list[dict[str, Any]]) -> None:
        self.rows.clear()
        with self.rows:
            if not items:
                ui.label("No executions match these filters.").classes("text-grey-7 p-2").mark(
                    "no-executions"
                )
                return
            with ui.element().classes("w-full text-caption text-grey-7 px-2").style(_GRID):
                for title, width in _COLUMNS:
                    ui.label(title).classes(width)
            for item in items:
                self._draw_row(item)

    def _draw_row(self, item: dict[str, Any]) -> None:
        link = ui.link(target=f"/executions/{item['id']}")
        link.classes("w-full no-underline text-inherit hover:bg-gray-500/10 rounded")
        link.props('data-testid="execution-row"').mark(f"execution-row execution-{item['id']}")
        error = (item.get("error") or {}).get("message", "")
        widths = [width for _, width in _COLUMNS]
        with link, ui.element().classes("w-full items-center px-2 py-1").style(_GRID):
            ui.label(when(item["started_at"] or item["queued_at"])).classes(widths[0])
            with ui.element().classes(widths[1]):
                status_badge(item["status"])
            for text, width in (
                (self.names.flow(item["flow_id"]), widths[2]),
                (self.names.instance(item["instance_id"]), widths[3]),
            ):
                ui.label(text).classes(width).props["title"] = text  # the whole name on hover
            ui.label(duration(item["duration_ms"])).classes(widths[4])
            ui.label(item.get("source") or "lifecycle").classes(widths[5])
            ui.label(error).classes(f"{widths[6]} text-negative")


_COLUMNS = (
    ("Started", ""),
    ("Status", ""),
    ("Flow", "ellipsis"),
    ("Instance", "ellipsis"),
    ("Duration", ""),
    ("Source", ""),
    ("Error", "ellipsis"),
)
_GRID = (
    "display: grid; column-gap: 0.75rem; align-items: center; grid-template-columns: "
    "10rem 6rem minmax(12rem, 3fr) minmax(6rem, 1fr) 5rem 5rem minmax(0, 2fr)"
)
"""One grid for the header and every row, so columns line up; names get most of the room
(an error is cut before a name is) and carry the whole text as a title."""


@ui.page("/executions", title="Executions · Flowyard")
async def executions_page(
    status: str = "",
    flow: str = "",
    instance: str = "",
    period: str = "24h",
    q: str = "",
    source: str = "",
    page: str = "1",
) -> None:
    """The list of executions; the query parameters preset the filters."""
    filters = _Filters(
        status=status if status in STATUSES else "",
        flow=flow,
        instance=instance,
        period=period if period in PERIODS else "24h",
        text=q,
        source=source if source in SOURCES else "",
        page=_page_number(page),
    )
    names = await Names.load()
    with frame("Executions", wide=True):
        view = _ListView(filters, names)
        await view.refresh()


# Registered here rather than in its own module: the page tests import this module afresh for
# each test (NiceGUI's test reset unregisters every page), and a module it imports stays cached.
ui.page("/executions/{execution_id}", title="Execution · Flowyard")(execution_page)

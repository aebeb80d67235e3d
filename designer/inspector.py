"""The step inspector: a form drawn only from an action's pydantic input schema.

    inspector = Inspector(step, registry.action(step.action), config=integration.config,
                          connections=integration.connections, references=source,
                          on_change=save_step)
    inspector.show(other_step, registry.action(other_step.action), references=other_source)

Every edit is validated: pydantic errors appear under the field they belong to, templates must
compile, and `on_change` receives a new `Step` only when nothing is invalid. A required input that
is still empty is marked but does not hold the step back (validation lists it as a problem).
`show` never calls `on_change`, and showing the step the inspector just reported is a no-op, so
the editor can push every saved step back without echo or lost keystrokes.

How fields are drawn (by schema, never by component):

- string: text input (templates allowed); `format: password` / `writeOnly` (`SecretStr`) or a
  secret-looking name: masked input with a reveal toggle;
- number / integer / boolean / enum / list of enum: number input, switch, select, multi-select;
- `dict[str, str]` or `x-ui: keyvalue`: rows of name and value;
- list of objects: one sub-form per item; an object with properties: a nested sub-form;
- `x-ui: conditions`: the condition builder (groups of value / operator / compare-with rows);
- a connection input: a select of the integration's connection slots. The component API has no
  connection marker, so an input is one when it has `x-ui: connection`, or is a string named
  `connection` or ending in `_connection`;
- anything else (`Any`, unstructured objects and lists): a JSON editor that also takes plain text
  and templates (see `parse_loose`).

Typed inputs (numbers, booleans, selects, lists, objects) switch to *expression* mode with the
`{{ }}` button, since any input may be a template. Each input can insert a reference (the
reference picker, see `designer.references`) and previews its templates against the sample data.

Where the code lives: `designer.schema_fields` reads schemas into `FieldSpec`s and holds the
value helpers (no UI); `designer.inspector_widgets` draws one field and the simple widgets;
`designer.inspector_composite` the widgets built from other fields; this module the form, its
validation and `on_change`, and it re-exports what others import from it (`FieldSpec`, `UNSET`,
`field_specs`, `parse_loose`, ...).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nicegui import background_tasks, ui
from pydantic import ValidationError

from components.api import Action, Trigger
from components.registry import Registry
from designer.inspector_composite import CompositeWidgets
from designer.inspector_widgets import Slot, tag
from designer.references import (
    Reference,
    ReferenceSource,
    preview,
    preview_scope,
    source_for_step,
    template_error,
)
from designer.schema_fields import (
    UNSET,
    FieldSpec,
    Kind,
    ParseError,
    ValuePath,
    dotted,
    field_specs,
    format_loose,
    parse_loose,
    step_specs,
    value_at,
)
from runtime.model import ConfigVariable, ConnectionSlot, Flow, Integration, Step

__all__ = [
    "UNSET",
    "ActionClass",
    "FieldSpec",
    "Inspector",
    "OnChange",
    "OnErrors",
    "ParseError",
    "field_problems",
    "field_specs",
    "format_loose",
    "parse_loose",
    "step_action",
]

ActionClass = type[Action[Any]] | type[Trigger[Any]]
OnChange = Callable[[Step], Awaitable[None] | None]
OnErrors = Callable[[dict[str, list[str]]], None]
_LEAVES: frozenset[Kind] = frozenset(
    {"text", "secret", "number", "integer", "boolean", "enum", "multienum", "connection", "json"}
)


def _key(path: ValuePath) -> str:
    return dotted(path) if path[0] == "inputs" else f"step.{dotted(path)}"


def _templated_on(root: Any, path: ValuePath) -> bool:
    """Whether a template string sits at `path` or above it (then its type is checked at run)."""
    value = root
    for key in path:
        if isinstance(value, str):
            return "{{" in value
        value = value_at(value, (key,))
        if value is UNSET:
            return False
    return isinstance(value, str) and "{{" in value


def _message(error: Any) -> str:
    text = str(error.get("msg", "Invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


# --- the inspector -----------------------------------------------------------------------------


@dataclass
class _Problem:
    message: str
    blocking: bool = True
    unknown: bool = False
    """An input the action does not have: the form offers to remove it."""


@dataclass
class _Outcome:
    problems: dict[ValuePath, list[_Problem]] = field(default_factory=dict)
    step: Step | None = None

    def add(
        self, path: ValuePath, message: str, *, blocking: bool = True, unknown: bool = False
    ) -> None:
        self.problems.setdefault(path, []).append(_Problem(message, blocking, unknown))

    @property
    def blocking(self) -> bool:
        return any(p.blocking for ps in self.problems.values() for p in ps)


class Inspector(CompositeWidgets):
    """The right-hand panel of the editor: edits one step's name, inputs and error handling.

    `action` is the step's action (or trigger) class from the registry; `config` and
    `connections` are the integration's; `references` says what the step can read (see
    `ReferenceSource`). `on_change(step)` (sync or async) receives each valid edit as a new,
    frozen `Step`; it is never called by `show`. `on_errors(errors)` receives `errors` each
    time it changes: while it is not empty the form shows something the saved step does not
    hold, so the editor lists these as problems and refuses to run the flow.
    """

    def __init__(
        self,
        step: Step | None,
        action: ActionClass | None,
        *,
        on_change: OnChange,
        on_errors: OnErrors | None = None,
        config: Sequence[ConfigVariable] = (),
        connections: Sequence[ConnectionSlot] = (),
        references: ReferenceSource | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_errors = on_errors
        self._reported: dict[str, list[str]] = {}
        self._config = tuple(config)
        self._connections = tuple(connections)
        self._source = references or ReferenceSource()
        self._scope = preview_scope(self._source, self._config)
        self._refs: list[Reference] | None = None
        self._step: Step | None = None
        self._action: ActionClass | None = None
        self._root: dict[str, Any] = {"inputs": {}, "step": {}}
        self._slots: dict[ValuePath, Slot] = {}
        self._local: dict[ValuePath, str] = {}
        self._expr: set[ValuePath] = set()
        self._outcome = _Outcome()
        self._general: ui.column | None = None
        self._general_shown: list[tuple[ValuePath, str]] = []
        self.element = ui.column().classes("w-full gap-2 flowyard-inspector")
        tag(self.element, "inspector")
        self.show(step, action)

    # -- public ---------------------------------------------------------------------------------

    @classmethod
    def for_step(
        cls,
        step: Step,
        registry: Registry,
        *,
        integration: Integration,
        flow: Flow,
        scope: Mapping[str, Any] | None = None,
        on_change: OnChange,
        on_errors: OnErrors | None = None,
        origin: str = "",
    ) -> Inspector:
        """An inspector for a step of `flow`: its action from `registry`, the integration's config
        and connections, and references from `scope` (see `designer.references.source_for_step`).
        """
        return cls(
            step,
            step_action(step, flow, registry),
            on_change=on_change,
            on_errors=on_errors,
            config=integration.config,
            connections=integration.connections,
            references=source_for_step(flow, step.id, registry, scope or {}, origin=origin),
        )

    @property
    def step(self) -> Step | None:
        """The step as last shown or reported through `on_change`."""
        return self._step

    @property
    def errors(self) -> dict[str, list[str]]:
        """Blocking problems by field (dotted path, `step.` for step settings); empty when valid."""
        return {
            _key(path): [p.message for p in problems if p.blocking]
            for path, problems in self._outcome.problems.items()
            if any(p.blocking for p in problems)
        }

    @property
    def valid(self) -> bool:
        """True when nothing on the form is invalid (a missing required input is allowed)."""
        return not self._outcome.blocking

    def show(
        self,
        step: Step | None,
        action: ActionClass | None = None,
        *,
        references: ReferenceSource | None = None,
        config: Sequence[ConfigVariable] | None = None,
        connections: Sequence[ConnectionSlot] | None = None,
    ) -> None:
        """Show `step` (None: nothing selected). Never calls `on_change`.

        `action` is needed when the step's action changes; omitted, the current one is kept.
        Showing the step last shown or reported (an echo of `on_change`) keeps the form as is,
        including text still being typed; any other step redraws it.
        """
        rebuild = False
        if config is not None:
            self._config, rebuild = tuple(config), True
        if connections is not None:
            self._connections, rebuild = tuple(connections), True
        if action is not None and action is not self._action:
            self._action, rebuild = action, True
        if references is not None or config is not None:
            self._set_source(references or self._source)
        if step is None:
            self._step = None
            self._draw_empty()
            return
        if not rebuild and self._step is not None and step == self._step and self._slots:
            self._refresh(emit=False)
            return
        self._step = step
        self._draw()

    def set_references(self, references: ReferenceSource) -> None:
        """New sample data or upstream steps (e.g. after a test run): previews update in place."""
        self._set_source(references)
        self._refresh(emit=False)

    # -- drawing --------------------------------------------------------------------------------

    def _set_source(self, source: ReferenceSource) -> None:
        self._source = source
        self._scope = preview_scope(source, self._config)
        self._refs = None

    def _draw_empty(self) -> None:
        self._slots.clear()
        self._local.clear()
        self._general, self._general_shown = None, []
        self._outcome = _Outcome()
        if self._reported:
            self._reported = {}
            if self._on_errors is not None:
                self._on_errors({})
        self.element.clear()
        with self.element:
            ui.label("Select a step on the canvas to edit it.").classes("text-grey-7")

    def _draw(self) -> None:
        step, action = self._step, self._action
        assert step is not None
        self._root = {"inputs": copy.deepcopy(step.inputs), "step": self._settings_of(step)}
        self._slots.clear()
        self._local.clear()
        self._expr.clear()
        self._general, self._general_shown = None, []
        self.element.clear()
        is_trigger = action is not None and issubclass(action, Trigger)
        specs = {s.key: s for s in step_specs(is_trigger)}
        with self.element:
            with ui.column().classes("w-full gap-0"):
                title = action.title if action is not None else step.action
                ui.label(title).classes("text-subtitle1 text-weight-medium")
                ui.label(f"{step.action} · id {step.id}").classes("text-caption text-grey-7")
                if action is not None and action.description:
                    ui.markdown(action.description).classes("text-body2 text-grey-8")
            self._field(specs["name"], ("step", "name"))
            if action is None:
                ui.label(
                    f"Unknown action '{step.action}': its inputs cannot be edited. Install the "
                    "component or change the step's action."
                ).classes("text-negative")
            else:
                with ui.column().classes("w-full gap-2"):
                    for spec in field_specs(action.Inputs):
                        self._field(spec, ("inputs", spec.key))
                self._general = ui.column().classes("w-full gap-1")
            if not is_trigger:
                # Open when something is set, so a value in there is never out of sight.
                custom = step.on_error != "fail" or step.retry is not None or step.timeout
                with ui.expansion("Error handling", icon="replay", value=bool(custom)).classes(
                    "w-full"
                ):
                    for key in ("on_error", "retry", "timeout"):
                        self._field(specs[key], ("step", key))
            self._field(specs["notes"], ("step", "notes"))
        self._refresh(emit=False)

    @staticmethod
    def _settings_of(step: Step) -> dict[str, Any]:
        return {
            "name": step.name,
            "on_error": step.on_error,
            "retry": step.retry.model_dump() if step.retry is not None else None,
            "timeout": step.timeout,
            "notes": step.notes,
        }

    # -- validation -----------------------------------------------------------------------------

    def _validate(self) -> _Outcome:
        outcome = _Outcome()
        step, action = self._step, self._action
        if step is None:
            return outcome
        inputs: dict[str, Any] = self._root["inputs"]
        if action is not None:
            try:
                action.Inputs.model_validate(inputs)
            except ValidationError as exc:
                for error in exc.errors():
                    loc: ValuePath = ("inputs", *error["loc"])
                    if _templated_on(self._root, loc):
                        continue
                    if error["type"] == "missing":
                        outcome.add(loc, "Required.", blocking=len(loc) > 2)
                    elif error["type"] == "extra_forbidden" and len(loc) == 2:
                        message = f"'{loc[1]}' is not an input of this action."
                        outcome.add(loc, message, unknown=True)
                    else:
                        outcome.add(loc, _message(error))
            except Exception as exc:  # a validator that raised something else
                outcome.add(("inputs",), f"The inputs cannot be checked: {exc}")
        self._template_problems(("inputs",), inputs, outcome)
        for path, message in self._local.items():
            outcome.add(path, message)
        settings = self._root["step"]
        try:
            candidate = Step.model_validate(
                {"id": step.id, "action": step.action, "inputs": inputs, **settings}
            )
        except ValidationError as exc:
            for error in exc.errors():
                outcome.add(("step", *error["loc"]), _message(error))
        else:
            if not outcome.blocking:
                outcome.step = candidate.model_copy(update={"inputs": copy.deepcopy(inputs)})
        return outcome

    def _template_problems(self, path: ValuePath, value: Any, outcome: _Outcome) -> None:
        if isinstance(value, str):
            if "{{" in value and (message := template_error(value)) is not None:
                outcome.add(path, message)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._template_problems((*path, str(key)), item, outcome)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._template_problems((*path, i), item, outcome)

    def _owner(self, loc: ValuePath, by_data: dict[ValuePath, Slot]) -> Slot | None:
        """The slot whose data path is the longest prefix of `loc` (local errors: exact slot)."""
        exact = self._slots.get(loc)
        if exact is not None and loc in self._local:
            return exact
        for n in range(len(loc), 0, -1):
            slot = by_data.get(loc[:n])
            if slot is not None:
                return slot
        return None

    def _refresh(self, *, emit: bool) -> None:
        outcome = self._validate()
        self._outcome = outcome
        shown: dict[int, list[_Problem]] = {}
        general: list[tuple[ValuePath, _Problem]] = []
        by_data = {s.data_path: s for s in self._slots.values() if s.data_path is not None}
        for loc, problems in outcome.problems.items():
            slot = self._owner(loc, by_data)
            if slot is None:
                general.extend((loc, p) for p in problems)
            else:
                shown.setdefault(id(slot), []).extend(problems)
        for slot in self._slots.values():
            problems = shown.get(id(slot), [])
            text = "\n".join(dict.fromkeys(p.message for p in problems))
            blocking = any(p.blocking for p in problems)
            # A value with an error has no preview: the error says it once.
            slot.show(text, blocking, *(("", True) if blocking else self._preview_text(slot)))
        self._show_general(general)
        errors = self.errors
        if errors != self._reported:
            self._reported = errors
            if self._on_errors is not None:
                self._on_errors(errors)
        if emit and outcome.step is not None and outcome.step != self._step:
            self._step = outcome.step
            result = self._on_change(outcome.step)
            if inspect.isawaitable(result):
                background_tasks.create(_wait(result), name="inspector on_change")

    def _preview_text(self, slot: Slot) -> tuple[str, bool]:
        if slot.preview is None:
            return "", True
        if slot.spec.kind not in _LEAVES and slot.path not in self._expr:
            return "", True
        result = preview(slot.get(), self._scope, self._source.upstream)
        if result is None:
            return "", True
        text = result.text
        where = self._source.origin or "sample data"
        if result.ok and result.empty:
            names = ", ".join(result.empty)
            return (
                f"= {text}\n⚠ Nothing at {names} in the {where}: check the spelling, or pick "
                "the field from the reference list.",
                False,
            )
        if result.ok and result.value is None:
            text = f"null (nothing at this path in the {where})"
        return (f"= {text}", True) if result.ok else (f"⚠ {text}", False)

    def _show_general(self, problems: list[tuple[ValuePath, _Problem]]) -> None:
        """Problems no field owns (unknown inputs, model-wide checks), above the settings."""
        area = self._general
        shown = [(loc, p.message) for loc, p in problems]
        if area is None or area.is_deleted or shown == self._general_shown:
            return
        self._general_shown = shown
        area.clear()
        with area:
            for loc, problem in problems:
                with ui.row().classes("items-center no-wrap gap-1"):
                    where = ".".join(str(p) for p in loc[1:])
                    text = f"{where}: {problem.message}" if where else problem.message
                    ui.label(text).classes("text-caption text-negative")
                    if problem.unknown:
                        button = ui.button(
                            "Remove", on_click=lambda k=loc: self._set(k, UNSET)
                        ).props("flat dense no-caps size=sm")
                        tag(button, f"inspector-remove-unknown-{loc[1]}")


def field_problems(step: Step, errors: Mapping[str, Sequence[str]]) -> list[str]:
    """`Inspector.errors` of `step` as sentences naming the step and field, for the problems
    list and a refused test run."""
    lines = []
    for key, messages in errors.items():
        setting = key.removeprefix("step.")
        where = f"setting '{setting}'" if setting != key else f"input '{key}'"
        for message in messages:
            lines.append(f"Step '{step.label}', {where}: {message}")
    return lines


def step_action(step: Step, flow: Flow, registry: Registry) -> ActionClass | None:
    """The action (or, for the flow's trigger, the trigger) class of `step`; None if unknown."""
    try:
        if step.id == flow.trigger.id:
            return registry.trigger(step.action)
        return registry.action(step.action)
    except LookupError:
        return None


async def _wait(result: Awaitable[None]) -> None:
    await result

"""Flow validation: every problem, each naming its step and the fix.

Run on save, on import and before every run. Errors make a flow refuse to run; warnings (a loop
with nothing in its body, a step the trigger cannot reach) are shown but do not block. A branch
port without an edge is no problem at all: that path does nothing.
"""

from __future__ import annotations

import re
from typing import Any

import networkx as nx

from components.api import Action, Trigger
from components.registry import Registry
from runtime.errors import ExpressionError, Issue
from runtime.expressions import compile_value, step_references
from runtime.graph import LOOP_PORTS, loop_bodies, to_graph
from runtime.input_problems import input_problems
from runtime.model import ERROR_TRIGGER, Flow, Integration, Step

__all__ = ["errors_only", "validate_flow", "validate_integration"]

_CONFIG_REF = re.compile(r"\bconfig\.([A-Za-z_][A-Za-z0-9_]*)")


def errors_only(issues: list[Issue]) -> list[Issue]:
    """The issues that block a run."""
    return [i for i in issues if i.severity == "error"]


def validate_integration(integration: Integration, registry: Registry) -> list[Issue]:
    """Validate every flow of an integration; each issue's message starts with the flow's name."""
    issues: list[Issue] = []
    for flow in integration.flows:
        for issue in validate_flow(flow, registry, integration):
            issues.append(
                Issue(
                    code=issue.code,
                    message=f"Flow '{flow.label}': {issue.message}",
                    step=issue.step,
                    hint=issue.hint,
                    severity=issue.severity,
                )
            )
    flow_ids = {f.id for f in integration.flows}
    if integration.errors.flow is not None and integration.errors.flow not in flow_ids:
        issues.append(
            Issue(
                code="unknown_error_flow",
                message=f"The integration's errors.flow names flow '{integration.errors.flow}', "
                "which does not exist.",
                hint=f"Name an existing flow whose trigger is '{ERROR_TRIGGER}', or remove it.",
            )
        )
    return issues


def action_ports(cls: type[Action[Any]] | type[Trigger[Any]], step: Step) -> tuple[str, ...]:
    """The output ports of `step` (an action's may depend on its inputs, e.g. branch cases)."""
    if issubclass(cls, Action):
        try:
            ports = cls.output_ports(step.inputs)
        except Exception:  # a component's bug must not break validation of the whole flow
            ports = cls.ports
    else:
        ports = cls.ports
    if step.on_error == "continue":
        ports = (*ports, "error")
    return ports


def validate_flow(
    flow: Flow, registry: Registry, integration: Integration | None = None
) -> list[Issue]:
    """All problems of one flow, errors first in file order, then warnings."""
    v = _Validator(flow, registry, integration)
    v.run()
    return sorted(v.issues, key=lambda i: i.severity != "error")


class _Validator:
    def __init__(self, flow: Flow, registry: Registry, integration: Integration | None) -> None:
        self.flow = flow
        self.registry = registry
        self.integration = integration
        self.issues: list[Issue] = []
        self.steps = {s.id: s for s in flow.all_steps()}
        self.classes: dict[str, type[Action[Any]] | type[Trigger[Any]]] = {}
        self.graph = to_graph(flow)

    def name(self, step_id: str) -> str:
        step = self.steps.get(step_id)
        return f"'{step.label}'" if step else f"'{step_id}'"

    def add(
        self, code: str, step: str | None, message: str, hint: str = "", *, warn: bool = False
    ) -> None:
        severity = "warning" if warn else "error"
        self.issues.append(Issue(code, message, step, hint, severity))

    def run(self) -> None:
        self.check_components()
        self.check_error_flow()
        self.check_edges()
        self.check_tests()
        if not self.check_cycles():
            return  # reachability and ancestry are meaningless in a cyclic graph
        self.check_reachability()
        self.check_loops()
        for step in self.flow.all_steps():
            self.check_inputs(step)

    def check_error_flow(self) -> None:
        if self.integration is None or self.integration.errors.flow != self.flow.id:
            return
        if self.flow.trigger.action != ERROR_TRIGGER:
            self.add(
                "error_flow_trigger",
                self.flow.trigger.id,
                f"This flow is the integration's errors.flow but its trigger is "
                f"'{self.flow.trigger.action}'.",
                f"Give it the trigger '{ERROR_TRIGGER}', or name another flow in errors.flow.",
            )

    def check_tests(self) -> None:
        # An error, not a file-shape error: deleting or renaming a step in the designer must
        # not make the stored flow unreadable; the test is flagged until it is updated.
        for index, test in enumerate(self.flow.tests):
            for place, step_id in test.step_refs():
                if step_id not in self.steps:
                    self.add(
                        "test_unknown_step",
                        None,
                        f"tests[{index}] ({test.name}) > {place}: there is no step '{step_id}' "
                        f"in flow '{self.flow.label}'.",
                        f"Its steps: {', '.join(self.steps)}. Update or remove the test.",
                    )

    def check_components(self) -> None:
        trigger = self.flow.trigger
        try:
            self.classes[trigger.id] = self.registry.trigger(trigger.action)
        except LookupError as exc:
            self.add(
                "unknown_component",
                trigger.id,
                f"Trigger {self.name(trigger.id)} uses '{trigger.action}', but {exc}.",
                "Install the component, or pick another trigger.",
            )
        for step in self.flow.steps:
            try:
                self.classes[step.id] = self.registry.action(step.action)
            except LookupError as exc:
                hint = "Install the component, or pick another action."
                try:
                    self.registry.trigger(step.action)
                    hint = f"'{step.action}' is a trigger; a flow has exactly one, at its start."
                except LookupError:
                    pass
                self.add(
                    "unknown_component",
                    step.id,
                    f"Step {self.name(step.id)} uses '{step.action}', but {exc}.",
                    hint,
                )

    def check_edges(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        trigger = self.flow.trigger.id
        connected: dict[str, set[str]] = {}
        for edge in self.flow.edges:
            src, dst = edge.source, edge.target
            if src not in self.steps or dst not in self.steps:
                missing = src if src not in self.steps else dst
                owner = dst if missing == src else src
                self.add(
                    "dangling_edge",
                    owner if owner in self.steps else None,
                    f"The edge from '{src}' to '{dst}' points to '{missing}', "
                    "which is not a step of this flow.",
                    "Remove the edge or add the missing step.",
                )
                continue
            if dst == trigger:
                self.add(
                    "edge_into_trigger",
                    trigger,
                    f"Trigger {self.name(trigger)} has an incoming edge from {self.name(src)}.",
                    "A trigger starts the flow; remove the edge into it.",
                )
            if (src, dst) in seen:
                self.add(
                    "duplicate_edge",
                    src,
                    f"Step {self.name(src)} connects to {self.name(dst)} twice "
                    f"(ports '{seen[(src, dst)]}' and '{edge.port}').",
                    "Keep one of the two edges.",
                )
            seen[(src, dst)] = edge.port
            connected.setdefault(src, set()).add(edge.port)
            cls = self.classes.get(src)
            if cls is None:
                continue
            ports = action_ports(cls, self.steps[src])
            if edge.port not in ports:
                self.add(
                    "unknown_port",
                    src,
                    f"Step {self.name(src)} has no port '{edge.port}' "
                    f"(its ports: {', '.join(ports)}); the edge to {self.name(dst)} uses it.",
                    "Connect the edge from one of the step's ports.",
                )
        # An unconnected branch port (or a loop's `done`) means "nothing more on that path":
        # a choice, not a mistake, and a warning the user could only clear with a dummy step.
        # A loop whose `body` leads nowhere repeats nothing, which is worth a word.
        for step_id in self.classes:
            step = self.steps[step_id]
            if self.is_loop(step) and "body" not in connected.get(step_id, set()):
                self.add(
                    "unconnected_port",
                    step_id,
                    f"Step {self.name(step_id)} has no edge on port 'body': "
                    "the loop repeats nothing.",
                    "Connect the steps to run for each item to its 'body' port, or remove the "
                    "loop.",
                    warn=True,
                )

    def check_cycles(self) -> bool:
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            return True
        path = " → ".join([self.name(u) for u, _v in cycle] + [self.name(cycle[0][0])])
        self.add(
            "cycle",
            cycle[0][0],
            f"Steps {path} form a cycle.",
            "Flows must be acyclic: remove one of these edges; use a loop step to repeat work.",
        )
        return False

    def check_reachability(self) -> None:
        reachable = nx.descendants(self.graph, self.flow.trigger.id)
        for step in self.flow.steps:
            if step.id not in reachable:
                self.add(
                    "unreachable",
                    step.id,
                    f"Step {self.name(step.id)} is not connected to the trigger "
                    "and will never run.",
                    "Connect it to an earlier step or delete it.",
                    warn=True,
                )

    def is_loop(self, step: Step) -> bool:
        cls = self.classes.get(step.id)
        return cls is not None and issubclass(cls, Action) and cls.ports == LOOP_PORTS

    def check_loops(self) -> None:
        bodies = loop_bodies(self.graph, self.is_loop, self.flow.edges)
        for loop, body in bodies.items():
            after: set[str] = set()
            for edge in self.flow.edges:
                if edge.source == loop and edge.port == "done" and edge.target in self.graph:
                    after |= {edge.target, *nx.descendants(self.graph, edge.target)}
            for node in sorted(body & after, key=self.order):
                self.add(
                    "loop_body_escapes",
                    node,
                    f"Step {self.name(node)} runs both inside loop {self.name(loop)} "
                    "(from its 'body' port) and after it (from 'done').",
                    f"End the loop body before {self.name(node)}, or connect it on one side only.",
                )
            for node in sorted(body, key=self.order):
                for pred in self.graph.predecessors(node):
                    if pred not in body and pred != loop:
                        self.add(
                            "loop_body_entry",
                            node,
                            f"Step {self.name(node)} is inside loop {self.name(loop)} but also "
                            f"has an incoming edge from {self.name(pred)} outside the loop.",
                            "A loop body is entered only from the loop's 'body' port; "
                            "remove that edge.",
                        )

    def order(self, step_id: str) -> int:
        order: int = self.graph.nodes[step_id]["order"]
        return order

    def check_inputs(self, step: Step) -> None:
        cls = self.classes.get(step.id)
        if cls is not None:
            fields = cls.Inputs.model_fields
            for key, field in fields.items():
                if field.is_required() and key not in step.inputs:
                    title = f" ({field.title})" if field.title else ""
                    self.add(
                        "missing_input",
                        step.id,
                        f"Step {self.name(step.id)} is missing required input '{key}'{title}.",
                        "Fill it in the inspector.",
                    )
            for key in step.inputs:
                if key not in fields:
                    known = ", ".join(fields) or "none"
                    self.add(
                        "unknown_input",
                        step.id,
                        f"Step {self.name(step.id)} has no input '{key}' (its inputs: {known}).",
                        "Remove it or rename it to one of the step's inputs.",
                    )
            self.check_literals(step, cls)
        try:
            compile_value(step.inputs)
        except ExpressionError as exc:
            self.add(
                "bad_expression", step.id, f"Step {self.name(step.id)}: {exc.message}", exc.hint
            )
            return
        self.check_references(step)

    def check_literals(self, step: Step, cls: type[Action[Any]] | type[Trigger[Any]]) -> None:
        """Inputs that are not templates, checked now against the inputs model (the engine
        would refuse them at every run)."""
        what = "Trigger" if step is self.flow.trigger else "Step"
        for problem in input_problems(cls.Inputs, step.inputs):
            if len(problem.loc) == 1 and problem.kind in ("missing", "extra_forbidden"):
                continue  # reported by check_inputs as missing_input / unknown_input
            self.add(
                "invalid_input",
                step.id,
                f"{what} {self.name(step.id)} input '{problem.field}': {problem.message}",
                "Fix the value in the inspector, or compute it with a template.",
            )

    def check_references(self, step: Step) -> None:
        ancestors = nx.ancestors(self.graph, step.id)
        for ref in sorted(step_references(step.inputs)):
            if ref not in self.steps:
                self.add(
                    "unknown_reference",
                    step.id,
                    f"Step {self.name(step.id)} reads steps.{ref}, but there is no step '{ref}'.",
                    "Pick an earlier step with the reference picker.",
                )
            elif ref == step.id or ref not in ancestors:
                self.add(
                    "reference_not_run",
                    step.id,
                    f"Step {self.name(step.id)} reads steps.{ref}, but {self.name(ref)} "
                    "cannot have run before it.",
                    f"Connect {self.name(ref)} before {self.name(step.id)}, or read a step that "
                    "runs earlier (after a loop, use steps.<loop>.output.results).",
                )
        if self.integration is not None:
            declared = {c.key for c in self.integration.config}
            for match in sorted(set(_CONFIG_REF.findall(_template_text(step.inputs)))):
                if match not in declared:
                    self.add(
                        "unknown_config",
                        step.id,
                        f"Step {self.name(step.id)} reads config.{match}, but the integration "
                        f"declares no config variable '{match}'.",
                        "Add the config variable or fix the name.",
                    )


def _template_text(value: Any) -> str:
    """All `{{ }}` contents inside a value, joined (for cheap reference scans)."""
    if isinstance(value, str):
        return " ".join(re.findall(r"\{\{(.*?)\}\}", value, re.S))
    if isinstance(value, dict):
        return " ".join(_template_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_template_text(v) for v in value)
    return ""

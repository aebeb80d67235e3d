"""How routing reads a webhook trigger's settings: a custom trigger's own defaults must apply."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

from pydantic import Field

from app.services.routing import _flow_target, _Loaded
from components.api import Component, Inputs, Trigger
from components.registry import Registry
from runtime.model import Flow, Step


class SignedInputs(Inputs):
    """A custom trigger's inputs: signed by default, with its own delivery-id header."""

    signature: dict[str, Any] = Field(
        default_factory=lambda: {
            "scheme": "hmac_sha256",
            "header": "X-Shop-Signature",
            "secret": "shop-secret",
        }
    )
    delivery_id_header: str = "X-Shop-Delivery"
    shop: str = "main"


class ShopTrigger(Trigger[SignedInputs]):
    key = "order"
    title = "Shop order"
    kind: ClassVar[Any] = "webhook"
    Inputs = SignedInputs


REGISTRY = Registry([Component(key="shop", title="Shop", triggers=[ShopTrigger])])


def loaded(flow: Flow) -> _Loaded:
    return _Loaded(
        instance_id="i1",
        name="live",
        status="active",
        enabled=True,
        integration="Shop",
        document={},
        flows=[flow],
        config={"secret": "s3cret"},
    )


def test_a_custom_triggers_defaults_reach_the_receive_path() -> None:
    flow = Flow(id="orders", trigger=Step(id="in", action="shop.order"))
    target = _flow_target(SimpleNamespace(registry=REGISTRY), loaded(flow), flow)  # type: ignore[arg-type]
    assert target.problem == "", target.problem
    assert target.trigger is not None
    assert target.trigger.signature.scheme == "hmac_sha256"
    assert target.trigger.signature.header == "X-Shop-Signature"
    assert target.trigger.signature.secret is not None
    assert target.trigger.signature.secret.get_secret_value() == "shop-secret"
    assert target.trigger.delivery_id_header == "X-Shop-Delivery"


def test_values_written_in_the_flow_win_over_the_defaults() -> None:
    trigger = Step(id="in", action="shop.order", inputs={"delivery_id_header": "X-Other"})
    flow = Flow(id="orders", trigger=trigger)
    target = _flow_target(SimpleNamespace(registry=REGISTRY), loaded(flow), flow)  # type: ignore[arg-type]
    assert target.trigger is not None
    assert target.trigger.delivery_id_header == "X-Other"
    assert target.trigger.signature.header == "X-Shop-Signature"

"""How routing reads a webhook trigger's settings: a custom trigger's own defaults must apply."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from pydantic import Field

from app.services.routing import _flow_target, _Loaded
from components.api import Component, IncomingRequest, Inputs, Refused, Trigger
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


def request(headers: dict[str, str], body: bytes = b"{}") -> IncomingRequest:
    return IncomingRequest("POST", headers, {}, body, 1_700_000_000.0)


def signed(body: bytes, secret: str = "shop-secret") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_custom_triggers_defaults_reach_the_receive_path() -> None:
    """A custom trigger that does not implement `admit` gets the checks its fields name."""
    flow = Flow(id="orders", trigger=Step(id="in", action="shop.order"))
    target = _flow_target(SimpleNamespace(registry=REGISTRY), loaded(flow), flow)  # type: ignore[arg-type]
    assert target.problem == "", target.problem
    assert target.trigger is not None and target.admit is not None
    with pytest.raises(Refused, match="header 'X-Shop-Signature' is missing") as refused:
        target.admit(request({}))
    assert refused.value.status == 401
    with pytest.raises(Refused, match="does not match"):
        target.admit(request({"x-shop-signature": signed(b"{}", "other")}))
    admitted = target.admit(
        request({"x-shop-signature": signed(b"{}"), "x-shop-delivery": "d-1", "webhook-id": "w"})
    )
    assert admitted.delivery_id == "d-1"
    assert admitted.reply is None


def test_values_written_in_the_flow_win_over_the_defaults() -> None:
    trigger = Step(id="in", action="shop.order", inputs={"delivery_id_header": "X-Other"})
    flow = Flow(id="orders", trigger=trigger)
    target = _flow_target(SimpleNamespace(registry=REGISTRY), loaded(flow), flow)  # type: ignore[arg-type]
    assert target.admit is not None
    headers = {"x-shop-signature": signed(b"{}"), "x-shop-delivery": "d-1", "x-other": "o-1"}
    assert target.admit(request(headers)).delivery_id == "o-1"

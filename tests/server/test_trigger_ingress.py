"""A custom trigger owns its ingress: a real `flowyard serve` over loopback asks the trigger from a
user's components folder, and what it refuses is answered with its status and never stored.

Runs on SQLite and, with `FLOWYARD_TEST_DB=postgresql`, on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.persistence import open_database
from app.persistence.models import ExecutionRow, InboxRow
from app.persistence.repositories import table_of
from bench.serving import deploy_text
from tests.server.conftest import ServerProcess, free_port

SECRET = "shop-s3cret"

COMPONENT = '''
import hashlib
import hmac

from pydantic import Field, SecretStr

from components.api import (
    Admission,
    Component,
    IncomingRequest,
    Ingress,
    Inputs,
    Refused,
    Response,
    Trigger,
)


class OrderInputs(Inputs):
    secret: SecretStr = Field(title="Secret", description="The shop's signing secret.")


class OrderTrigger(Trigger[OrderInputs]):
    """Signs with a hex HMAC in X-Shop-Signature; a GET with ?challenge= subscribes the URL."""

    key = "order"
    title = "Shop order"
    description = "Starts the flow when the shop sends an order."
    kind = "webhook"
    Inputs = OrderInputs

    def ingress(self, inputs: OrderInputs) -> Ingress:
        return Ingress(methods=("GET", "POST"), max_body_bytes=4096)

    def admit(self, inputs: OrderInputs, request: IncomingRequest) -> Admission:
        if request.method == "GET":
            challenge = request.query.get("challenge")
            if not challenge:
                raise Refused(400, "A GET to this URL must carry a `challenge` parameter.")
            return Admission(reply=Response(200, {"content-type": "text/plain"}, challenge))
        if "x-shop-test" in request.headers:  # a refusal that is not an error status
            raise Refused(200, "The shop's test ping is not an order.")
        key = inputs.secret.get_secret_value().encode()
        expected = hmac.new(key, request.raw_body, hashlib.sha256).hexdigest()
        given = request.headers.get("x-shop-signature", "")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise Refused(
                401,
                "Header 'X-Shop-Signature' does not match the body.",
                hint="Check the shop's signing secret.",
            )
        return Admission(delivery_id=request.headers.get("x-shop-order"))


component = Component(key="shop", title="Shop", triggers=[OrderTrigger])
'''

INTEGRATION = f"""
name: Shop orders
flows:
  - id: orders
    name: Orders
    trigger:
      id: trigger
      action: shop.order
      inputs: {{secret: {SECRET}}}
    steps:
      - id: note
        action: transform.object
        inputs: {{fields: {{order: "{{{{ trigger.body.id }}}}"}}}}
    edges:
      - {{from: trigger, to: note}}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[ServerProcess]:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "shop.py").write_text(textwrap.dedent(COMPONENT))
    process = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log")
    process.env["FLOWYARD_COMPONENTS_DIR"] = str(folder)
    process.start()
    yield process
    process.stop()


def stored(data_dir: Path) -> tuple[int, int]:
    """(inbox rows, executions) in the server's database."""
    engine = open_database(data_dir)
    try:
        with engine.connect() as conn:
            inbox = conn.execute(select(func.count()).select_from(table_of(InboxRow))).scalar()
            runs = conn.execute(select(func.count()).select_from(table_of(ExecutionRow))).scalar()
    finally:
        engine.dispose()
    return int(inbox or 0), int(runs or 0)


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_custom_trigger_refuses_before_anything_is_stored(shop: ServerProcess) -> None:
    url = deploy_text(shop.url, INTEGRATION, "live")["orders"]
    body = b'{"id": "ord_1"}'
    json_type = {"content-type": "application/json"}

    forged = httpx.post(
        url, content=body, headers={**json_type, "X-Shop-Signature": sign(body, "x")}
    )
    assert forged.status_code == 401, forged.text
    assert forged.json()["error"] == "Header 'X-Shop-Signature' does not match the body."
    assert forged.json()["hint"] == "Check the shop's signing secret."
    unsigned = httpx.post(url, content=body, headers=json_type)
    assert unsigned.status_code == 401, unsigned.text
    tampered = httpx.post(
        url, content=b'{"id": "ord_2"}', headers={**json_type, "X-Shop-Signature": sign(body)}
    )
    assert tampered.status_code == 401, tampered.text
    # The trigger's own limits: its methods (405 + Allow) and its body cap (413).
    put = httpx.put(url, content=body, headers={**json_type, "X-Shop-Signature": sign(body)})
    assert (put.status_code, put.headers["allow"]) == (405, "GET, POST")
    big = b'{"id": "' + b"x" * 5000 + b'"}'
    too_big = httpx.post(url, content=big, headers={**json_type, "X-Shop-Signature": sign(big)})
    assert too_big.status_code == 413, too_big.text
    # A handshake is answered by the trigger at once, and is not a delivery either.
    challenge = httpx.get(url, params={"challenge": "abc123"})
    assert (challenge.status_code, challenge.text) == (200, "abc123")
    assert challenge.headers["content-type"].startswith("text/plain")
    bare = httpx.get(url)
    assert bare.status_code == 400, bare.text
    assert "challenge" in bare.json()["error"]
    # A refusal is never answered as a success (which would make the sender drop the request).
    ping = httpx.post(url, content=body, headers={**json_type, "X-Shop-Test": "1"})
    assert (ping.status_code, ping.json()["error"]) == (
        400,
        "The shop's test ping is not an order.",
    )
    assert stored(shop.data_dir) == (0, 0)

    signed = {**json_type, "X-Shop-Signature": sign(body), "X-Shop-Order": "ord_1"}
    accepted = httpx.post(url, content=body, headers=signed)
    assert accepted.status_code == 202, accepted.text
    again = httpx.post(url, content=body, headers=signed)
    assert again.status_code == 200, again.text
    assert again.json() == {"execution_id": accepted.json()["execution_id"], "duplicate": True}
    assert stored(shop.data_dir)[0] == 1

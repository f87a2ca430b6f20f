"""Odd inputs the schemathesis run (test_openapi.py) and probes found answered with a 500 or not
at all: each a 4xx in the error shape now, through real HTTP against a running broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from zanzara.config import AdminConfig, Config, PushConfig, StorageConfig

from brokerthread import BrokerThread
from clients import V5, PahoClient


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    config = Config(
        storage=StorageConfig(backend="memory"), push=PushConfig(track_deliveries=True), admin=AdminConfig()
    )
    thread = BrokerThread(config, admin=True)
    yield thread
    thread.stop()


def post_raw(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    # json.dumps keeps a lone surrogate as its "\ud800" escape, as any JSON sender may.
    return http.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        {"topic": "t", "payload": "\ud800"},
        {"topic": "t", "payload": "x", "properties": {"user_properties": [["k", "\udfff"]]}},
        {"topic": "t", "payload": "x", "properties": {"user_properties": [["\x00", "v"]]}},
        {"topic": "t", "payload": "x", "properties": {"content_type": "a\x00b"}},
        {"topic": "t", "payload": "x", "properties": {"response_topic": "r/\ud800"}},
    ],
    ids=[
        "payload-surrogate",
        "user-property-surrogate",
        "user-property-null",
        "content-type-null",
        "response-topic-surrogate",
    ],
)
def test_text_without_a_utf8_form_or_with_null_is_a_422(broker: BrokerThread, body: dict[str, Any]) -> None:
    # MQTT's UTF-8 strings hold neither surrogates nor U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]: these
    # failed when the message was encoded for the subscriber, as a 500 after it was routed.
    sub = PahoClient(broker.port, "sub", version=V5)
    sub.subscribe("t", qos=0)
    with httpx.Client(base_url=broker.admin_url, timeout=10) as http:
        assert_error(post_raw(http, "/api/v1/publish", body), 422, "INVALID_REQUEST")
        assert_error(post_raw(http, "/api/v1/publish/bulk", {"messages": [body]}), 422, "INVALID_REQUEST")
        # Nothing went out, and the subscriber is still served.
        sub.expect_none()
        assert http.post("/api/v1/publish", json={"topic": "t", "payload": "ok", "qos": 0}).status_code == 200
    assert sub.expect().payload == b"ok"
    sub.disconnect()


def test_a_server_side_subscription_with_a_surrogate_is_a_422(broker: BrokerThread) -> None:
    sub = PahoClient(broker.port, "sub", version=V5)
    with httpx.Client(base_url=broker.admin_url, timeout=10) as http:
        answer = post_raw(http, "/api/v1/clients/sub/subscriptions", {"topic_filter": "a/\ud800"})
        assert_error(answer, 422, "INVALID_REQUEST")
    sub.disconnect()


def test_ids_and_topics_holding_a_slash_are_reached_with_percent_2f(broker: BrokerThread) -> None:
    # A client id is any UTF-8 string [MQTT-3.1.3-5] (zanzara takes '/' in it), and so is a message
    # id to the API; such ids matched no route (a bare 404 "Not Found") when sent as %2F.
    odd = PahoClient(broker.port, "site/7/dev", version=V5, clean=False, session_expiry=60)
    odd.subscribe("x/#", qos=1)
    percent = PahoClient(broker.port, "50%2F", version=V5)
    with httpx.Client(base_url=broker.admin_url, timeout=10) as http:
        detail = http.get("/api/v1/clients/site%2F7%2Fdev")
        assert detail.status_code == 200, detail.text
        assert detail.json()["client_id"] == "site/7/dev"
        assert http.get("/api/v1/clients/site%2F7%2Fdev/queue").json() == {"items": []}
        added = http.post("/api/v1/clients/site%2F7%2Fdev/subscriptions", json={"topic_filter": "y/+"})
        assert added.status_code == 201 and added.json()["client_id"] == "site/7/dev"
        # A literal "%2F" in an id is sent as %252F and stays itself.
        assert http.get("/api/v1/clients/50%252F").json()["client_id"] == "50%2F"
        # Not the same client: "site" has no session, and "site/7/dev/queue" is not a route to it.
        assert_error(http.get("/api/v1/clients/site/7/dev"), 404, "NOT_FOUND")
        # Retained topics: '/' encoded or not.
        http.post("/api/v1/publish", json={"topic": "r/1", "payload": "x", "qos": 0, "retain": True})
        assert http.get("/api/v1/retained/r%2F1").json()["topic"] == "r/1"
        assert http.get("/api/v1/retained/r/1").json()["topic"] == "r/1"
        assert http.delete("/api/v1/retained/r%2F1").status_code == 204
        assert http.delete("/api/v1/clients/site%2F7%2Fdev/connection").status_code == 204
    odd.disconnect()
    percent.disconnect()

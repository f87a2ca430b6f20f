"""The admin HTTP API through real HTTP (httpx) against a running broker, with real MQTT clients
(paho-mqtt v3.1.1 and v5) on the other side: push, receipts, clients, retained, events."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zanzara import Broker
from zanzara.config import AdminConfig, AdminToken, Config, PushConfig, StorageConfig
from zanzara.errors import ConfigError

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient

READ, PUBLISH, ADMIN = "r" * 16 + "ead", "p" * 16 + "ublish", "a" * 16 + "dmin"


class Admin:
    """A broker in a thread with its admin API on a free port, and an HTTP client for it."""

    def __init__(self, config: Config, token: str | None = None) -> None:
        self.thread = BrokerThread(config, admin=True)
        assert self.thread.broker is not None
        self.broker: Broker = self.thread.broker
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.thread.admin_url, headers=headers, timeout=10)

    @property
    def port(self) -> int:
        return self.thread.port

    def close(self) -> None:
        self.http.close()
        self.thread.stop()


def config(**admin: Any) -> Config:
    return Config(
        storage=StorageConfig(backend="memory"),
        push=PushConfig(track_deliveries=True),
        admin=AdminConfig(**admin),
    )


@pytest.fixture
def admin() -> Iterator[Admin]:
    a = Admin(config())
    yield a
    a.close()


@pytest.fixture
def secured() -> Iterator[Callable[[str | None], httpx.Client]]:
    tokens = [
        AdminToken(token=READ, scope="read"),
        AdminToken(token=PUBLISH, scope="publish"),
        AdminToken(token=ADMIN, scope="admin", name="ops"),
    ]
    a = Admin(config(tokens=tokens))

    def client(token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=str(a.http.base_url), headers=headers, timeout=10)

    yield client
    a.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- health, documents ----------------------------------------------------------------------------


def test_health_and_readiness_need_no_token(secured: Callable[[str | None], httpx.Client]) -> None:
    http = secured(None)
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}


def test_the_openapi_document_and_docs_are_served(admin: Admin) -> None:
    doc = admin.http.get("/openapi.json").json()
    assert "/api/v1/publish" in doc["paths"]
    assert "/api/v1/clients/{client_id}" in doc["paths"]
    assert admin.http.get("/docs").status_code == 200


# -- tokens and scopes ----------------------------------------------------------------------------


def test_tokens_and_scopes(secured: Callable[[str | None], httpx.Client]) -> None:
    body = {"topic": "t", "payload": "x", "qos": 0}
    missing = secured(None).post("/api/v1/publish", json=body)
    assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHORIZED"
    wrong = secured("w" * 20).post("/api/v1/publish", json=body)
    assert wrong.status_code == 401 and wrong.json()["code"] == "UNAUTHORIZED"
    reader = secured(READ)
    assert reader.get("/api/v1/stats").status_code == 200
    forbidden = reader.post("/api/v1/publish", json=body)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "FORBIDDEN"
    assert secured(PUBLISH).post("/api/v1/publish", json=body).status_code == 200
    assert secured(PUBLISH).post("/api/v1/clients/kick", json={"client_ids": ["x"]}).status_code == 403
    assert secured(ADMIN).post("/api/v1/clients/kick", json={"client_ids": ["x"]}).status_code == 200


# -- push -----------------------------------------------------------------------------------------


def test_publish_reaches_connected_and_queues_for_offline_sessions(admin: Admin) -> None:
    online = PahoClient(admin.port, "online", version=V5, clean=False, session_expiry=300)
    online.subscribe("push/#", qos=1)
    offline = PahoClient(admin.port, "offline", version=V311, clean=False)
    offline.subscribe("push/#", qos=1)
    offline.disconnect()
    admin.thread.wait_offline("offline")

    answer = admin.http.post(
        "/api/v1/publish",
        json={
            "topic": "push/1",
            "payload": "hello",
            "qos": 1,
            "priority": 9,
            "properties": {"content_type": "text/plain", "user_properties": [["k", "v"]]},
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["matched"], result["sent"], result["queued"]) == (2, 1, 1)
    got = online.expect()
    assert (got.topic, got.payload, got.qos) == ("push/1", b"hello", 1)
    assert got.properties.ContentType == "text/plain"
    assert ("k", "v") in got.properties.UserProperty

    message_id = result["message_id"]
    eventually(lambda: admin.http.get(f"/api/v1/messages/{message_id}").status_code == 200)
    summary = admin.http.get(f"/api/v1/messages/{message_id}").json()
    assert summary["recipients"] == 2
    eventually(
        lambda: (
            admin.http.get(f"/api/v1/messages/{message_id}").json()["by_status"]
            == {"acknowledged": 1, "queued": 1}
        )
    )
    queued = admin.http.get(f"/api/v1/messages/{message_id}/receipts", params={"status": "queued"}).json()
    assert [r["client_id"] for r in queued["items"]] == ["offline"]
    assert queued["items"][0]["queued_at"] is not None

    # The offline session gets it when it comes back.
    back = PahoClient(admin.port, "offline", version=V311, clean=False)
    assert back.expect().payload == b"hello"
    online.disconnect()
    back.disconnect()


def test_binary_payload_and_receipts_not_found(admin: Admin) -> None:
    sub = PahoClient(admin.port, version=V5)
    sub.subscribe("bin", qos=0)
    raw = bytes(range(256))
    answer = admin.http.post(
        "/api/v1/publish", json={"topic": "bin", "payload_base64": base64.b64encode(raw).decode(), "qos": 0}
    )
    assert answer.json()["message_id"] is None  # QoS 0 is not tracked
    assert sub.expect().payload == raw
    missing = admin.http.get("/api/v1/messages/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    sub.disconnect()


def test_targeted_push_reaches_only_the_named_sessions(admin: Admin) -> None:
    a = PahoClient(admin.port, "dev-a", version=V5)
    b = PahoClient(admin.port, "dev-b", version=V5)
    for c in (a, b):
        c.subscribe("news", qos=1)
    result = admin.http.post(
        "/api/v1/publish", json={"topic": "news", "payload": "only a", "client_ids": ["dev-a", "ghost"]}
    ).json()
    assert (result["matched"], result["sent"]) == (1, 1)
    assert a.expect().payload == b"only a"
    b.expect_none()
    refused = admin.http.post(
        "/api/v1/publish", json={"topic": "news", "payload": "x", "retain": True, "client_ids": ["dev-a"]}
    )
    assert refused.status_code == 422 and "retained" in refused.json()["message"]
    a.disconnect()
    b.disconnect()


def test_dry_run_counts_and_publishes_nothing(admin: Admin) -> None:
    sub = PahoClient(admin.port, version=V5)
    sub.subscribe("dry/+", qos=1)
    body = {"topic": "dry/1", "payload": "x", "dry_run": True}
    result = admin.http.post("/api/v1/publish", json=body).json()
    assert result == {"message_id": None, "matched": 1, "sent": 0, "queued": 0}
    sub.expect_none()
    sub.disconnect()


def test_bulk_publish_answers_each_item(admin: Admin) -> None:
    sub = PahoClient(admin.port, version=V5)
    sub.subscribe("bulk/#", qos=1)
    answer = admin.http.post(
        "/api/v1/publish/bulk",
        json={
            "messages": [
                {"topic": "bulk/1", "payload": "one"},
                {"topic": "bulk/+", "payload": "wildcards are not topic names"},
                {"topic": "bulk/2", "payload": "two", "qos": 2},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"]["code"] == "INVALID_REQUEST"
    assert results[0]["result"]["sent"] == 1
    assert sorted(m.payload for m in sub.expect_n(2)) == [b"one", b"two"]
    sub.disconnect()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "MALFORMED_JSON"),
        (b'{"topic": "t", "qos": 3}', 422, "INVALID_REQUEST"),
        (b'{"topic": "t", "payload": "x", "payload_base64": "eA=="}', 422, "INVALID_REQUEST"),
        (b'{"topic": "t", "payload_base64": "***"}', 422, "INVALID_REQUEST"),
        (b'{"topic": "t", "colour": "red"}', 422, "INVALID_REQUEST"),
        (b'{"topic": "a/#"}', 422, "INVALID_REQUEST"),
        (b'{"topic": "t", "priority": 256}', 422, "INVALID_REQUEST"),
        (b"[]", 422, "INVALID_REQUEST"),
    ],
)
def test_malformed_publish_bodies_get_4xx(admin: Admin, body: bytes, status: int, code: str) -> None:
    answer = admin.http.post("/api/v1/publish", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["message"]


def test_a_body_over_max_body_gets_413() -> None:
    a = Admin(config(max_body=1024))
    try:
        answer = a.http.post("/api/v1/publish", json={"topic": "t", "payload": "x" * 2000})
        assert answer.status_code == 413 and answer.json()["code"] == "PAYLOAD_TOO_LARGE"
    finally:
        a.close()


# -- clients and sessions -------------------------------------------------------------------------


def test_client_list_and_detail(admin: Admin) -> None:
    dev = PahoClient(admin.port, "dev-1", version=V5, username="alice", session_expiry=60, keepalive=30)
    dev.subscribe("a/#", qos=1)
    dev.publish("a/1", b"x", qos=1)
    PahoClient(admin.port, "other", version=V311).disconnect()
    page = admin.http.get("/api/v1/clients", params={"prefix": "dev-"}).json()
    assert [c["client_id"] for c in page["items"]] == ["dev-1"]
    assert page["next_cursor"] is None
    detail = admin.http.get("/api/v1/clients/dev-1").json()
    assert detail["connected"] is True
    assert (detail["username"], detail["protocol_version"], detail["keep_alive"]) == ("alice", 5, 30)
    assert detail["session_expiry_interval"] == 60
    assert [s["topic_filter"] for s in detail["subscriptions"]] == ["a/#"]
    assert detail["traffic"]["messages_received"] == 1
    eventually(lambda: admin.http.get("/api/v1/clients/dev-1").json()["traffic"]["messages_sent"] == 1)
    by_user = admin.http.get("/api/v1/clients", params={"username": "alice"}).json()
    assert [c["client_id"] for c in by_user["items"]] == ["dev-1"]
    assert admin.http.get("/api/v1/clients/nobody").status_code == 404
    dev.disconnect()


def test_client_list_pages_with_a_cursor(admin: Admin) -> None:
    clients = [PahoClient(admin.port, f"page-{i}", version=V311) for i in range(5)]
    first = admin.http.get("/api/v1/clients", params={"prefix": "page-", "limit": 2}).json()
    assert [c["client_id"] for c in first["items"]] == ["page-0", "page-1"]
    second = admin.http.get(
        "/api/v1/clients", params={"prefix": "page-", "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [c["client_id"] for c in second["items"]] == ["page-2", "page-3"]
    for c in clients:
        c.disconnect()


def test_kick_sends_administrative_action_and_keeps_the_session(admin: Admin) -> None:
    dev = PahoClient(admin.port, "kicked", version=V5, clean=False, session_expiry=300)
    assert admin.http.delete("/api/v1/clients/kicked/connection").status_code == 204
    reason, _ = dev.expect_disconnect()
    assert reason == 0x98  # MQTT 5 section 3.14.2.1: Administrative action
    admin.thread.wait_offline("kicked")
    assert admin.http.get("/api/v1/clients/kicked").json()["connected"] is False
    again = admin.http.delete("/api/v1/clients/kicked/connection")
    assert again.status_code == 404 and again.json()["code"] == "NOT_CONNECTED"


def test_bulk_kick(admin: Admin) -> None:
    a = PahoClient(admin.port, "k1", version=V5)
    b = PahoClient(admin.port, "k2", version=V311)
    answer = admin.http.post("/api/v1/clients/kick", json={"client_ids": ["k1", "k2", "k3"]}).json()
    assert answer == {"kicked": ["k1", "k2"], "not_connected": ["k3"]}
    assert a.expect_disconnect()[0] == 0x98
    b.expect_disconnect()


def test_end_session_forgets_it(admin: Admin) -> None:
    dev = PahoClient(admin.port, "ending", version=V5, clean=False, session_expiry=300)
    dev.subscribe("e/#", qos=1)
    assert admin.http.delete("/api/v1/clients/ending").status_code == 204
    dev.expect_disconnect()
    assert admin.http.get("/api/v1/clients/ending").status_code == 404
    back = PahoClient(admin.port, "ending", version=V5, clean=False, session_expiry=300)
    assert back.session_present is False
    back.disconnect()


def test_server_side_subscribe_and_unsubscribe(admin: Admin) -> None:
    admin.http.post("/api/v1/publish", json={"topic": "cfg/dev", "payload": "kept", "retain": True, "qos": 0})
    dev = PahoClient(admin.port, "srv-sub", version=V5)
    subscription = {"topic_filter": "cfg/#", "qos": 1}
    answer = admin.http.post("/api/v1/clients/srv-sub/subscriptions", json=subscription)
    assert answer.status_code == 201 and answer.json()["qos"] == 1
    retained = dev.expect()
    assert (retained.topic, retained.payload, retained.retain) == ("cfg/dev", b"kept", True)
    admin.http.post("/api/v1/publish", json={"topic": "cfg/x", "payload": "live"})
    assert dev.expect().payload == b"live"
    removed = admin.http.delete("/api/v1/clients/srv-sub/subscriptions", params={"topic_filter": "cfg/#"})
    assert removed.status_code == 204
    admin.http.post("/api/v1/publish", json={"topic": "cfg/x", "payload": "gone"})
    dev.expect_none()
    bad = admin.http.post("/api/v1/clients/srv-sub/subscriptions", json={"topic_filter": "a/#/b"})
    assert bad.status_code == 422
    dev.disconnect()


def test_queue_view_and_purge(admin: Admin) -> None:
    dev = PahoClient(admin.port, "q-dev", version=V311, clean=False)
    dev.subscribe("q/#", qos=1)
    dev.disconnect()
    admin.thread.wait_offline("q-dev")
    for priority in (1, 9):
        admin.http.post("/api/v1/publish", json={"topic": "q/1", "payload": "x", "priority": priority})
    queue = admin.http.get("/api/v1/clients/q-dev/queue").json()["items"]
    assert [q["priority"] for q in queue] == [9, 1]  # delivery order: highest priority first
    assert all(q["status"] == "queued" for q in queue)
    assert admin.http.delete("/api/v1/clients/q-dev/queue").json() == {"purged": 2}
    assert admin.http.get("/api/v1/clients/q-dev/queue").json()["items"] == []


# -- subscriptions, retained, listeners, stats, reload ----------------------------------------------


def test_subscriptions_list_shows_shared_groups(admin: Admin) -> None:
    a = PahoClient(admin.port, "s1", version=V5)
    a.subscribe("$share/g/jobs", qos=1)
    items = admin.http.get("/api/v1/subscriptions", params={"client_id": "s1"}).json()["items"]
    assert [(i["topic_filter"], i["share_group"]) for i in items] == [("$share/g/jobs", "g")]
    a.disconnect()


def test_retained_list_get_delete(admin: Admin) -> None:
    for topic in ("r/1", "r/2"):
        admin.http.post("/api/v1/publish", json={"topic": topic, "payload": topic, "retain": True, "qos": 0})
    listed = admin.http.get("/api/v1/retained", params={"topic_filter": "r/+"}).json()
    assert [i["topic"] for i in listed["items"]] == ["r/1", "r/2"]
    assert admin.http.get("/api/v1/retained/r/1").json()["payload"] == "r/1"
    assert admin.http.delete("/api/v1/retained/r/1").status_code == 204
    assert admin.http.get("/api/v1/retained/r/1").status_code == 404
    late = PahoClient(admin.port, version=V5)
    late.subscribe("r/#")
    assert [m.topic for m in late.expect_n(1)] == ["r/2"]
    late.expect_none()
    late.disconnect()


def test_listeners_and_stats(admin: Admin) -> None:
    [listener] = admin.http.get("/api/v1/listeners").json()
    assert (listener["protocol"], listener["port"]) == ("mqtt", admin.port)
    dev = PahoClient(admin.port, version=V5)
    stats = admin.http.get("/api/v1/stats").json()
    assert stats["connections"] == 1
    assert stats["counters"]["connections_total"] >= 1
    dev.disconnect()


def test_reload_says_what_it_reloaded(admin: Admin) -> None:
    assert admin.http.post("/api/v1/reload").json() == {"reloaded": [], "failed": []}


# -- events ---------------------------------------------------------------------------------------


def test_event_stream(admin: Admin) -> None:
    url = "/api/v1/events"
    with admin.http.stream("GET", url, params={"names": "client_connected,subscribed"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith(":")  # the stream's opening comment: it is listening
        dev = PahoClient(admin.port, "ev-1", version=V5)
        dev.subscribe("ev/#", qos=1)
        events = []
        for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
        dev.disconnect()
    assert [e["event"] for e in events] == ["client_connected", "subscribed"]
    assert events[0]["client_id"] == "ev-1" and events[0]["protocol_version"] == 5
    assert events[1]["subscriptions"] == [{"topic_filter": "ev/#", "qos": 1}]


# -- the token file -------------------------------------------------------------------------------


def test_token_file_is_read_and_reloaded(tmp_path: Path) -> None:
    first, second = "f" * 24, "s" * 24
    path = tmp_path / "tokens"
    path.write_text(f"# scope token name\nadmin {first} ops\n", encoding="utf-8")
    a = Admin(config(token_file=str(path)))
    try:
        as_first = {"Authorization": f"Bearer {first}"}
        as_second = {"Authorization": f"Bearer {second}"}
        assert a.http.get("/api/v1/stats").status_code == 401
        assert a.http.get("/api/v1/stats", headers=as_first).status_code == 200
        path.write_text(f"read {second}\n", encoding="utf-8")
        reload = a.http.post("/api/v1/reload", headers=as_first).json()
        assert reload == {"reloaded": ["admin.token_file"], "failed": []}
        assert a.http.get("/api/v1/stats", headers=as_first).status_code == 401
        assert a.http.get("/api/v1/stats", headers=as_second).status_code == 200
        assert a.http.post("/api/v1/reload", headers=as_second).status_code == 403
        # A broken file keeps the tokens in force.
        path.write_text("root nope\n", encoding="utf-8")
        assert a.broker.reload() is False
        assert a.http.get("/api/v1/stats", headers=as_second).status_code == 200
    finally:
        a.close()


def test_a_bad_token_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("\nread short\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        BrokerThread(config(token_file=str(path)), admin=True)
    assert info.value.field == f"{path}:2"


def test_client_ids_with_slashes(admin: Admin) -> None:
    """MQTT client ids may hold '/': the API names them with it encoded (%2F), as URLs do."""
    dev = PahoClient(admin.port, "site/a", version=V5, clean=False, session_expiry=60)
    assert admin.http.get("/api/v1/clients/site%2Fa").json()["client_id"] == "site/a"
    assert admin.http.get("/api/v1/clients/site%2Fa/queue").json() == {"items": []}
    assert admin.http.delete("/api/v1/clients/site%2Fa/connection").status_code == 204
    assert dev.expect_disconnect()[0] == 0x98
    admin.thread.wait_offline("site/a")
    assert admin.http.delete("/api/v1/clients/site%2Fa").status_code == 204
    assert admin.http.get("/api/v1/clients/site%2Fa").status_code == 404
    # A raw '/' is a path separator: site/a is no client's id here.
    assert admin.http.get("/api/v1/clients/site/a").status_code == 404


@pytest.mark.parametrize("topic", ["$SYS/broker/uptime", "$SYS", "$share/g/t"])
def test_the_api_does_not_publish_into_the_brokers_tree(admin: Admin, topic: str) -> None:
    """As clients may not (MQTT 5.0 section 4.7.2): a forged retained $SYS value is refused."""
    answer = admin.http.post("/api/v1/publish", json={"topic": topic, "payload": "forged", "retain": True})
    assert answer.status_code == 422 and answer.json()["code"] == "INVALID_REQUEST"
    bulk = admin.http.post("/api/v1/publish/bulk", json={"messages": [{"topic": topic, "payload": "x"}]})
    assert bulk.json()["results"][0]["ok"] is False
    # The broker's own uptime (published at start, retained) is what a reader gets.
    uptime = admin.http.get("/api/v1/retained/$SYS/broker/uptime").json()
    assert uptime["payload"].endswith(" seconds")

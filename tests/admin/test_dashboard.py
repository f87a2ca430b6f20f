"""The dashboard in real headless Chromium (Debian's, driven by Playwright: no browser download)
against a running broker, with paho-mqtt clients on the other side: the page and its files, the
token, publishing through the form, the receipt, kicking a client, retained messages.

Screenshots are saved under ``test-artifacts/dashboard/`` (git-ignored); ``docs/dashboard.png`` is
one of them.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from zanzara.admin.dashboard import ASSETS
from zanzara.config import AdminConfig, AdminToken, Config, PushConfig, StorageConfig

from brokerthread import BrokerThread
from clients import V5, V311, PahoClient
from peers import require

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
ADMIN_TOKEN = "dashboard-" + "a" * 24
READ_TOKEN = "dashboard-" + "r" * 24
WAIT_MS = 10_000


def config(**admin: Any) -> Config:
    return Config(
        storage=StorageConfig(backend="memory"),
        push=PushConfig(track_deliveries=True),
        admin=AdminConfig(**admin),
    )


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=require("chromium"),
        # The tests may run as root, where Chromium's sandbox refuses to start.
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy violation is logged to the console as an error.
    p.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    p.on("dialog", lambda d: d.accept())  # confirm() before a kick or a delete
    yield p
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    """Open on loopback: no token needed."""
    with BrokerThread(config(), admin=True) as b:
        yield b


@pytest.fixture
def secured() -> Iterator[BrokerThread]:
    tokens = [AdminToken(token=READ_TOKEN, scope="read"), AdminToken(token=ADMIN_TOKEN, scope="admin")]
    with BrokerThread(config(tokens=tokens), admin=True) as b:
        yield b


def open_page(page: Page, b: BrokerThread, tab: str = "overview") -> None:
    page.goto(f"{b.admin_url}/#{tab}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


# -- the files ------------------------------------------------------------------------------------


def test_the_package_ships_the_page_and_uplot_with_its_licence() -> None:
    files = resources.files("zanzara.admin") / "dashboard"
    for name in ("index.html", *ASSETS):
        assert files.joinpath(name).read_bytes(), name
    assert "MIT License" in files.joinpath("uPlot.LICENSE").read_text()
    vendored = files.joinpath("VENDORED.md").read_text()
    assert "uPlot 1." in vendored and "scripts/update-uplot.sh" in vendored
    script = files.joinpath("app.js").read_text()
    # Data reaches the DOM as text only (client ids and topics are the clients' own).
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script)


def test_the_package_data_setting_takes_every_dashboard_file() -> None:
    """What a built wheel holds: pyproject's package-data globs must cover the folder."""
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "zanzara"
    ]
    folder = root / "src" / "zanzara" / "admin" / "dashboard"
    names = sorted(p.relative_to(folder.parents[1]).as_posix() for p in folder.iterdir())
    assert "admin/dashboard/index.html" in names
    for name in names:
        assert any(fnmatch.fnmatch(name, g) for g in globs), f"{name} would be left out of the wheel"


def test_the_page_needs_no_token_and_the_data_does(secured: BrokerThread) -> None:
    with httpx.Client(base_url=secured.admin_url, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert b"/dashboard/app.js" in page.content
        script = http.get("/dashboard/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert http.get("/dashboard/uPlot.iife.min.js").text.startswith(
            "/*! https://github.com/leeoniya/uPlot"
        )
        # Only the page's own files, by name: no path reaches the file system.
        for target in ("/dashboard/index.htm", "/dashboard/..%2F..%2Fapp.py", "/dashboard/VENDORED.md"):
            missing = http.get(target)
            assert missing.status_code == 404, target
            assert missing.json()["code"] == "NOT_FOUND"
        assert http.get("/api/v1/stats").status_code == 401
        # Not API routes: the OpenAPI document does not list them.
        paths = http.get("/openapi.json").json()["paths"]
        assert "/" not in paths and "/dashboard/{name}" not in paths


# -- in Chromium ----------------------------------------------------------------------------------


def test_the_token_is_asked_for_once_kept_and_forgotten(secured: BrokerThread, page: Page) -> None:
    device = PahoClient(secured.port, "device-1", version=V5)
    try:
        open_page(page, secured)
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()  # the stats poll got 401
        expect(page.locator("#token-reason")).to_contain_text("needs a token")
        page.fill("#token-input", "not-a-token-of-this-broker")
        page.click("#token-save")
        expect(dialog).to_be_visible()
        expect(page.locator("#token-reason")).to_contain_text("refused this token")
        page.fill("#token-input", ADMIN_TOKEN)
        page.click("#token-save")
        expect(dialog).to_be_hidden()
        expect(page.locator("#s-connections")).to_have_text("1")
        expect(page.locator("#auth-state")).to_have_text("token set")
        # uPlot drew the three charts.
        expect(page.locator(".chart canvas")).to_have_count(3)

        # Kept: a reload asks for nothing.
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator("#s-connections")).to_have_text("1")
        expect(dialog).to_be_hidden()
        screenshot(page, "overview-with-token")

        # Forgotten: asked again.
        page.click("#token-forget")
        expect(page.locator("#auth-state")).to_have_text("no token")
        page.reload()
        expect(dialog).to_be_visible()
    finally:
        device.disconnect()


def test_a_read_token_sees_but_cannot_kick(secured: BrokerThread, page: Page) -> None:
    device = PahoClient(secured.port, "watched", version=V5)
    try:
        page.goto(f"{secured.admin_url}/healthz")  # the origin, without the page asking for a token
        page.evaluate("t => localStorage.setItem('zanzara.adminToken', t)", READ_TOKEN)
        open_page(page, secured, "clients")
        page.locator("#client-table tr[data-client-id='watched']").click()
        expect(page.locator("#d-client-id")).to_have_text("watched")
        page.click("#d-kick")
        expect(page.locator("#error")).to_contain_text("FORBIDDEN")
        device.expect_none()  # still connected: no DISCONNECT came
    finally:
        device.disconnect()


def test_publish_through_the_form_and_see_the_receipt(broker: BrokerThread, page: Page) -> None:
    phone = PahoClient(broker.port, "phone", version=V5, clean=False, session_expiry=300)
    other = PahoClient(broker.port, "tablet", version=V5)
    try:
        assert phone.subscribe("alerts/#", qos=1) == [1]
        assert other.subscribe("alerts/#", qos=1) == [1]
        open_page(page, broker, "publish")
        form = page.locator("#publish-form")
        form.locator("[name=topic]").fill("alerts/door")
        form.locator("[name=payload]").fill("the door is open")
        form.locator("[name=qos]").select_option("1")
        form.locator("[name=priority]").fill("7")
        form.locator("[name=ttl]").fill("600")
        form.locator("[name=collapse_key]").fill("door")
        form.locator("[name=content_type]").fill("text/plain")
        form.locator("[name=client_ids]").fill("phone")
        form.locator("[name=user_properties]").fill("source=dashboard\nroom=hall")
        screenshot(page, "publish-form")
        page.click("#publish-submit")
        expect(page.locator("#publish-result")).to_be_visible()

        got = phone.expect()
        assert (got.topic, got.payload, got.qos) == ("alerts/door", b"the door is open", 1)
        assert got.properties.ContentType == "text/plain"
        assert ("source", "dashboard") in got.properties.UserProperty
        assert ("room", "hall") in got.properties.UserProperty
        assert 0 < got.properties.MessageExpiryInterval <= 600
        other.expect_none()  # client_ids: only the phone among the matching sessions

        fields = page.locator("#p-fields dd")
        expect(fields.nth(1)).to_have_text("1")  # matched
        message_id = fields.nth(0).inner_text()
        with httpx.Client(base_url=broker.admin_url, timeout=10) as http:
            eventually(
                lambda: (
                    http.get(f"/api/v1/messages/{message_id}").json().get("by_status") == {"acknowledged": 1}
                )
            )

        page.click("#p-receipts")
        expect(page.locator("#receipt-id")).to_have_value(message_id)
        receipt = page.locator("#receipt-table tr[data-client-id='phone']")
        expect(receipt).to_have_attribute("data-status", "acknowledged")
        cells = receipt.locator("td")
        expect(cells.nth(1)).to_have_text("acknowledged")
        for n in (2, 3, 4):  # queued, sent, acknowledged: each has its time
            expect(cells.nth(n)).not_to_have_text("")
        expect(page.locator("#receipt-summary")).to_have_text("1 recipient(s): acknowledged 1")
        screenshot(page, "receipt")
    finally:
        phone.disconnect()
        other.disconnect()


HOSTILE = "<img src=x onerror=\"document.title='pwned'\">&amp;"


def test_search_detail_and_kick(broker: BrokerThread, page: Page) -> None:
    kicked = PahoClient(broker.port, "kick-me", version=V5, clean=False, session_expiry=300)
    hostile = PahoClient(broker.port, HOSTILE, version=V311)
    bystander = PahoClient(broker.port, "kick-not", version=V5)
    try:
        assert kicked.subscribe("news/#", qos=1) == [1]
        open_page(page, broker, "clients")
        table = page.locator("#client-table tbody")
        # The client's id is shown as the text it is, never as markup.
        expect(table.locator("tr", has_text=HOSTILE)).to_have_count(1)
        assert table.locator("img").count() == 0
        assert page.title() == "zanzara dashboard"

        page.fill("#client-prefix", "kick-")
        page.click("#client-search button")
        expect(table.locator("tr")).to_have_count(2)
        expect(table.locator("tr").nth(0)).to_have_attribute("data-client-id", "kick-me")

        table.locator("tr[data-client-id='kick-me']").click()
        expect(page.locator("#client-detail")).to_be_visible()
        expect(page.locator("#d-client-id")).to_have_text("kick-me")
        expect(page.locator("#d-subscriptions tbody tr")).to_have_count(1)
        expect(page.locator("#d-subscriptions tbody td").first).to_have_text("news/#")
        screenshot(page, "client-detail")

        page.click("#d-kick")
        reason, _ = kicked.expect_disconnect()
        assert reason == 0x98  # MQTT 5 section 3.14.2.1: Administrative action
        expect(page.locator("#d-kick-result")).to_have_text("kick-me was disconnected")
        broker.wait_offline("kick-me")
        bystander.expect_none()
        assert broker.call(lambda: "kick-not" in broker.core.clients)
    finally:
        for c in (kicked, hostile, bystander):
            c.disconnect()


def test_clients_page_with_next_and_previous(broker: BrokerThread, page: Page) -> None:
    devices = [PahoClient(broker.port, f"dev-{n:02d}", version=V5) for n in range(25)]
    try:
        open_page(page, broker, "clients")
        rows = page.locator("#client-table tbody tr")
        expect(rows).to_have_count(20)
        expect(rows.nth(0)).to_have_attribute("data-client-id", "dev-00")
        page.click("#client-next")
        expect(rows).to_have_count(5)
        expect(rows.nth(0)).to_have_attribute("data-client-id", "dev-20")
        expect(page.locator("#client-next")).to_be_disabled()
        page.click("#client-prev")
        expect(rows).to_have_count(20)
        expect(rows.nth(19)).to_have_attribute("data-client-id", "dev-19")
    finally:
        for d in devices:
            d.disconnect()


def test_retained_messages_listed_and_deleted(broker: BrokerThread, page: Page) -> None:
    pub = PahoClient(broker.port, "sensor", version=V5)
    try:
        pub.publish("rooms/a b/temp", b"21.5", qos=1, retain=True)
        pub.publish("rooms/b/temp", json.dumps({"c": 19}).encode(), qos=1, retain=True)
        eventually(lambda: len(broker.call(lambda: broker.core.retained("rooms/#"))) == 2)
        open_page(page, broker, "retained")
        page.fill("#retained-filter", "rooms/#")  # the broker's own $SYS topics are retained too
        page.click("#retained-form button")
        rows = page.locator("#retained-table tbody tr")
        expect(rows).to_have_count(2)
        target = page.locator("#retained-table tr[data-topic='rooms/a b/temp']")
        expect(target.locator("td").nth(2)).to_have_text("21.5")
        screenshot(page, "retained")
        target.locator("button").click()
        expect(rows).to_have_count(1)
        with httpx.Client(base_url=broker.admin_url, timeout=10) as http:
            assert http.get("/api/v1/retained/rooms/a b/temp").status_code == 404
            assert http.get("/api/v1/retained/rooms/b/temp").status_code == 200
    finally:
        pub.disconnect()


def test_overview_counts_traffic(broker: BrokerThread, page: Page) -> None:
    """The cards follow the stats, and the charts get a point per poll (the docs' screenshot)."""
    sub = PahoClient(broker.port, "dashboard-sub", version=V5)
    pub = PahoClient(broker.port, "dashboard-pub", version=V5)
    try:
        sub.subscribe("load/#", qos=1)
        open_page(page, broker)
        for burst in (40, 120):
            for n in range(burst):
                pub.publish(f"load/{n % 4}", b"x" * 64, qos=1)
            sub.expect_n(burst)
            page.wait_for_timeout(2500)  # a poll between bursts: two points on the charts
        pub.publish("status/broker", b"up", qos=1, retain=True)
        expect(page.locator("#s-connections")).to_have_text("2")
        expect(page.locator("#s-retained")).to_have_text(re.compile(r"^[1-9][0-9]*$"))
        expect(page.locator("#s-subscriptions")).to_have_text("1")
        page.wait_for_function("() => document.querySelectorAll('.chart canvas').length === 3")
        # The rates are differences of the counters between polls: the bursts show in and out.
        page.wait_for_function("() => Math.max(...window.zanzaraSeries.received) > 0")
        page.wait_for_function("() => Math.max(...window.zanzaraSeries.sent) > 0")
        assert page.evaluate("Math.max(...window.zanzaraSeries.dropped)") == 0
        assert min(page.evaluate("window.zanzaraSeries.connections")) >= 2
        page.wait_for_timeout(4500)  # a few more points, for the picture
        screenshot(page, "overview")
    finally:
        sub.disconnect()
        pub.disconnect()

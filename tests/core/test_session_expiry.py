"""Session expiry (MQTT 5.0 sections 3.1.2.11.2, 3.14.2.2.2, 4.1; 3.1.1 sections 3.1.2.4, 4.1).

A v5 session outlives its connection by its Session Expiry Interval (0: not
at all, 0xFFFFFFFF: for good); DISCONNECT may change it, except from 0.  A
3.1.1 session with CleanSession 0 is kept until the client comes back with
CleanSession 1, unless ``persistent_client_expiration`` says otherwise.
The fake scheduler moves time; nothing sleeps.
"""

from __future__ import annotations

from zanzara.core import Client, Core
from zanzara.session import NEVER_EXPIRES

from .conftest import (
    RC,
    V311,
    CoreFactory,
    FakeScheduler,
    connect,
    disconnect,
    disconnect_code,
    drop,
    message,
    sent,
    settle,
    subscribe,
    will,
)


def resume(core: Core, **kw: object) -> Client:
    """Client "c" comes back asking for its session."""
    kw.setdefault("session_expiry_interval", 60)
    return connect(core, "c", clean_start=False, **kw)  # type: ignore[arg-type]


def present(client: Client) -> bool:
    assert client.link.connack is not None  # type: ignore[attr-defined]
    return client.link.connack.session_present  # type: ignore[attr-defined, no-any-return]


class TestSessionExpiry_3_1_2_11_2:
    def test_kept_until_the_interval_passes(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-3.1.2-23] the session is kept after the connection closes, for its interval."""
        client = resume(core)
        subscribe(core, client, "t", qos=1)
        drop(core, client)
        scheduler.advance(59.9)
        core.publish("t", b"x", qos=1)
        again = resume(core)
        assert present(again)
        assert sent(again.link) == [message("t", b"x", qos=1, packet_id=1)]

    def test_discarded_once_it_passes(self, core: Core, scheduler: FakeScheduler) -> None:
        """[MQTT-4.1.0-2] the session is discarded when the interval has passed: with what it held."""
        client = resume(core)
        subscribe(core, client, "t", qos=1)
        drop(core, client)
        core.publish("t", b"x", qos=1)
        scheduler.advance(60)
        assert "c" not in core.sessions
        assert core.stats.messages_dropped == 1
        core.publish("t", b"y", qos=1)  # no subscription left to queue it
        again = resume(core)
        assert not present(again)
        assert sent(again.link) == []

    def test_reconnecting_stops_the_clock(self, core: Core, scheduler: FakeScheduler) -> None:
        """The interval counts from the last disconnection: a reconnect cancels the pending expiry."""
        drop(core, resume(core))
        scheduler.advance(50)
        again = resume(core)
        scheduler.advance(5)
        drop(core, again)
        scheduler.advance(59)  # 114 s after the first disconnection, 59 s after the last
        assert core.sessions["c"] is again.session
        assert present(resume(core))

    def test_zero_ends_with_the_connection(self, core: Core) -> None:
        """3.1.2.11.2: 0 or absent, the session ends when the connection closes."""
        client = connect(core, "c", clean_start=False)
        subscribe(core, client, "t")
        drop(core, client)
        assert core.sessions == {}
        assert core.state.subscriptions.match("t").entries == ()

    def test_0xffffffff_never_expires(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.1.2.11.2: 0xFFFFFFFF (UINT_MAX) means the session does not expire."""
        drop(core, resume(core, session_expiry_interval=NEVER_EXPIRES))
        assert core.state.expiry_timers == {}
        scheduler.advance(10 * 365 * 86400)
        assert present(resume(core))


class TestDisconnectSessionExpiry_3_14_2_2_2:
    def test_disconnect_may_lower_it(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.14.2.2.2: the Session Expiry Interval of DISCONNECT replaces the CONNECT's."""
        disconnect(core, resume(core), session_expiry_interval=10)
        scheduler.advance(10)
        assert "c" not in core.sessions

    def test_disconnect_may_raise_it(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.14.2.2.2: raising it is allowed as long as the CONNECT's was not 0."""
        disconnect(core, resume(core), session_expiry_interval=600)
        scheduler.advance(599)
        assert present(resume(core))

    def test_disconnect_may_end_it(self, core: Core) -> None:
        """3.14.2.2.2: DISCONNECT with 0 ends the session with the connection."""
        disconnect(core, resume(core), session_expiry_interval=0)
        assert core.sessions == {}

    def test_not_from_zero(self, core: Core) -> None:
        """[MQTT-3.14.2-2] non-zero on DISCONNECT after 0 on CONNECT is a Protocol Error (0x82).

        The session still ends with the connection.
        """
        client = connect(core, "c", clean_start=False)
        disconnect(core, client, session_expiry_interval=30)
        assert disconnect_code(sent(client.link)) == RC.PROTOCOL_ERROR
        assert core.sessions == {}


class TestPersistentSession_v311:
    def test_clean_session_0_never_expires(self, core: Core, scheduler: FakeScheduler) -> None:
        """3.1.1 [MQTT-3.1.2-4]: CleanSession 0 sessions are kept; 3.1.1 has no expiry interval."""
        client = connect(core, "c", version=V311, clean_start=False)
        subscribe(core, client, "t", qos=1)
        drop(core, client)
        assert scheduler.pending == []
        scheduler.advance(10 * 365 * 86400)
        core.publish("t", b"x", qos=1)
        again = connect(core, "c", version=V311, clean_start=False)
        assert present(again)
        assert sent(again.link) == [message("t", b"x", qos=1, packet_id=1)]

    def test_persistent_client_expiration(self, make_core: CoreFactory, scheduler: FakeScheduler) -> None:
        """persistent_client_expiration (as Mosquitto's): 3.1.1 sessions go after that long away."""
        core = make_core(persistent_client_expiration=3600)
        drop(core, connect(core, "c", version=V311, clean_start=False))
        scheduler.advance(3599)
        assert "c" in core.sessions
        scheduler.advance(1)
        assert "c" not in core.sessions

    def test_clean_session_1_ends_with_the_connection(self, core: Core) -> None:
        """3.1.1 [MQTT-3.1.2-6] CleanSession 1: the session lasts as long as the connection."""
        drop(core, connect(core, "c", version=V311, clean_start=True))
        assert core.sessions == {}


class TestClose:
    def test_close_stops_every_timer(self, core: Core, scheduler: FakeScheduler) -> None:
        """Core.close(): no session expires and no will is published by a stopped broker."""
        drop(core, resume(core))
        dev = connect(
            core, "dev", clean_start=False, session_expiry_interval=60, will=will(will_delay_interval=5)
        )
        drop(core, dev)
        assert len(scheduler.pending) == 3
        settle(core.close())
        assert scheduler.pending == []

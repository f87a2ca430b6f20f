"""Mosquitto's ``password_file`` and ``acl_file`` as broker hooks, reloadable on SIGHUP.

:class:`FileAuth` is an ordinary hook object (``Authenticator`` and
``Authorizer``) placed first in the broker's chains, so Python hooks added
with ``broker.add_authenticator`` still see whatever it abstains on:

* authentication: a client that sends a username is checked against the
  password file (unknown user or wrong password: CONNACK 0x86 / 3.1.1 code 4);
  a client without a username is left to ``allow_anonymous``, as in Mosquitto;
* publish: refused (v5 PUBACK 0x87, 3.1.1 acknowledged and dropped) unless the
  ACL grants write;
* subscribe: refused (SUBACK 0x87, 3.1.1 0x80) unless an ACL read rule covers
  the filter;
* delivery: a message is only routed to a client the ACL lets read its topic
  (:meth:`FileAuth.may_receive`, used when the routing plan of a topic is built).

:meth:`FileAuth.reload` reads both files again; a file with an error leaves the
rules in force unchanged and the error is raised for the caller to log.
Connected clients stay connected (Mosquitto does the same).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from ..errors import ConfigError
from ..hooks import ClientInfo, ConnectRequest
from ..mqtt.enums import ReasonCode
from ..mqtt.packets import Subscription
from .acl import AclFile
from .passwd import PasswordFile

__all__ = ["FileAuth"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FileAuth:
    """The password file and the ACL file as one authenticator and authorizer (see the module
    docstring for what each decides); the broker makes it from the configuration."""

    def __init__(self, password_file: str | None = None, acl_file: str | None = None) -> None:
        self.password_file = password_file
        self.acl_file = acl_file
        self.passwords: PasswordFile | None = None
        self.acl: AclFile | None = None
        # Username of each client id, for the read check of messages routed to it (offline
        # sessions included: the username of its last connection, as Mosquitto keeps it).
        self._usernames: dict[str, str | None] = {}
        # Called when what a client may read changes (routing plans must be rebuilt).
        self.on_change: Callable[[], None] | None = None
        self.reload()

    def reload(self) -> None:
        """Read both files again; ConfigError (rules unchanged) if either is bad or missing."""
        passwords = _load(self.password_file, PasswordFile.load)
        acl = _load(self.acl_file, AclFile.load)
        self.passwords, self.acl = passwords, acl
        if self.on_change is not None:
            self.on_change()

    def remember(self, client: ClientInfo) -> None:
        """Note the username ``client`` connects with, for the read check of messages routed to it."""
        if self.acl is None:
            return
        previous = self._usernames.get(client.client_id, ...)
        self._usernames[client.client_id] = client.username
        if previous is not ... and previous != client.username and self.on_change is not None:
            self.on_change()

    async def authenticate(self, request: ConnectRequest) -> ReasonCode | None:
        client = request.client
        self.remember(client)
        if self.passwords is None or client.username is None:
            return None  # allow_anonymous (or the next hook) decides
        if request.password is not None and self.passwords.verify(client.username, request.password):
            return ReasonCode.SUCCESS
        logger.info("client %s: bad username or password (user %r)", client.client_id, client.username)
        return ReasonCode.BAD_USER_NAME_OR_PASSWORD

    async def authorize_publish(
        self, client: ClientInfo, topic: str, qos: int, retain: bool
    ) -> ReasonCode | None:
        if self.acl is None or self.acl.can_publish(client.client_id, client.username, topic):
            return None
        return ReasonCode.NOT_AUTHORIZED

    async def authorize_subscribe(self, client: ClientInfo, subscription: Subscription) -> ReasonCode | None:
        acl = self.acl
        if acl is None or acl.can_subscribe(client.client_id, client.username, subscription.topic_filter):
            return None
        return ReasonCode.NOT_AUTHORIZED

    def may_receive(self, client_id: str, topic: str) -> bool:
        acl = self.acl
        return acl is None or acl.can_receive(client_id, self._usernames.get(client_id), topic)


def _load(path: str | None, loader: Callable[[str], T]) -> T | None:
    if path is None:
        return None
    try:
        return loader(path)
    except OSError as exc:
        raise ConfigError(os.fspath(path), exc.strerror or str(exc)) from None

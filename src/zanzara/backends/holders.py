"""Who holds each stored message: the queues that reference it and the retained store.

A message is stored once however many queues hold it (Mosquitto's model): its row
is written when its first holder appears and deleted when its last one goes.  The
back-ends keep this count in memory (loaded with the store) so that neither a
lookup index nor a read is needed to know when a message can go.
"""

from __future__ import annotations

__all__ = ["RETAINED", "Holders"]

# The retained store's holder name: MQTT strings cannot contain U+0000 [MQTT-1.5.4-2],
# so no client id is equal to it.
RETAINED = "\x00retained"


class Holders:
    """Who holds each stored message, for one durable back-end.

    Filled by the back-end's load, then updated only by folding a batch (``folding.py``), once
    per batch so that a retried batch does not count twice; its answers say when a message's
    row must be written or deleted.
    """

    def __init__(self) -> None:
        # message id -> who holds it: a holder's name while it has one (most messages, and
        # cheaper than a set of one), a set of them once it has several.
        self._by_message: dict[str, str | set[str]] = {}
        self._by_client: dict[str, set[str]] = {}
        self.retained: dict[str, str] = {}  # topic -> message id

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._by_message

    def hold(self, message_id: str, client_id: str) -> bool:
        """``client_id``'s queue holds the message; True if it had no holder (write it)."""
        held = self._by_client.get(client_id)
        if held is None:
            self._by_client[client_id] = {message_id}
        else:
            held.add(message_id)
        return self._add(message_id, client_id)

    def release(self, message_id: str, client_id: str) -> bool:
        """The queue let the message go; True if that was its last holder (delete it)."""
        held = self._by_client.get(client_id)
        if held is not None:
            held.discard(message_id)
            if not held:
                del self._by_client[client_id]
        return self._remove(message_id, client_id)

    def release_client(self, client_id: str) -> tuple[list[str], list[str]]:
        """The client's whole queue went: (the messages it held, those nobody holds any more)."""
        held = list(self._by_client.pop(client_id, ()))
        return held, [mid for mid in held if self._remove(mid, client_id)]

    def retain(self, topic: str, message_id: str) -> tuple[bool, str | None]:
        """The message is retained on ``topic``: (write it?, the replaced message to delete)."""
        old = self.retained.get(topic)
        self.retained[topic] = message_id
        new = self._add(message_id, RETAINED)
        if old is not None and old != message_id and self._remove(old, RETAINED):
            return new, old
        return new, None

    def unretain(self, topic: str) -> str | None:
        """The topic's retained message was cleared; its id if nobody else holds it."""
        old = self.retained.pop(topic, None)
        if old is not None and self._remove(old, RETAINED):
            return old
        return None

    def _add(self, message_id: str, holder: str) -> bool:
        holders = self._by_message.get(message_id)
        if holders is None:
            self._by_message[message_id] = holder
            return True
        if type(holders) is str:
            if holders != holder:
                self._by_message[message_id] = {holders, holder}
        else:
            holders.add(holder)  # type: ignore[union-attr]  # not a str: a set
        return False

    def _remove(self, message_id: str, holder: str) -> bool:
        holders = self._by_message.get(message_id)
        if holders is None:
            return False
        if type(holders) is str:
            if holders != holder:
                return False
        else:
            holders.discard(holder)  # type: ignore[union-attr]  # not a str: a set
            if holders:
                return False
        del self._by_message[message_id]
        return True

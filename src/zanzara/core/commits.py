"""Acknowledgements that wait for the store: group commit, in the client's order.

A PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK is sent once everything
recorded before it is durable (the store's ``commit()`` future).  A client's
acknowledgements leave in the order they were made, whatever order their
commits finish in: one queue per client, released from the front.

On a failed commit the client gets the negative ack it was given (v5), or,
where there is none, its connection is closed so that it resends after
reconnecting: a client left waiting would hold a place in its window (and in
our receive window) for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from ..events import DisconnectReason
from ..mqtt.enums import ReasonCode
from ..mqtt.packets import Packet
from .client import Client
from .state import CoreState

__all__ = ["ack_after_commit", "after_commit"]

logger = logging.getLogger(__name__)


def ack_after_commit(state: CoreState, client: Client, ack: Packet, on_failure: Packet | None = None) -> None:
    """Send ``ack`` once everything recorded so far is durable; ``on_failure`` if that fails."""
    _after_commit(state, client, client.link.send, ack, on_failure)


def after_commit(
    state: CoreState, client: Client, then: Callable[[], None], on_failure: Callable[[], None] | None = None
) -> None:
    """Run ``then`` once everything recorded so far is durable; keeps the client's acks in order."""
    _after_commit(state, client, _call, then, on_failure)


def _after_commit(
    state: CoreState, client: Client, action: Callable[[Any], None], arg: Any, failed: Any
) -> None:
    store = state.store
    if store is None:
        action(arg)
        return
    fut = store.commit()
    pending = client.pending_acks
    if pending:
        pending.append((fut, action, arg, failed))  # released with those before it
        return
    if fut.done() and fut.exception() is None:
        action(arg)
        return
    # One callback per client and batch, not per ack: a batch commits many publishes
    # of one client, and they share the batch's future.
    pending.append((fut, action, arg, failed))
    fut.add_done_callback(partial(_release, client, pending))


def _call(then: Callable[[], None]) -> None:
    then()


def _release(client: Client, pending: deque[Any], _: asyncio.Future[None]) -> None:
    """Run the acks whose commits are done, in order, up to the first that is not."""
    while pending:
        fut, action, arg, failed = pending[0]
        if not fut.done():
            fut.add_done_callback(partial(_release, client, pending))
            return
        pending.popleft()
        if fut.exception() is None:
            action(arg)
        elif failed is not None:
            action(failed)
        else:
            _give_up(client)


def _give_up(client: Client) -> None:
    """A commit failed and the client cannot be told: close, so that it resends after reconnecting."""
    link = client.link
    if not link.is_open:
        return
    logger.warning("closing %s: an acknowledgement could not be made durable", client.info.client_id)
    client.disconnect_reason = DisconnectReason.STORE_FAILURE
    link.disconnect(ReasonCode.UNSPECIFIED_ERROR, "store unavailable")

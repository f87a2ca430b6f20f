"""A routing plan: where messages on one topic go (data only; built and used by ``routing.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..topic_tree import SharedGroup, SubscriptionEntry

__all__ = ["Plan", "Target"]


@dataclass(slots=True)
class Target:
    """Everything one client's matching subscriptions say about a topic."""

    client_id: str
    qos: int
    no_local: bool
    retain_as_published: bool
    subscription_ids: tuple[int, ...]
    # Set when the client has several matching subscriptions with different options.
    entries: tuple[SubscriptionEntry, ...] = ()


@dataclass(slots=True)
class Plan:
    """Where messages on one topic go: client targets and shared groups."""

    targets: list[Target]
    groups: tuple[SharedGroup, ...]

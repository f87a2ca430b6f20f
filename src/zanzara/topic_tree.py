"""Subscription and retained-message tries (Mosquitto's ``subs.c`` and ``retain.c``, qlobber).

Both are tries of dicts keyed by topic level.  :class:`SubscriptionTree`
answers "who is subscribed to this topic name" on every PUBLISH, so its
results are cached per topic name and invalidated on any change.
:class:`RetainedTree` answers "which retained messages match this filter" on
SUBSCRIBE.  Pure: no I/O, no asyncio, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .mqtt.topics import parse_shared

__all__ = ["Matches", "RetainedTree", "SharedGroup", "SubscriptionEntry", "SubscriptionTree"]

V = TypeVar("V")
_CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionEntry:
    """One client's subscription to one topic filter (as subscribed, with any $share prefix)."""

    client_id: str
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    subscription_id: int | None = None
    share_group: str | None = None


class SharedGroup:
    """Members of ``$share/{name}/{topic_filter}``; each message goes to one of them [MQTT-4.8.2]."""

    __slots__ = ("_next", "members", "name", "topic_filter")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members: dict[str, SubscriptionEntry] = {}
        self._next = 0

    def pick(self, is_preferred: Callable[[str], bool]) -> SubscriptionEntry | None:
        """Round robin, skipping members that are not preferred (offline) while one is."""
        members = list(self.members.values())
        n = len(members)
        if not n:
            return None
        start = self._next % n
        for k in range(n):
            entry = members[(start + k) % n]
            if is_preferred(entry.client_id):
                self._next = start + k + 1
                return entry
        self._next = start + 1
        return members[start]


@dataclass(frozen=True, slots=True)
class Matches:
    entries: tuple[SubscriptionEntry, ...]
    groups: tuple[SharedGroup, ...]


_NO_MATCHES = Matches((), ())


class _Node:
    __slots__ = ("children", "entries", "groups")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entries: dict[str, SubscriptionEntry] = {}  # client id -> its non-shared subscription here
        self.groups: dict[str, SharedGroup] = {}  # share name -> group

    def empty(self) -> bool:
        return not (self.children or self.entries or self.groups)


class SubscriptionTree:
    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[str, Matches] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, entry: SubscriptionEntry) -> bool:
        """Add or replace; True if the client had no subscription to this filter [MQTT-3.8.4-3]."""
        group, plain = parse_shared(entry.topic_filter)
        node = self._root
        for level in plain.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if group is None:
            members = node.entries
        else:
            shared = node.groups.get(group)
            if shared is None:
                shared = node.groups[group] = SharedGroup(group, plain)
            members = shared.members
        is_new = entry.client_id not in members
        members[entry.client_id] = entry
        self._count += is_new
        self._cache.clear()
        return is_new

    def remove(self, client_id: str, topic_filter: str) -> bool:
        group, plain = parse_shared(topic_filter)
        path = [self._root]
        node = self._root
        levels = plain.split("/")
        for level in levels:
            child = node.children.get(level)
            if child is None:
                return False
            path.append(child)
            node = child
        if group is None:
            if node.entries.pop(client_id, None) is None:
                return False
        else:
            shared = node.groups.get(group)
            if shared is None or shared.members.pop(client_id, None) is None:
                return False
            if not shared.members:
                del node.groups[group]
        self._count -= 1
        self._cache.clear()
        for i in range(len(levels), 0, -1):  # prune empty branches
            if not path[i].empty():
                break
            del path[i - 1].children[levels[i - 1]]
        return True

    def match(self, topic_name: str) -> Matches:
        cached = self._cache.get(topic_name)
        if cached is not None:
            return cached
        entries: list[SubscriptionEntry] = []
        groups: list[SharedGroup] = []
        levels = topic_name.split("/")
        # [MQTT-4.7.2-1] leading wildcards do not match topics starting with '$'.
        self._collect(self._root, levels, 0, entries, groups, topic_name.startswith("$"))
        result = Matches(tuple(entries), tuple(groups)) if entries or groups else _NO_MATCHES
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic_name] = result
        return result

    def _collect(
        self,
        node: _Node,
        levels: list[str],
        i: int,
        entries: list[SubscriptionEntry],
        groups: list[SharedGroup],
        dollar: bool,
    ) -> None:
        children = node.children
        if i == len(levels):
            entries.extend(node.entries.values())
            groups.extend(node.groups.values())
            hash_child = children.get("#")
            if hash_child is not None:  # "a/#" matches "a" (4.7.1.2)
                entries.extend(hash_child.entries.values())
                groups.extend(hash_child.groups.values())
            return
        wild = not (dollar and i == 0)
        if wild:
            hash_child = children.get("#")
            if hash_child is not None:
                entries.extend(hash_child.entries.values())
                groups.extend(hash_child.groups.values())
            plus = children.get("+")
            if plus is not None:
                self._collect(plus, levels, i + 1, entries, groups, dollar)
        child = children.get(levels[i])
        if child is not None:
            self._collect(child, levels, i + 1, entries, groups, dollar)


class _RNode(Generic[V]):
    __slots__ = ("children", "has_value", "value")

    def __init__(self) -> None:
        self.children: dict[str, _RNode[V]] = {}
        self.value: V | None = None
        self.has_value = False


class RetainedTree(Generic[V]):
    """Retained messages by topic name; ``match`` walks only the branches a filter can reach."""

    def __init__(self) -> None:
        self._root: _RNode[V] = _RNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, topic_name: str, value: V) -> None:
        node = self._root
        for level in topic_name.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _RNode()
            node = child
        self._count += not node.has_value
        node.value = value
        node.has_value = True

    def get(self, topic_name: str) -> V | None:
        node = self._root
        for level in topic_name.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.value if node.has_value else None

    def delete(self, topic_name: str) -> bool:
        levels = topic_name.split("/")
        path = [self._root]
        for level in levels:
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        node = path[-1]
        if not node.has_value:
            return False
        node.value = None
        node.has_value = False
        self._count -= 1
        for i in range(len(levels), 0, -1):
            n = path[i]
            if n.has_value or n.children:
                break
            del path[i - 1].children[levels[i - 1]]
        return True

    def match(self, topic_filter: str) -> Iterator[tuple[str, V]]:
        yield from self._match(self._root, topic_filter.split("/"), 0, [])

    def _match(self, node: _RNode[V], levels: list[str], i: int, path: list[str]) -> Iterator[tuple[str, V]]:
        if i == len(levels):
            if node.has_value:
                yield "/".join(path), node.value  # type: ignore[misc]
            return
        level = levels[i]
        if level == "#":
            if node.has_value and i > 0:  # "a/#" matches "a" itself
                yield "/".join(path), node.value  # type: ignore[misc]
            for name, child in node.children.items():
                if i == 0 and name.startswith("$"):
                    continue  # [MQTT-4.7.2-1]
                yield from self._all(child, [*path, name])
            return
        if level == "+":
            for name, child in node.children.items():
                if i == 0 and name.startswith("$"):
                    continue  # [MQTT-4.7.2-1]
                yield from self._match(child, levels, i + 1, [*path, name])
            return
        exact = node.children.get(level)
        if exact is not None:
            yield from self._match(exact, levels, i + 1, [*path, level])

    def _all(self, node: _RNode[V], path: list[str]) -> Iterator[tuple[str, V]]:
        if node.has_value:
            yield "/".join(path), node.value  # type: ignore[misc]
        for name, child in node.children.items():
            yield from self._all(child, [*path, name])

    def items(self) -> Iterator[tuple[str, V]]:
        for name, child in self._root.children.items():
            yield from self._all(child, [name])

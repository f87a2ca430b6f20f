"""Subscription and retained-message tries (Mosquitto's ``subs.c`` and ``retain.c``, qlobber).

Charter: the two indexes the broker consults by topic.  :class:`SubscriptionTree`
answers "which subscriptions match this topic name" on every PUBLISH (the hot
path), :class:`RetainedTree` answers "which retained messages match this topic
filter" on SUBSCRIBE.  Both are tries of dicts keyed by topic level, with the
wildcard children ``+`` and ``#`` kept apart from the literal ones, so a lookup
costs one dict probe per level and per live branch, never a scan of every
subscription.  Matching follows MQTT 5.0 section 4.7 (same in 3.1.1);
``zanzara.mqtt.topics.matches`` is the reference the tries are tested against.

Callers validate topic names and filters first (``zanzara.mqtt.topics``);
the trees assume valid input.  Pure: must not import asyncio, sockets, the clock
or any zanzara module outside ``zanzara.mqtt`` and ``zanzara.errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from .mqtt.topics import parse_shared

__all__ = [
    "DEFAULT_CACHE_MAX_TOPIC_LENGTH",
    "DEFAULT_CACHE_SIZE",
    "NO_MATCHES",
    "Matches",
    "RetainedTree",
    "SharedGroup",
    "SubscriptionEntry",
    "SubscriptionTree",
]

V = TypeVar("V")

#: Topic names whose matches :class:`SubscriptionTree` remembers; a full cache is
#: cleared rather than managed as an LRU, which keeps a hit to one dict lookup.
DEFAULT_CACHE_SIZE: Final = 50_000
#: Longer topic names are matched without caching: the cache must not become a way to pin
#: 50,000 topic names of 64 KiB each (3 GiB) in memory.
DEFAULT_CACHE_MAX_TOPIC_LENGTH: Final = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionEntry:
    """One client's subscription to one topic filter.

    ``topic_filter`` is the filter as subscribed, ``$share/`` prefix included;
    ``share_group`` is the ShareName the caller derived with ``parse_shared``
    (the tree derives it again from ``topic_filter``, the source of truth).
    """

    client_id: str
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    subscription_id: int | None = None
    share_group: str | None = None


class SharedGroup:
    """The members of one ``$share/{name}/{topic_filter}`` group (MQTT 5.0 section 4.8.2).

    Each matching message goes to one member only.  The tree keeps one object
    per group for as long as the group has members, so the round-robin position
    survives from one PUBLISH to the next.
    """

    __slots__ = ("_by_client", "_members", "_next", "name", "topic_filter")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter  # without the "$share/{name}/" prefix
        self._by_client: dict[str, SubscriptionEntry] = {}
        self._members: tuple[SubscriptionEntry, ...] | None = ()  # None: rebuild from _by_client
        self._next = 0

    @property
    def members(self) -> tuple[SubscriptionEntry, ...]:
        """The members in the order they joined."""
        members = self._members
        if members is None:
            # Rebuilt lazily, so adding k members one by one costs O(k), not O(k**2).
            members = self._members = tuple(self._by_client.values())
        return members

    def __len__(self) -> int:
        return len(self._by_client)

    def __repr__(self) -> str:
        return f"SharedGroup({self.name!r}, {self.topic_filter!r}, members={len(self)})"

    def pick(self, is_preferred: Callable[[str], bool]) -> SubscriptionEntry | None:
        """The next member in round robin, skipping non-preferred ones while a preferred one exists.

        ``is_preferred`` is typically "is this client connected".  When no member
        is preferred the next member in turn is returned anyway (its session
        queues the message); ``None`` only for an empty group.
        """
        members = self.members
        n = len(members)
        if not n:
            return None
        start = self._next % n  # members may have left since the last pick
        i = start
        for _ in range(n):
            entry = members[i]
            i += 1
            if i == n:
                i = 0
            if is_preferred(entry.client_id):
                self._next = i
                return entry
        self._next = start + 1
        return members[start]

    def _put(self, entry: SubscriptionEntry) -> bool:
        is_new = entry.client_id not in self._by_client
        self._by_client[entry.client_id] = entry
        self._members = None
        return is_new

    def _discard(self, client_id: str) -> bool:
        if self._by_client.pop(client_id, None) is None:
            return False
        self._members = None
        return True


@dataclass(frozen=True, slots=True)
class Matches:
    """What one topic name matches: plain subscriptions and shared groups.

    A client with several overlapping subscriptions appears once per matching
    subscription in ``entries``; combining them is the router's job [MQTT-3.3.4-2].
    """

    entries: tuple[SubscriptionEntry, ...]
    groups: tuple[SharedGroup, ...]


NO_MATCHES: Final = Matches((), ())


class _Node:
    """One topic level.  Dicts are created on first use: most nodes are leaves with one entry."""

    __slots__ = ("children", "entries", "groups", "hash", "plus")

    def __init__(self) -> None:
        self.children: dict[str, _Node] | None = None  # literal next levels
        self.plus: _Node | None = None  # the '+' next level
        self.hash: _Node | None = None  # the '#' next level (always a leaf)
        self.entries: dict[str, SubscriptionEntry] | None = None  # client id -> plain subscription
        self.groups: dict[str, SharedGroup] | None = None  # share name -> group

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.hash or self.entries or self.groups)


def _child(node: _Node, level: str) -> _Node | None:
    if level == "+":
        return node.plus
    if level == "#":
        return node.hash
    children = node.children
    return None if children is None else children.get(level)


def _make_child(node: _Node, level: str) -> _Node:
    child = _child(node, level)
    if child is not None:
        return child
    child = _Node()
    if level == "+":
        node.plus = child
    elif level == "#":
        node.hash = child
    elif node.children is None:
        node.children = {level: child}
    else:
        node.children[level] = child
    return child


def _drop_child(node: _Node, level: str) -> None:
    if level == "+":
        node.plus = None
    elif level == "#":
        node.hash = None
    elif node.children is not None:
        del node.children[level]
        if not node.children:
            node.children = None


class SubscriptionTree:
    """Subscriptions by topic filter; :meth:`match` is the per-PUBLISH lookup.

    Results are cached per topic name and the same :class:`Matches` object is
    returned while nothing relevant changes, so callers may key their own
    derived data on its identity.  A change to a filter without wildcards only
    forgets that one topic name; a change to a wildcard filter clears the cache.
    """

    __slots__ = ("_cache", "_cache_max_topic_length", "_cache_size", "_count", "_root")

    def __init__(
        self,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_max_topic_length: int = DEFAULT_CACHE_MAX_TOPIC_LENGTH,
    ) -> None:
        self._root = _Node()
        self._cache: dict[str, Matches] = {}
        self._cache_size = cache_size
        self._cache_max_topic_length = cache_max_topic_length
        self._count = 0

    def __len__(self) -> int:
        """The number of subscriptions (shared ones counted per member)."""
        return self._count

    def add(self, entry: SubscriptionEntry) -> bool:
        """Add ``entry``; False if it replaced the client's subscription to the same filter.

        [MQTT-3.8.4-3] a SUBSCRIBE for a filter the client already has replaces
        that subscription (the options may change) instead of adding a second one.
        """
        share_name, plain = parse_shared(entry.topic_filter)
        node = self._root
        for level in plain.split("/"):
            node = _make_child(node, level)
        if share_name is None:
            entries = node.entries
            if entries is None:
                entries = node.entries = {}
            is_new = entry.client_id not in entries
            entries[entry.client_id] = entry
        else:
            groups = node.groups
            if groups is None:
                groups = node.groups = {}
            group = groups.get(share_name)
            if group is None:
                group = groups[share_name] = SharedGroup(share_name, plain)
            is_new = group._put(entry)
        self._count += is_new
        self._invalidate(plain)
        return is_new

    def remove(self, client_id: str, topic_filter: str) -> bool:
        """Remove the client's subscription to ``topic_filter`` (as subscribed); True if it existed."""
        share_name, plain = parse_shared(topic_filter)
        levels = plain.split("/")
        path = [self._root]
        for level in levels:
            child = _child(path[-1], level)
            if child is None:
                return False
            path.append(child)
        node = path[-1]
        if share_name is None:
            entries = node.entries
            if entries is None or entries.pop(client_id, None) is None:
                return False
            if not entries:
                node.entries = None
        else:
            groups = node.groups
            group = None if groups is None else groups.get(share_name)
            if groups is None or group is None or not group._discard(client_id):
                return False
            if not len(group):
                # The group ends with its last member; a later subscriber starts a new one.
                del groups[share_name]
                if not groups:
                    node.groups = None
        self._count -= 1
        self._invalidate(plain)
        for i in range(len(levels), 0, -1):  # prune the branch that became empty
            if not path[i].is_empty():
                break
            _drop_child(path[i - 1], levels[i - 1])
        return True

    def _invalidate(self, plain_filter: str) -> None:
        if "+" in plain_filter or "#" in plain_filter:
            self._cache.clear()
        else:
            # Without wildcards a filter matches exactly one topic name: itself.
            self._cache.pop(plain_filter, None)

    def match(self, topic_name: str) -> Matches:
        """Every subscription and shared group whose filter matches ``topic_name``."""
        cached = self._cache.get(topic_name)
        if cached is not None:
            return cached
        result = self._lookup(topic_name)
        if len(topic_name) <= self._cache_max_topic_length:
            cache = self._cache
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[topic_name] = result
        return result

    def _lookup(self, topic_name: str) -> Matches:  # noqa: C901 - the trie walk with $-topics, + and # inlined: the matching hot path
        entries: list[SubscriptionEntry] = []
        groups: list[SharedGroup] = []
        nodes = [self._root]
        # [MQTT-4.7.2-1] filters starting with a wildcard do not match topic names starting with '$'.
        wild = not topic_name.startswith("$")
        for level in topic_name.split("/"):
            following: list[_Node] = []
            for node in nodes:
                if wild:
                    hash_node = node.hash
                    if hash_node is not None:  # '#' matches this level and everything below
                        if hash_node.entries:
                            entries.extend(hash_node.entries.values())
                        if hash_node.groups:
                            groups.extend(hash_node.groups.values())
                    if node.plus is not None:
                        following.append(node.plus)
                children = node.children
                if children is not None:
                    child = children.get(level)
                    if child is not None:
                        following.append(child)
            if not following:
                break
            nodes = following
            wild = True
        else:
            for node in nodes:
                if node.entries:
                    entries.extend(node.entries.values())
                if node.groups:
                    groups.extend(node.groups.values())
                hash_node = node.hash
                if hash_node is not None:  # 4.7.1.2: "sport/#" also matches "sport"
                    if hash_node.entries:
                        entries.extend(hash_node.entries.values())
                    if hash_node.groups:
                        groups.extend(hash_node.groups.values())
        if not entries and not groups:
            return NO_MATCHES
        return Matches(tuple(entries), tuple(groups))


class _RetainedNode(Generic[V]):
    __slots__ = ("children", "item")

    def __init__(self) -> None:
        self.children: dict[str, _RetainedNode[V]] | None = None
        self.item: tuple[str, V] | None = None  # (topic name, value) when a value is stored here


class RetainedTree(Generic[V]):
    """Retained values (messages) by topic name; :meth:`match` walks only what a filter can reach.

    Wildcards stored here are ordinary characters: topic names never contain
    them [MQTT-3.3.2-2], so ``+`` and ``#`` only have a meaning in the filters
    given to :meth:`match`.
    """

    __slots__ = ("_count", "_root")

    def __init__(self) -> None:
        self._root: _RetainedNode[V] = _RetainedNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, topic_name: str, value: V) -> None:
        """Store ``value`` for ``topic_name``, replacing any previous one [MQTT-3.3.1-5]."""
        node = self._root
        for level in topic_name.split("/"):
            children = node.children
            if children is None:
                children = node.children = {}
            child = children.get(level)
            if child is None:
                child = children[level] = _RetainedNode()
            node = child
        self._count += node.item is None
        node.item = (topic_name, value)

    def _find(self, topic_name: str) -> _RetainedNode[V] | None:
        node = self._root
        for level in topic_name.split("/"):
            children = node.children
            if children is None:
                return None
            child = children.get(level)
            if child is None:
                return None
            node = child
        return node

    def get(self, topic_name: str) -> V | None:
        node = self._find(topic_name)
        item = None if node is None else node.item
        return None if item is None else item[1]

    def delete(self, topic_name: str) -> bool:
        """Forget the value for ``topic_name``; True if there was one."""
        levels = topic_name.split("/")
        path = [self._root]
        for level in levels:
            children = path[-1].children
            child = None if children is None else children.get(level)
            if child is None:
                return False
            path.append(child)
        node = path[-1]
        if node.item is None:
            return False
        node.item = None
        self._count -= 1
        for i in range(len(levels), 0, -1):  # prune the branch that became empty
            node = path[i]
            if node.item is not None or node.children:
                break
            parent = path[i - 1]
            assert parent.children is not None
            del parent.children[levels[i - 1]]
            if not parent.children:
                parent.children = None
        return True

    def match(self, topic_filter: str) -> Iterator[tuple[str, V]]:
        """``(topic name, value)`` for every stored topic the valid ``topic_filter`` matches.

        A snapshot: the tree may be changed while the result is being consumed
        (e.g. to delete expired messages).  A filter without wildcards is a
        single lookup.
        """
        if "+" not in topic_filter and "#" not in topic_filter:
            node = self._find(topic_filter)
            item = None if node is None else node.item
            return iter(() if item is None else (item,))
        found: list[tuple[str, V]] = []
        nodes = [self._root]
        at_root = True
        for level in topic_filter.split("/"):
            if level == "#":
                for node in nodes:
                    if node.item is not None:  # 4.7.1.2: "sport/#" also matches "sport"
                        found.append(node.item)
                    self._collect_below(node, found, skip_dollar=at_root)
                return iter(found)
            following: list[_RetainedNode[V]] = []
            for node in nodes:
                children = node.children
                if children is None:
                    continue
                if level != "+":
                    child = children.get(level)
                    if child is not None:
                        following.append(child)
                elif at_root:
                    # [MQTT-4.7.2-1] a leading wildcard does not match topic names starting with '$'.
                    following.extend(c for name, c in children.items() if not name.startswith("$"))
                else:
                    following.extend(children.values())
            if not following:
                return iter(found)
            nodes = following
            at_root = False
        found.extend(node.item for node in nodes if node.item is not None)
        return iter(found)

    @staticmethod
    def _collect_below(node: _RetainedNode[V], found: list[tuple[str, V]], *, skip_dollar: bool) -> None:
        children = node.children
        if children is None:
            return
        if skip_dollar:
            # [MQTT-4.7.2-1] a leading '#' does not match topic names starting with '$'.
            stack = [c for name, c in children.items() if not name.startswith("$")]
        else:
            stack = list(children.values())
        while stack:
            node = stack.pop()
            if node.item is not None:
                found.append(node.item)
            if node.children is not None:
                stack.extend(node.children.values())

    def items(self) -> Iterator[tuple[str, V]]:
        """Every ``(topic name, value)``; a snapshot, like :meth:`match`."""
        found: list[tuple[str, V]] = []
        self._collect_below(self._root, found, skip_dollar=False)
        return iter(found)

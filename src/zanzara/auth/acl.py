"""Mosquitto ``acl_file``: parse it, answer publish/subscribe/receive questions.

Syntax (Mosquitto 2.0)::

    # comment                         blank lines are ignored too
    topic [read|write|readwrite|deny] <filter>    default access: readwrite
    user <username>                   the topic lines after it belong to <username>
    pattern [read|write|readwrite|deny] <filter>  for every client; %c and %u substituted

``topic`` lines before the first ``user`` line apply to anonymous clients
(those that sent no username) and only to them; a client with a username gets
the ``topic`` lines of its ``user`` block(s) and nothing else.  ``pattern``
lines apply to every client wherever they appear in the file.  A filter is
everything after the access word, so it may contain spaces; it must be a valid
MQTT topic filter.  Any other line is a :class:`ConfigError` naming the line
(Mosquitto refuses to start on one too).

Decisions.  The rules that apply to a client are its ``topic`` rules plus the
``pattern`` rules.  A request is allowed when some applicable rule grants the
access it needs and no applicable ``deny`` rule matches; with no rule matching
it is refused.  ``deny`` removes both read and write.

* ``can_publish(topic)`` needs ``write`` on a rule whose filter matches the topic.
* ``can_receive(topic)`` needs ``read`` on a rule whose filter matches the
  topic.  Call it for every message delivered, as Mosquitto checks read access
  per message: it is the check that actually keeps data from a client.
* ``can_subscribe(filter)`` needs ``read`` on a rule whose filter *covers* the
  subscription (every topic the subscription can match, the rule matches too),
  and no ``deny`` rule covering it.  Coverage is Mosquitto's
  ``mosquitto_sub_matches_acl`` (2.1): ``#`` in the rule covers the rest
  including a ``#`` in the subscription (and the parent level: ``a/#`` covers
  ``a``); ``+`` covers one level including a ``+`` but not a ``#``; a literal
  level covers only the same literal.  So ``read a/+`` allows subscribing to
  ``a/b`` and ``a/+`` but not ``a/#`` or ``#``.  A ``$share/{name}/`` prefix is
  removed first: what a client may read does not depend on sharing.  A deny
  rule that merely overlaps an allowed subscription (``deny a/secret`` under
  ``read a/#``) does not refuse it; ``can_receive`` withholds those messages.

``$`` topics: a filter matches a ``$`` topic (or covers a ``$`` subscription)
only if it starts with ``$`` itself, so ``topic read #`` grants nothing under
``$SYS``; ``topic read $SYS/#`` does.  (MQTT 4.7.2 and Mosquitto agree.)

Pattern substitution.  ``%c`` becomes the client id and ``%u`` the username
anywhere in the filter, as Mosquitto 2.0 substitutes them; a pattern with
``%u`` does not apply to a client without a username.  A client id or username
that is empty or contains ``+``, ``#`` or ``/`` is never substituted into a
granting pattern: such a value would become a wildcard or extra levels and
reach other clients' topics (client id ``+`` under ``pattern readwrite
devices/%c/#``).  Deny patterns still apply with the value substituted
literally, so an odd value can only widen a denial, never escape one.

Where this deliberately differs from Mosquitto 2.0:

* Deny wins across the whole file.  Mosquitto consults a client's ``topic``
  rules (denials first) before ``pattern`` rules, so there a ``topic`` grant
  beats a ``pattern ... deny``; here any matching deny refuses.
* Mosquitto 2.0 allows every subscription and relies on the per-message read
  check; ``can_subscribe`` above refuses subscriptions no rule covers.
* Mosquitto 2.0 treats only ``+`` and ``#`` in ids as dangerous; ``/`` is
  dangerous here too (Mosquitto 1.x also refused it).
* Indented comments and tabs between words are accepted; Mosquitto rejects
  the first and splits words on spaces only.

Pure: no asyncio, no sockets; files are read only by :meth:`AclFile.load`.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from ..errors import ConfigError, ProtocolError
from ..mqtt.topics import matches, parse_shared, validate_topic_filter

__all__ = ["Access", "AclFile", "AclRule", "filter_covers"]


class Access(enum.Flag):
    """What a rule grants; NONE is a ``deny`` rule."""

    NONE = 0
    READ = enum.auto()
    WRITE = enum.auto()
    READWRITE = READ | WRITE


_ACCESS_WORDS: Final[Mapping[str, Access]] = {
    "read": Access.READ,
    "write": Access.WRITE,
    "readwrite": Access.READWRITE,
    "deny": Access.NONE,
}
_PLACEHOLDER: Final = re.compile(r"%[cu]")
# A substituted value with one of these would turn into wildcards or extra levels.
_UNSAFE_CHARS: Final = frozenset("+#/")


@dataclass(frozen=True, slots=True)
class AclRule:
    """One ``topic`` or ``pattern`` line: a topic filter and the access it grants."""

    topic_filter: str
    access: Access = Access.READWRITE
    # 1-based line in the file, for messages; 0 when built in code.
    line: int = 0
    uses_client_id: bool = field(init=False)
    uses_username: bool = field(init=False)

    def __post_init__(self) -> None:
        placeholders = set(_PLACEHOLDER.findall(self.topic_filter))
        object.__setattr__(self, "uses_client_id", "%c" in placeholders)
        object.__setattr__(self, "uses_username", "%u" in placeholders)

    @property
    def deny(self) -> bool:
        return self.access == Access.NONE


def filter_covers(acl_filter: str, topic_filter: str) -> bool:
    """Does ``acl_filter`` match every topic that ``topic_filter`` can match?

    Mosquitto's ``mosquitto_sub_matches_acl``, level by level.  Both filters are
    taken as valid; with ``topic_filter`` a plain topic name this is ``matches``.
    """
    if acl_filter.startswith("$") != topic_filter.startswith("$"):
        return False
    acl_levels = acl_filter.split("/")
    sub_levels = topic_filter.split("/")
    for i, level in enumerate(acl_levels):
        if level == "#":
            # Covers whatever is left, even nothing: "a/#" covers "a".
            return True
        if i >= len(sub_levels):
            return False
        if level == "+":
            if sub_levels[i] == "#":
                # "#" spans many levels, "+" only one.
                return False
        elif level != sub_levels[i]:
            return False
    return len(acl_levels) == len(sub_levels)


def _is_safe(value: str) -> bool:
    return bool(value) and _UNSAFE_CHARS.isdisjoint(value)


def _expand(rule: AclRule, client_id: str, username: str | None) -> str | None:
    """The rule's filter with %c/%u substituted, or None when it does not apply to this client."""
    if rule.uses_username and username is None:
        return None
    if not rule.deny and (
        (rule.uses_client_id and not _is_safe(client_id))
        or (rule.uses_username and username is not None and not _is_safe(username))
    ):
        return None
    values = {"%c": client_id, "%u": username or ""}
    # One left-to-right pass, so a value that itself contains "%u" is not substituted again.
    return _PLACEHOLDER.sub(lambda m: values[m.group()], rule.topic_filter)


class AclFile:
    """The rules of one ACL file."""

    def __init__(
        self,
        anonymous: Iterable[AclRule] = (),
        users: Mapping[str, Iterable[AclRule]] | None = None,
        patterns: Iterable[AclRule] = (),
    ) -> None:
        self.anonymous: tuple[AclRule, ...] = tuple(anonymous)
        self.users: dict[str, tuple[AclRule, ...]] = {name: tuple(r) for name, r in (users or {}).items()}
        self.patterns: tuple[AclRule, ...] = tuple(patterns)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AclFile:
        """Read ``path``; ConfigError names the file and line of the first bad line.

        OSError (missing file, no permission) propagates unchanged.
        """
        with open(path, "rb") as f:
            raw = f.read()
        source = os.fspath(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(source, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        return cls.parse(text, source)

    @classmethod
    def parse(cls, text: str, source: str = "<acl file>") -> AclFile:
        """Parse the contents of an ACL file; ``source`` names it in errors."""
        anonymous: list[AclRule] = []
        users: dict[str, list[AclRule]] = {}
        patterns: list[AclRule] = []
        current = anonymous
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            where = f"{source}:{number}"
            words = stripped.split(None, 1)
            keyword, rest = words[0], (words[1] if len(words) > 1 else "")
            if keyword == "user":
                if not rest:
                    raise ConfigError(where, "'user' needs a username")
                # Repeated blocks for one user merge, as in Mosquitto.
                current = users.setdefault(rest.strip(), [])
            elif keyword in ("topic", "pattern"):
                rule = _parse_rule(keyword, rest, number, where)
                (patterns if keyword == "pattern" else current).append(rule)
            else:
                raise ConfigError(where, f"unknown keyword {keyword!r} (expected topic, pattern or user)")
        return cls(anonymous, users, patterns)

    def can_publish(self, client_id: str, username: str | None, topic: str) -> bool:
        """May this client publish to ``topic`` (a topic name)?"""
        return self._decide(client_id, username, Access.WRITE, topic, matches)

    def can_receive(self, client_id: str, username: str | None, topic: str) -> bool:
        """May a message on ``topic`` be delivered to this client?"""
        return self._decide(client_id, username, Access.READ, topic, matches)

    def can_subscribe(self, client_id: str, username: str | None, topic_filter: str) -> bool:
        """May this client subscribe to ``topic_filter``?  See the module docstring."""
        try:
            _, plain = parse_shared(topic_filter)
        except ProtocolError:
            return False
        return self._decide(client_id, username, Access.READ, plain, filter_covers)

    def _filters(self, client_id: str, username: str | None) -> Iterator[tuple[str, AclRule]]:
        """(concrete filter, rule) for every rule that applies to this client."""
        topic_rules = self.anonymous if username is None else self.users.get(username, ())
        for rule in topic_rules:
            yield rule.topic_filter, rule
        for rule in self.patterns:
            expanded = _expand(rule, client_id, username)
            if expanded is not None:
                yield expanded, rule

    def _decide(
        self,
        client_id: str,
        username: str | None,
        needed: Access,
        target: str,
        applies: Callable[[str, str], bool],
    ) -> bool:
        granted = False
        for topic_filter, rule in self._filters(client_id, username):
            if not applies(topic_filter, target):
                continue
            if rule.deny:
                return False
            if needed & rule.access:
                granted = True
        return granted


def _parse_rule(keyword: str, rest: str, number: int, where: str) -> AclRule:
    words = rest.split(None, 1)
    if not words:
        raise ConfigError(where, f"{keyword!r} needs a topic filter")
    if len(words) == 1:
        # A lone word is the filter, with Mosquitto's default access.
        access, topic_filter = Access.READWRITE, words[0]
    else:
        word, topic_filter = words[0], words[1].strip()
        if word not in _ACCESS_WORDS:
            raise ConfigError(where, f"unknown access {word!r} (expected read, write, readwrite or deny)")
        access = _ACCESS_WORDS[word]
    try:
        validate_topic_filter(topic_filter)
    except ProtocolError as exc:
        raise ConfigError(where, f"invalid topic filter {topic_filter!r}: {exc}") from None
    return AclRule(topic_filter, access, number)

"""zanzara.topic_tree: the subscription and retained tries against the reference matcher.

The properties compare every trie answer with a brute-force scan using
``zanzara.mqtt.topics.matches`` over the same data.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zanzara.mqtt.topics import matches, parse_shared, validate_topic_filter, validate_topic_name
from zanzara.topic_tree import (
    NO_MATCHES,
    RetainedTree,
    SharedGroup,
    SubscriptionEntry,
    SubscriptionTree,
)


def entry(client_id: str, topic_filter: str, qos: int = 0, **kw: object) -> SubscriptionEntry:
    group, _ = parse_shared(topic_filter)
    return SubscriptionEntry(
        client_id=client_id,
        topic_filter=topic_filter,
        qos=qos,
        share_group=group,
        **kw,  # type: ignore[arg-type]
    )


def clients(tree: SubscriptionTree, topic_name: str) -> list[str]:
    return sorted(e.client_id for e in tree.match(topic_name).entries)


# -- strategies: a small alphabet so that filters and topics collide often -----------------

_NAME_LEVEL = st.sampled_from(["a", "b", "", "$SYS", "$x"])
_FILTER_LEVEL = st.sampled_from(["a", "b", "", "$SYS", "+"])
_CLIENT = st.sampled_from(["c1", "c2", "c3"])

topic_names = st.lists(_NAME_LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def plain_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_FILTER_LEVEL, min_size=0, max_size=4))
    if not levels or draw(st.booleans()):
        levels.append("#")  # [MQTT-4.7.1-1] only ever as the last level
    topic_filter = "/".join(levels)
    return topic_filter or "#"


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    plain = draw(plain_filters())
    share = draw(st.sampled_from([None, None, "g1", "g2"]))
    topic_filter = plain if share is None else f"$share/{share}/{plain}"
    validate_topic_filter(topic_filter)
    return topic_filter


# -- SubscriptionTree: add / remove --------------------------------------------------


def test_add_replaces_same_client_and_filter_mqtt_3_8_4_3() -> None:
    tree = SubscriptionTree()
    assert tree.add(entry("c1", "a/+", qos=0)) is True
    assert tree.add(entry("c1", "a/+", qos=2)) is False  # replaced, not duplicated
    assert tree.add(entry("c2", "a/+", qos=1)) is True
    assert tree.add(entry("c1", "a/#", qos=1)) is True  # another filter: a second subscription
    assert len(tree) == 3
    found = sorted(tree.match("a/b").entries, key=lambda e: (e.client_id, e.topic_filter))
    assert [(e.client_id, e.topic_filter, e.qos) for e in found] == [
        ("c1", "a/#", 1),
        ("c1", "a/+", 2),
        ("c2", "a/+", 1),
    ]


def test_remove() -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", "a/+"))
    tree.add(entry("c1", "$share/g/a/+"))
    assert tree.remove("c2", "a/+") is False
    assert tree.remove("c1", "a/b") is False
    assert tree.remove("c1", "$share/h/a/+") is False
    assert tree.remove("c1", "a/+") is True
    assert tree.remove("c1", "a/+") is False
    assert len(tree) == 1
    assert tree.remove("c1", "$share/g/a/+") is True
    assert len(tree) == 0
    assert tree.match("a/b") is NO_MATCHES


def test_remove_prunes_empty_nodes() -> None:
    tree = SubscriptionTree()
    filters = ["a/b/c", "a/+/#", "a/b", "#", "+", "$share/g/a/b/c", "/", "a//+"]
    for f in filters:
        tree.add(entry("c1", f))
        tree.add(entry("c2", f))
    for f in filters:
        tree.remove("c1", f)
        tree.remove("c2", f)
    assert tree._root.is_empty()
    assert len(tree) == 0


# -- SubscriptionTree: matching (4.7) ------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic_name", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),  # 4.7.1.2
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("+/+", "/finance", True),  # 4.7.1.3
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/x", False),  # [MQTT-4.7.2-1]
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/x", True),
        ("$SYS/#", "$SYS", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("$share/g/#", "$SYS/x", False),
        ("$share/g/sport/#", "sport", True),
    ],
)
def test_match_spec_examples(topic_filter: str, topic_name: str, expected: bool) -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", topic_filter))
    found = tree.match(topic_name)
    assert bool(found.entries or found.groups) is expected


def test_match_wildcard_topic_characters_are_literal_for_the_tree() -> None:
    # Names are validated before matching, but the trie must not confuse a '+' level with the wildcard.
    tree = SubscriptionTree()
    tree.add(entry("c1", "a/+"))
    tree.add(entry("c2", "a/x"))
    assert clients(tree, "a/x") == ["c1", "c2"]


def test_shared_and_plain_results_are_separate() -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", "a/+"))
    tree.add(entry("c2", "$share/g/a/+"))
    tree.add(entry("c3", "$share/g/a/+"))
    tree.add(entry("c3", "$share/h/a/#"))
    found = tree.match("a/b")
    assert [e.client_id for e in found.entries] == ["c1"]
    assert sorted((g.name, g.topic_filter) for g in found.groups) == [("g", "a/+"), ("h", "a/#")]
    (group,) = (g for g in found.groups if g.name == "g")
    assert [m.client_id for m in group.members] == ["c2", "c3"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), _CLIENT, topic_filters(), st.integers(0, 2)),
            st.tuples(st.just("remove"), _CLIENT, topic_filters(), st.just(0)),
            st.tuples(st.just("match"), st.just(""), topic_names, st.just(0)),
        ),
        max_size=60,
    ),
    st.lists(topic_names, min_size=1, max_size=8),
)
def test_match_equals_brute_force(ops: list[tuple[str, str, str, int]], probes: list[str]) -> None:
    tree = SubscriptionTree(cache_size=4)  # small, so the clear-when-full path runs too
    model: dict[tuple[str, str], SubscriptionEntry] = {}
    seen_groups: dict[tuple[str, str], SharedGroup] = {}

    def check(topic_name: str) -> None:
        validate_topic_name(topic_name)
        found = tree.match(topic_name)
        want_entries: Counter[SubscriptionEntry] = Counter()
        want_groups: dict[tuple[str, str], set[SubscriptionEntry]] = {}
        for e in model.values():
            group, plain = parse_shared(e.topic_filter)
            if not matches(plain, topic_name):
                continue
            if group is None:
                want_entries[e] += 1
            else:
                want_groups.setdefault((group, plain), set()).add(e)
        assert Counter(found.entries) == want_entries
        got_groups = {(g.name, g.topic_filter): g for g in found.groups}
        assert len(got_groups) == len(found.groups)
        assert {k: set(g.members) for k, g in got_groups.items()} == want_groups
        for key, group_obj in got_groups.items():
            # A group is one stable object while it has members.
            assert seen_groups.setdefault(key, group_obj) is group_obj
        assert tree.match(topic_name) is found  # a cache hit returns the same object

    for op, client_id, text, qos in ops:
        if op == "add":
            e = entry(client_id, text, qos=qos)
            assert tree.add(e) is ((client_id, text) not in model)
            model[(client_id, text)] = e
        elif op == "remove":
            assert tree.remove(client_id, text) is ((client_id, text) in model)
            model.pop((client_id, text), None)
            group, plain = parse_shared(text)
            if group is not None and not any(parse_shared(f) == (group, plain) for (_, f) in model):
                seen_groups.pop((group, plain), None)
        else:
            check(text)
        assert len(tree) == len(model)
    for topic_name in probes:
        check(topic_name)
    for client_id, text in list(model):
        assert tree.remove(client_id, text)
    assert tree._root.is_empty()


# -- SubscriptionTree: the cache --------------------------------------------------------


def test_cache_hit_returns_the_same_object() -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", "a/+"))
    first = tree.match("a/b")
    assert tree.match("a/b") is first
    assert tree.match("nothing") is NO_MATCHES


@pytest.mark.parametrize("topic_filter", ["a/b", "a/+", "+/b", "#", "a/#", "$share/g/a/b", "$share/g/+/b"])
def test_add_after_a_cached_match_shows_up(topic_filter: str) -> None:
    tree = SubscriptionTree()
    tree.add(entry("c0", "x/y"))
    assert tree.match("a/b") is NO_MATCHES
    tree.match("x/y")
    tree.add(entry("c1", topic_filter))
    found = tree.match("a/b")
    assert len(found.entries) + sum(len(g) for g in found.groups) == 1
    assert "c0" in [e.client_id for e in tree.match("x/y").entries]


@pytest.mark.parametrize("topic_filter", ["a/b", "a/+", "#"])
def test_remove_and_replace_after_a_cached_match_show_up(topic_filter: str) -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", topic_filter, qos=0))
    assert [e.qos for e in tree.match("a/b").entries] == [0]
    tree.add(entry("c1", topic_filter, qos=2))
    assert [e.qos for e in tree.match("a/b").entries] == [2]
    tree.remove("c1", topic_filter)
    assert tree.match("a/b") is NO_MATCHES


def test_exact_filter_change_keeps_other_cached_results() -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", "dev/1"))
    tree.add(entry("c2", "dev/+"))
    kept = tree.match("dev/1")
    tree.add(entry("c3", "dev/2"))  # no wildcard: only "dev/2" is forgotten
    assert tree.match("dev/1") is kept
    assert clients(tree, "dev/2") == ["c2", "c3"]
    tree.add(entry("c4", "dev/#"))  # wildcard: everything is forgotten
    assert clients(tree, "dev/1") == ["c1", "c2", "c4"]


def test_cache_is_bounded() -> None:
    tree = SubscriptionTree(cache_size=10)
    tree.add(entry("c1", "#"))
    for i in range(100):
        assert clients(tree, f"t/{i}") == ["c1"]
        assert len(tree._cache) <= 10


def test_long_topic_names_are_not_cached() -> None:
    tree = SubscriptionTree(cache_max_topic_length=8)
    tree.add(entry("c1", "#"))
    assert clients(tree, "a" * 9) == ["c1"]
    assert clients(tree, "a" * 8) == ["c1"]
    assert list(tree._cache) == ["a" * 8]


def test_cached_group_keeps_its_round_robin_state() -> None:
    tree = SubscriptionTree()
    for cid in ("c1", "c2", "c3"):
        tree.add(entry(cid, "$share/g/a/+"))
    picks = []
    for _ in range(6):
        (group,) = tree.match("a/b").groups
        picked = group.pick(lambda _cid: True)
        assert picked is not None
        picks.append(picked.client_id)
    assert picks == ["c1", "c2", "c3", "c1", "c2", "c3"]
    # Another member joining keeps the group object (and so its position).
    (before,) = tree.match("a/b").groups
    tree.add(entry("c4", "$share/g/a/+"))
    (after,) = tree.match("a/b").groups
    assert after is before


# -- SharedGroup.pick (4.8.2) --------------------------------------------------------------


def make_group(*client_ids: str) -> SharedGroup:
    group = SharedGroup("g", "a/+")
    for cid in client_ids:
        group._put(entry(cid, "$share/g/a/+"))
    return group


def picks(group: SharedGroup, n: int, online: set[str]) -> list[str | None]:
    out = []
    for _ in range(n):
        e = group.pick(online.__contains__)
        out.append(None if e is None else e.client_id)
    return out


def test_pick_round_robin_is_fair() -> None:
    group = make_group("a", "b", "c")
    got = picks(group, 300, {"a", "b", "c"})
    assert Counter(got) == {"a": 100, "b": 100, "c": 100}
    assert got[:6] == ["a", "b", "c", "a", "b", "c"]


def test_pick_prefers_preferred_members() -> None:
    group = make_group("a", "b", "c", "d", "e")
    got = picks(group, 90, {"b", "e"})
    assert got[:4] == ["b", "e", "b", "e"]
    assert Counter(got) == {"b": 45, "e": 45}


def test_pick_without_preferred_members_is_round_robin() -> None:
    group = make_group("a", "b", "c")
    assert picks(group, 6, set()) == ["a", "b", "c", "a", "b", "c"]


def test_pick_empty_group() -> None:
    assert SharedGroup("g", "a").pick(lambda _cid: True) is None


def test_pick_survives_members_leaving_and_joining() -> None:
    group = make_group("a", "b", "c")
    assert picks(group, 2, {"a", "b", "c"}) == ["a", "b"]
    group._discard("c")
    assert picks(group, 2, {"a", "b"}) == ["a", "b"]
    group._put(entry("d", "$share/g/a/+"))
    assert Counter(picks(group, 30, {"a", "b", "d"})) == {"a": 10, "b": 10, "d": 10}
    for cid in ("a", "b", "d"):
        group._discard(cid)
    assert group.pick(lambda _cid: True) is None


def test_emptied_group_is_replaced_by_a_new_one() -> None:
    tree = SubscriptionTree()
    tree.add(entry("c1", "$share/g/a"))
    (old,) = tree.match("a").groups
    tree.remove("c1", "$share/g/a")
    assert tree.match("a") is NO_MATCHES
    tree.add(entry("c2", "$share/g/a"))
    (new,) = tree.match("a").groups
    assert new is not old
    assert [m.client_id for m in new.members] == ["c2"]


# -- RetainedTree -----------------------------------------------------------------------


def test_retained_set_get_delete() -> None:
    tree: RetainedTree[int] = RetainedTree()
    tree.set("a/b", 1)
    tree.set("a/b", 2)  # [MQTT-3.3.1-5] replaces
    tree.set("a", 3)
    assert len(tree) == 2
    assert tree.get("a/b") == 2
    assert tree.get("a") == 3
    assert tree.get("a/b/c") is None
    assert tree.get("x") is None
    assert tree.delete("a/b") is True
    assert tree.delete("a/b") is False
    assert tree.delete("a/b/c") is False
    assert tree.get("a/b") is None
    assert sorted(tree.items()) == [("a", 3)]
    assert tree.delete("a") is True
    assert len(tree) == 0
    assert tree._root.children is None  # pruned


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("#", ["/", "/finance", "sport", "sport/tennis", "sport/tennis/player1"]),
        ("sport/#", ["sport", "sport/tennis", "sport/tennis/player1"]),  # 4.7.1.2
        ("sport/+", ["sport/tennis"]),
        ("+", ["sport"]),  # 4.7.1.3: not "/finance"
        ("+/+", ["/", "/finance", "sport/tennis"]),
        ("/+", ["/", "/finance"]),
        ("$SYS/#", ["$SYS", "$SYS/broker/uptime"]),  # [MQTT-4.7.2-1]
        ("+/broker/+", []),
        ("$SYS/+/uptime", ["$SYS/broker/uptime"]),
        ("sport/tennis", ["sport/tennis"]),
        ("sport/golf", []),
    ],
)
def test_retained_match_spec_examples(topic_filter: str, expected: list[str]) -> None:
    tree: RetainedTree[str] = RetainedTree()
    for name in [
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "/finance",
        "/",
        "$SYS",
        "$SYS/broker/uptime",
    ]:
        tree.set(name, name.upper())
    assert sorted(tree.match(topic_filter)) == [(name, name.upper()) for name in expected]


def test_retained_match_is_a_snapshot() -> None:
    tree: RetainedTree[int] = RetainedTree()
    for i in range(10):
        tree.set(f"a/{i}", i)
    for topic, _ in tree.match("a/+"):
        tree.delete(topic)  # deleting while iterating is allowed
    assert len(tree) == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), topic_names), max_size=40),
    st.lists(plain_filters(), min_size=1, max_size=10),
)
def test_retained_match_equals_brute_force(ops: list[tuple[bool, str]], filters: list[str]) -> None:
    tree: RetainedTree[int] = RetainedTree()
    model: dict[str, int] = {}
    for i, (is_set, name) in enumerate(ops):
        if is_set:
            tree.set(name, i)
            model[name] = i
        else:
            assert tree.delete(name) is (name in model)
            model.pop(name, None)
        assert len(tree) == len(model)
    assert sorted(tree.items()) == sorted(model.items())
    for name, value in model.items():
        assert tree.get(name) == value
    for topic_filter in [*filters, *model]:  # wildcard filters and exact ones
        want = sorted((t, v) for t, v in model.items() if matches(topic_filter, t))
        assert sorted(tree.match(topic_filter)) == want
    for name in list(model):
        assert tree.delete(name)
    assert tree._root.children is None

"""zanzara.mqtt.topics: topic names, topic filters, $share syntax and the reference matcher.

Grouped by MQTT 5.0 section; each rule cites its conformance statement.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zanzara.errors import ProtocolError, ProtocolViolation
from zanzara.mqtt.enums import ReasonCode
from zanzara.mqtt.topics import (
    DEFAULT_MAX_TOPIC_LEVELS,
    matches,
    parse_shared,
    validate_topic_filter,
    validate_topic_filter_syntax,
    validate_topic_name,
)


def assert_name_invalid(name: str, **kw: int) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_topic_name(name, **kw)
    assert info.value.reason_code == ReasonCode.TOPIC_NAME_INVALID


def assert_filter_malformed(topic_filter: str) -> None:
    """A malformed filter is a Protocol Error (section 4.13): 0x82, whatever the limits."""
    with pytest.raises(ProtocolViolation) as info:
        validate_topic_filter(topic_filter, max_levels=10_000)
    assert info.value.reason_code == ReasonCode.PROTOCOL_ERROR
    with pytest.raises(ProtocolViolation):
        validate_topic_filter_syntax(topic_filter)


def assert_filter_not_allowed(topic_filter: str, **kw: int) -> None:
    """Well formed but beyond our limits: "correctly formed but not allowed", 0x8F (Table 3-8)."""
    validate_topic_filter_syntax(topic_filter)
    with pytest.raises(ProtocolError) as info:
        validate_topic_filter(topic_filter, **kw)
    assert not isinstance(info.value, ProtocolViolation)
    assert info.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID


# -- 3.3.2 / 4.7.3 topic names ----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "sport/tennis/player1", "/", "/finance", "a//b", "$SYS/broker", "é/日本", " ", "$share/g/a"]
)
def test_valid_topic_names(name: str) -> None:
    validate_topic_name(name)


def test_topic_name_empty_mqtt_4_7_3_1() -> None:
    assert_name_invalid("")


@pytest.mark.parametrize("name", ["+", "#", "a/+", "a/#", "sport/tennis#", "a+b", "+/x"])
def test_topic_name_wildcard_mqtt_3_3_2_2(name: str) -> None:
    assert_name_invalid(name)


def test_topic_name_null_character_mqtt_4_7_3_2() -> None:
    assert_name_invalid("a\x00b")


def test_topic_name_too_long_mqtt_4_7_3_3() -> None:
    validate_topic_name("a" * 65535)
    assert_name_invalid("a" * 65536)
    # Measured in UTF-8 bytes, not characters: 2 bytes per "é".
    validate_topic_name("é" * 32767)
    assert_name_invalid("é" * 32768)
    assert_name_invalid("日本", max_length=5)
    validate_topic_name("日本", max_length=6)


def test_topic_name_level_limit() -> None:
    validate_topic_name("/".join(["a"] * DEFAULT_MAX_TOPIC_LEVELS))
    assert_name_invalid("/".join(["a"] * (DEFAULT_MAX_TOPIC_LEVELS + 1)))
    validate_topic_name("a/b/c", max_levels=3)
    assert_name_invalid("a/b/c/", max_levels=3)  # the empty last level counts


# -- 4.7.1 topic filters ------------------------------------------------------------


@pytest.mark.parametrize(
    "topic_filter",
    [
        "sport/tennis/player1/#",  # 4.7.1.2
        "sport/#",
        "#",
        "sport/tennis/#",
        "+",  # 4.7.1.3
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "/",
        "a//b",
        "$SYS/#",
        "$SYS/monitor/+",
        "$share",  # no '/' after it: an ordinary filter
        "$share/g/#",
        "$share/g/+/x",
    ],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


def test_topic_filter_empty_mqtt_4_7_3_1() -> None:
    assert_filter_malformed("")


@pytest.mark.parametrize(
    "topic_filter", ["sport/tennis#", "sport/tennis/#/ranking", "#/a", "a/#/", "##", "a/b#"]
)
def test_multi_level_wildcard_alone_and_last_mqtt_4_7_1_1(topic_filter: str) -> None:
    assert_filter_malformed(topic_filter)


@pytest.mark.parametrize("topic_filter", ["sport+", "sport/+player1", "+a", "a/++", "a/+b/c"])
def test_single_level_wildcard_whole_level_mqtt_4_7_1_2(topic_filter: str) -> None:
    assert_filter_malformed(topic_filter)


def test_topic_filter_null_character_mqtt_4_7_3_2() -> None:
    assert_filter_malformed("a/\x00")


def test_topic_filter_too_long_mqtt_4_7_3_3() -> None:
    validate_topic_filter("a" * 65535)
    assert_filter_malformed("a" * 65536)
    validate_topic_filter("é/#", max_length=4)
    assert_filter_not_allowed("é/#", max_length=3)


def test_topic_filter_level_limit() -> None:
    validate_topic_filter("/".join(["+"] * DEFAULT_MAX_TOPIC_LEVELS))
    assert_filter_not_allowed("/".join(["+"] * (DEFAULT_MAX_TOPIC_LEVELS + 1)))
    validate_topic_filter("a/+/#", max_levels=3)
    assert_filter_not_allowed("a/+/b/#", max_levels=3)
    # The $share/{ShareName}/ prefix is not part of the levels.
    validate_topic_filter("$share/g/a/+/#", max_levels=3)


def test_malformed_wins_over_our_limits() -> None:
    """A filter that is malformed and beyond the limits is a Protocol Error, not 0x8F (section 4.13)."""
    with pytest.raises(ProtocolViolation):
        validate_topic_filter("a/b/#/c", max_levels=2)
    with pytest.raises(ProtocolViolation):
        validate_topic_filter("a+/" + "b" * 20, max_length=10)


def test_shared_filter_inner_filter_is_validated() -> None:
    assert_filter_malformed("$share/g/sport/tennis#")
    assert_filter_malformed("$share/g/a+")


# -- 4.8.2 shared subscriptions ------------------------------------------------------


def test_parse_shared_plain_filters() -> None:
    assert parse_shared("a/b") == (None, "a/b")
    assert parse_shared("$share") == (None, "$share")
    assert parse_shared("$SHARE/g/a") == (None, "$SHARE/g/a")  # case sensitive
    assert parse_shared("$sharegroup/a") == (None, "$sharegroup/a")


def test_parse_shared_splits_group_and_filter() -> None:
    assert parse_shared("$share/consumer1/sport/tennis/+") == ("consumer1", "sport/tennis/+")
    assert parse_shared("$share/g/#") == ("g", "#")
    assert parse_shared("$share/g//") == ("g", "/")
    assert parse_shared("$share/g/$SYS/x") == ("g", "$SYS/x")


@pytest.mark.parametrize("topic_filter", ["$share//a", "$share/"])
def test_share_name_at_least_one_character_mqtt_4_8_2_1(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_shared(topic_filter)
    assert_filter_malformed(topic_filter)


@pytest.mark.parametrize("topic_filter", ["$share/+/a", "$share/g#/a", "$share/#", "$share/a+b/x"])
def test_share_name_without_wildcards_mqtt_4_8_2_2(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_shared(topic_filter)
    assert_filter_malformed(topic_filter)


@pytest.mark.parametrize("topic_filter", ["$share/g", "$share/g/"])
def test_share_name_followed_by_a_filter_mqtt_4_8_2_2(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_shared(topic_filter)
    assert_filter_malformed(topic_filter)


# -- 4.7.1 / 4.7.2 matching ------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic_name", "expected"),
    [
        # 4.7.1.2 multi-level wildcard
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/tennis/player1/#", "sport/tennis/player2", False),
        ("sport/#", "sport", True),
        ("sport/#", "sport/", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        # 4.7.1.3 single-level wildcard
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player2", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/tennis/#", "sport/tennis/player1", True),
        ("sport/+/player1", "sport/tennis/player1", True),
        # levels are compared exactly [MQTT-4.7.3-4]
        ("Sport", "sport", False),
        ("sport ", "sport", False),
        ("a//b", "a//b", True),
        ("a/+/b", "a//b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_matches_spec_examples_4_7_1(topic_filter: str, topic_name: str, expected: bool) -> None:
    assert matches(topic_filter, topic_name) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic_name", "expected"),
    [
        ("#", "$SYS/x", False),
        ("#", "$SYS", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("+", "$x", False),
        ("$SYS/#", "$SYS/x", True),
        ("$SYS/#", "$SYS", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("$SYS/+", "$SYS/x", True),
        ("a/+", "a/$x", True),  # only the first level is special
        ("a/#", "a/$x/y", True),
    ],
)
def test_dollar_topics_not_matched_by_leading_wildcard_mqtt_4_7_2_1(
    topic_filter: str, topic_name: str, expected: bool
) -> None:
    assert matches(topic_filter, topic_name) is expected


_LEVEL = st.sampled_from(["a", "b", "", "$x"])


@given(st.lists(_LEVEL, min_size=1, max_size=5).filter(lambda levels: levels != [""]))
def test_a_topic_name_matches_itself_as_a_filter(levels: list[str]) -> None:
    name = "/".join(levels)
    validate_topic_name(name)
    validate_topic_filter(name)
    assert matches(name, name)
    if not name.startswith("$"):
        assert matches("#", name)
        assert matches("/".join(["+"] * len(levels)), name)

"""zanzara.auth.acl: Mosquitto acl_file syntax and the access decisions documented in the module."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zanzara.auth.acl import Access, AclFile, AclRule, filter_covers
from zanzara.errors import ConfigError
from zanzara.mqtt.topics import matches

ANON = None


def acl(text: str) -> AclFile:
    return AclFile.parse(text, "acl")


# --- anonymous rules and user blocks -------------------------------------------------------------

SAMPLE = """\
# Anonymous clients: everything before the first user line.
topic read public/#
topic write inbox

user alice
topic readwrite alice/#
topic read shared/+/status

user bob
topic bob/#
"""


def test_rules_before_first_user_line_are_for_anonymous_clients_only():
    rules = acl(SAMPLE)
    assert rules.can_receive("c", ANON, "public/news")
    assert rules.can_publish("c", ANON, "inbox")
    assert not rules.can_publish("c", ANON, "public/news")
    assert not rules.can_receive("c", ANON, "inbox")
    # A client with a username never gets the anonymous rules.
    assert not rules.can_receive("c", "alice", "public/news")
    assert not rules.can_publish("c", "alice", "inbox")
    assert not rules.can_receive("c", "stranger", "public/news")


def test_user_blocks():
    rules = acl(SAMPLE)
    assert rules.can_publish("c", "alice", "alice/x/y")
    assert rules.can_receive("c", "alice", "alice")  # "#" covers the parent level
    assert rules.can_receive("c", "alice", "shared/kitchen/status")
    assert not rules.can_publish("c", "alice", "shared/kitchen/status")
    assert not rules.can_receive("c", "alice", "shared/kitchen/status/extra")
    assert not rules.can_publish("c", "alice", "bob/x")
    # Default access is readwrite.
    assert rules.can_publish("c", "bob", "bob/x")
    assert rules.can_receive("c", "bob", "bob/x")
    assert not rules.can_receive("c", "bob", "alice/x")
    # Anonymous clients do not get user rules.
    assert not rules.can_receive("c", ANON, "alice/x")


def test_unknown_user_and_empty_file_get_nothing():
    rules = acl(SAMPLE)
    assert not rules.can_publish("c", "mallory", "mallory/x")
    empty = acl("")
    assert not empty.can_publish("c", ANON, "a")
    assert not empty.can_receive("c", "alice", "a")
    assert not empty.can_subscribe("c", "alice", "#")


def test_repeated_user_blocks_merge():
    rules = acl("user alice\ntopic read a\nuser bob\ntopic read b\nuser alice\ntopic read c\n")
    assert rules.can_receive("c", "alice", "a")
    assert rules.can_receive("c", "alice", "c")
    assert not rules.can_receive("c", "alice", "b")


def test_username_with_spaces_and_filter_with_spaces():
    rules = acl("user  John Smith  \ntopic read  room 101/temp\n")
    assert rules.can_receive("c", "John Smith", "room 101/temp")
    assert not rules.can_receive("c", "John", "room 101/temp")


# --- read versus write ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "can_read", "can_write"),
    [("read", True, False), ("write", False, True), ("readwrite", True, True), ("deny", False, False)],
)
def test_access_words(access, can_read, can_write):
    rules = acl(f"topic {access} a/b\n")
    assert rules.can_receive("c", ANON, "a/b") is can_read
    assert rules.can_subscribe("c", ANON, "a/b") is can_read
    assert rules.can_publish("c", ANON, "a/b") is can_write


def test_read_and_write_rules_combine():
    rules = acl("topic read a/#\ntopic write a/b\n")
    assert rules.can_receive("c", ANON, "a/b")
    assert rules.can_publish("c", ANON, "a/b")
    assert not rules.can_publish("c", ANON, "a/c")


# --- wildcards ------------------------------------------------------------------------------------


def test_plus_and_hash_in_rules():
    rules = acl("topic sensors/+/temp\ntopic logs/#\n")
    assert rules.can_publish("c", ANON, "sensors/k/temp")
    assert rules.can_publish("c", ANON, "sensors//temp")  # "+" matches an empty level
    assert not rules.can_publish("c", ANON, "sensors/k/humidity")
    assert not rules.can_publish("c", ANON, "sensors/a/b/temp")
    assert rules.can_publish("c", ANON, "logs")
    assert rules.can_publish("c", ANON, "logs/a/b/c")
    assert not rules.can_publish("c", ANON, "logsx")


def test_hash_rule_grants_everything_but_dollar_topics():
    rules = acl("topic read #\n")
    assert rules.can_receive("c", ANON, "a/b/c")
    assert rules.can_receive("c", ANON, "/leading/slash")
    assert not rules.can_receive("c", ANON, "$SYS/broker/uptime")
    assert not rules.can_receive("c", ANON, "$internal")


@pytest.mark.parametrize(
    ("acl_filter", "subscription", "covered"),
    [
        ("#", "#", True),
        ("#", "a/+/b", True),
        ("a/#", "a", True),
        ("a/#", "a/#", True),
        ("a/#", "a/+", True),
        ("a/#", "#", False),
        ("a/#", "b/#", False),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/+", "a", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/+", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("+/+", "+/x", True),
        ("+/+", "#", False),
        ("a/+/#", "a/b", True),
        ("a/+/#", "a/+", True),
        ("a/+/#", "a/#", False),
        ("a/+/#", "a", False),
        ("#", "$SYS/#", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker/+", True),
        ("$SYS/#", "#", False),
        ("$SYS/+", "$SYS/#", False),
    ],
)
def test_filter_covers(acl_filter, subscription, covered):
    assert filter_covers(acl_filter, subscription) is covered


LEVEL = st.sampled_from(["a", "b", "", "$x"])


@given(
    st.lists(st.sampled_from(["a", "b", "", "+", "$x"]), min_size=1, max_size=4),
    st.booleans(),
    st.lists(LEVEL, min_size=1, max_size=4),
)
def test_filter_covers_a_topic_name_exactly_when_it_matches_it(filter_levels, hash_tail, name_levels):
    topic_filter = "/".join([*filter_levels, "#"] if hash_tail else filter_levels)
    name = "/".join(name_levels)
    assert filter_covers(topic_filter, name) == matches(topic_filter, name)


def test_subscription_needs_a_covering_read_rule():
    rules = acl("topic read sensors/+/temp\ntopic write cmd/#\n")
    assert rules.can_subscribe("c", ANON, "sensors/k/temp")
    assert rules.can_subscribe("c", ANON, "sensors/+/temp")
    assert not rules.can_subscribe("c", ANON, "sensors/#")
    assert not rules.can_subscribe("c", ANON, "#")
    assert not rules.can_subscribe("c", ANON, "cmd/#")  # write-only


def test_shared_subscriptions_are_judged_by_their_filter():
    rules = acl("topic read jobs/#\n")
    assert rules.can_subscribe("c", ANON, "$share/workers/jobs/+")
    assert not rules.can_subscribe("c", ANON, "$share/workers/other/+")
    assert not rules.can_subscribe("c", ANON, "$share/")


def test_sys_topics_need_a_dollar_rule():
    rules = acl("topic read #\ntopic read $SYS/broker/#\n")
    assert rules.can_subscribe("c", ANON, "#")  # allowed, but it will not deliver $SYS
    assert not rules.can_subscribe("c", ANON, "$SYS/#")
    assert rules.can_subscribe("c", ANON, "$SYS/broker/+")
    assert rules.can_receive("c", ANON, "$SYS/broker/uptime")
    assert not rules.can_receive("c", ANON, "$SYS/other")
    assert not acl("topic read +/broker/uptime\n").can_receive("c", ANON, "$SYS/broker/uptime")


# --- deny ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "topic readwrite a/#\ntopic deny a/secret/#\n",
        "topic deny a/secret/#\ntopic readwrite a/#\n",
    ],
)
def test_deny_wins_whatever_the_order(text):
    rules = acl(text)
    assert rules.can_publish("c", ANON, "a/public")
    assert not rules.can_publish("c", ANON, "a/secret")
    assert not rules.can_receive("c", ANON, "a/secret/x")
    assert not rules.can_subscribe("c", ANON, "a/secret/#")
    assert not rules.can_subscribe("c", ANON, "a/secret/+")
    # Overlapping is not covering: a/# stays allowed, delivery filters the secrets.
    assert rules.can_subscribe("c", ANON, "a/#")


def test_pattern_deny_beats_topic_grant():
    rules = acl("pattern deny private/%c/#\nuser alice\ntopic read #\n")
    assert rules.can_receive("phone", "alice", "private/laptop/x")
    assert not rules.can_receive("phone", "alice", "private/phone/x")


def test_topic_deny_beats_pattern_grant():
    rules = acl("user alice\ntopic deny devices/locked/#\npattern readwrite devices/%c/#\n")
    assert rules.can_publish("open", "alice", "devices/open/x")
    assert not rules.can_publish("locked", "alice", "devices/locked/x")
    # Other users do not get alice's deny.
    assert rules.can_publish("locked", "bob", "devices/locked/x")


# --- patterns -----------------------------------------------------------------------------------


def test_patterns_substitute_client_id_and_username():
    rules = acl("pattern readwrite devices/%c/#\npattern read users/%u/inbox\npattern write out/%u/%c\n")
    assert rules.can_publish("d1", ANON, "devices/d1/state")
    assert not rules.can_publish("d1", ANON, "devices/d2/state")
    assert rules.can_receive("phone", "alice", "users/alice/inbox")
    assert not rules.can_publish("phone", "alice", "users/alice/inbox")
    assert not rules.can_receive("phone", "alice", "users/bob/inbox")
    assert rules.can_publish("phone", "alice", "out/alice/phone")
    assert not rules.can_publish("phone", "alice", "out/phone/alice")
    assert rules.can_subscribe("d1", ANON, "devices/d1/+")
    assert not rules.can_subscribe("d1", ANON, "devices/+/state")


def test_username_pattern_does_not_apply_to_anonymous_clients():
    rules = acl("pattern read users/%u/#\n")
    assert not rules.can_receive("c", ANON, "users//x")
    assert not rules.can_receive("c", ANON, "users/%u/x")


def test_patterns_apply_to_everyone_wherever_they_appear():
    rules = acl("user alice\ntopic read a\npattern read devices/%c\nuser bob\n")
    assert rules.can_receive("d1", "bob", "devices/d1")
    assert rules.can_receive("d1", ANON, "devices/d1")
    assert rules.can_receive("d1", "alice", "devices/d1")


def test_placeholders_inside_a_level_and_topic_lines_are_literal():
    rules = acl("pattern read home/dev-%c\ntopic read literal/%c\n")
    assert rules.can_receive("7", ANON, "home/dev-7")
    assert not rules.can_receive("7", ANON, "literal/7")
    assert rules.can_receive("7", ANON, "literal/%c")


def test_substitution_is_a_single_pass():
    rules = acl("pattern read x/%c/%u\n")
    assert rules.can_receive("%u", "bob", "x/%u/bob")
    assert not rules.can_receive("%u", "bob", "x/bob/bob")


@pytest.mark.parametrize("bad", ["+", "#", "a/b", "a+", "x#", "/", ""])
def test_dangerous_client_ids_and_usernames_never_match_via_substitution(bad):
    rules = acl("pattern readwrite devices/%c/#\npattern readwrite users/%u/#\n")
    # Client id "+" must not reach every device, "a/b" must not reach inside device "a".
    for topic in ("devices/x/state", "devices/a/b/state", "devices/a+/state", "devices//state"):
        assert not rules.can_publish(bad, ANON, topic)
        assert not rules.can_receive(bad, ANON, topic)
    for sub in ("devices/+/#", "devices/#", f"devices/{bad}/#"):
        assert not rules.can_subscribe(bad, ANON, sub)
    for topic in ("users/x/y", "users/a/b/y", "users//y"):
        assert not rules.can_publish("ok", bad, topic)
    for sub in ("users/+/#", "users/#", f"users/{bad}/#"):
        assert not rules.can_subscribe("ok", bad, sub)
    # The safe half of the same client still works.
    assert rules.can_publish("ok", bad, "devices/ok/state")
    assert rules.can_publish(bad, "alice", "users/alice/x")


def test_dangerous_values_only_widen_deny_patterns():
    rules = acl("topic read #\npattern deny private/%c/#\n")
    assert rules.can_receive("+", ANON, "public/x")
    # "private/+/#" after substitution: the odd client loses every private tree, gains none.
    assert not rules.can_receive("+", ANON, "private/x/y")
    assert not rules.can_receive("a/b", ANON, "private/a/b/c")
    assert rules.can_receive("c1", ANON, "private/c2/y")
    assert not rules.can_receive("c1", ANON, "private/c1/y")


# --- syntax -------------------------------------------------------------------------------------


def test_comments_blank_lines_indentation_and_crlf():
    rules = acl("# comment\r\n\r\n   \r\n  topic   read   a/b  \r\n\t# indented comment\r\n")
    assert rules.can_receive("c", ANON, "a/b")
    assert rules.anonymous == (AclRule("a/b", Access.READ, 4),)


def test_lone_word_after_topic_is_the_filter():
    rules = acl("topic read\n")
    assert rules.can_publish("c", ANON, "read")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("topics read a", "unknown keyword 'topics'"),
        ("deny a/b", "unknown keyword 'deny'"),
        ("topic", "'topic' needs a topic filter"),
        ("pattern   ", "'pattern' needs a topic filter"),
        ("user", "'user' needs a username"),
        ("topic reed a/b", "unknown access 'reed'"),
        ("topic read a/#/b", "invalid topic filter 'a/#/b'"),
        ("topic read a+", "invalid topic filter 'a+'"),
        ("pattern write dev/%c#", "invalid topic filter"),
        ("topic read a/b # trailing comment", "invalid topic filter"),
    ],
)
def test_bad_line_is_a_config_error_naming_the_line(tmp_path, line, problem):
    path = tmp_path / "acl"
    path.write_text(f"# header\ntopic read ok\n\n{line}\ntopic read fine\n")
    with pytest.raises(ConfigError) as info:
        AclFile.load(path)
    assert info.value.field == f"{path}:4"
    assert problem in info.value.problem


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "acl"
    path.write_text(SAMPLE)
    assert AclFile.load(path).can_publish("c", "alice", "alice/x")
    with pytest.raises(FileNotFoundError):
        AclFile.load(tmp_path / "absent")


def test_invalid_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "acl"
    path.write_bytes(b"topic read \xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        AclFile.load(path)


def test_rules_can_be_built_in_code():
    rules = AclFile(
        anonymous=[AclRule("pub/#", Access.READ)],
        users={"alice": [AclRule("a/#")]},
        patterns=[AclRule("dev/%c", Access.WRITE), AclRule("dev/blocked", Access.NONE)],
    )
    assert rules.can_receive("c", ANON, "pub/x")
    assert rules.can_publish("c", "alice", "a/b")
    assert rules.can_publish("d1", "alice", "dev/d1")
    assert not rules.can_publish("blocked", "alice", "dev/blocked")
    assert AclRule("dev/%u/%c").uses_client_id
    assert AclRule("dev/%u/%c").uses_username
    assert not AclRule("dev/x").uses_client_id

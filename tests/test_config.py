"""Tests for zanzara.config: defaults, the example file, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from zanzara.config import (
    AdminConfig,
    AdminToken,
    Config,
    ListenerConfig,
    MqttConfig,
    config_from_dict,
    environment_overrides,
    load_config,
    merge_overrides,
)
from zanzara.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "zanzara.example.toml"


def assert_config_error(data: dict[str, object], field: str, problem: str | None = None) -> ConfigError:
    """``data`` is refused with a ConfigError on exactly ``field`` (and ``problem``, if given)."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    assert caught.value.field == field
    if problem is not None:
        assert caught.value.problem == problem
    assert str(caught.value) == f"{caught.value.field}: {caught.value.problem}"
    return caught.value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zanzara.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ---------------------------------------------------------------------------------------


def test_defaults_listen_on_localhost_1883_and_allow_anonymous() -> None:
    config = Config()
    assert config.listeners == (ListenerConfig(host="127.0.0.1", port=1883, protocol="mqtt"),)
    assert config.allow_anonymous is True
    assert config.log_level == "info"
    assert config.log_format == "text"


def test_mqtt_defaults() -> None:
    mqtt = Config().mqtt
    assert mqtt == MqttConfig()
    assert mqtt.max_keepalive == 65535
    assert mqtt.connect_timeout == 10.0
    assert mqtt.max_packet_size == 268435455
    assert mqtt.receive_maximum == 100
    assert mqtt.max_inflight_messages == 100
    assert mqtt.max_queued_messages == 1000
    assert mqtt.max_topic_levels == 128
    assert mqtt.topic_alias_maximum == 10
    assert mqtt.max_qos == 2
    assert mqtt.retain_available is True
    assert mqtt.allow_zero_length_clientid is True
    assert mqtt.max_client_id_length == 65535
    assert mqtt.session_expiry_max is None
    assert mqtt.persistent_client_expiration is None
    assert mqtt.shared_subscriptions is True
    assert mqtt.wildcard_subscriptions is True
    assert mqtt.subscription_identifiers is True
    # Limits against abuse: all off by default (as Mosquitto), the topic length at the protocol's own.
    assert mqtt.max_topic_length == 65535
    assert mqtt.max_connections == -1
    assert mqtt.max_subscriptions == 0
    assert mqtt.max_publish_rate == 0.0
    assert mqtt.max_bytes_rate == 0


def test_listener_defaults() -> None:
    listener = ListenerConfig()
    assert listener.path is None  # "ws": any path (as Mosquitto); "mqtt": none
    assert ListenerConfig(protocol="ws").path is None
    assert listener.name is None
    assert listener.max_connections == -1


def test_empty_document_is_the_defaults() -> None:
    assert config_from_dict({}) == Config()


def test_config_is_frozen_and_hashable() -> None:
    config = Config()
    with pytest.raises(ValueError, match="frozen"):
        config.allow_anonymous = False
    with pytest.raises(ValueError, match="frozen"):
        config.mqtt.max_qos = 1
    assert hash(config) == hash(Config())


# --- the example file is the reference ---------------------------------------------------------------


def test_example_file_is_the_defaults() -> None:
    assert load_config(EXAMPLE) == Config()


def _documented_keys(text: str) -> set[str]:
    # Commented-out keys count: they document settings whose default TOML cannot spell.
    keys = re.findall(r"^#?\s*([a-z_]+)\s*=", text, flags=re.MULTILINE)
    tables = re.findall(r"^\[{1,2}([a-z_]+)\]{1,2}", text, flags=re.MULTILINE)
    return set(keys) | set(tables)


@pytest.mark.parametrize("model", [Config, ListenerConfig, MqttConfig, AdminConfig, AdminToken])
def test_example_file_documents_every_key(model: type[BaseModel]) -> None:
    missing = set(model.model_fields) - _documented_keys(EXAMPLE.read_text(encoding="utf-8"))
    assert not missing, f"keys missing from {EXAMPLE.name}: {sorted(missing)}"


def test_example_file_commented_values_are_valid() -> None:
    # Uncomment every commented-out key of the [[listeners]]/[mqtt] sections: still a valid file.
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for key, value in re.findall(r"^# (session_expiry_max|persistent_client_expiration) = (\d+)", text, re.M):
        data["mqtt"][key] = int(value)
    data["listeners"].append({"protocol": "ws", "port": 8080, "path": "/mqtt", "name": "public"})
    config = config_from_dict(data)
    assert config.mqtt.session_expiry_max == 86400
    assert config.mqtt.persistent_client_expiration == 1209600


# --- loading files ---------------------------------------------------------------------------------


def test_load_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        allow_anonymous = false
        log_level = "debug"
        log_format = "json"

        [[listeners]]
        host = "0.0.0.0"
        port = 1883
        name = "tcp"
        max_connections = 10000

        [[listeners]]
        host = "0.0.0.0"
        port = 8080
        protocol = "ws"
        path = "/ws"

        [mqtt]
        max_keepalive = 300
        connect_timeout = 5          # an integer is fine for a float
        session_expiry_max = 3600
        persistent_client_expiration = 86400
        max_qos = 1
        """,
    )
    config = load_config(path)
    assert config.allow_anonymous is False
    assert (config.log_level, config.log_format) == ("debug", "json")
    assert [(lc.host, lc.port, lc.protocol) for lc in config.listeners] == [
        ("0.0.0.0", 1883, "mqtt"),
        ("0.0.0.0", 8080, "ws"),
    ]
    assert config.listeners[0].name == "tcp"
    assert config.listeners[0].max_connections == 10000
    assert config.listeners[1].path == "/ws"
    assert config.mqtt.max_keepalive == 300
    assert config.mqtt.connect_timeout == 5.0
    assert isinstance(config.mqtt.connect_timeout, float)
    assert config.mqtt.session_expiry_max == 3600
    assert config.mqtt.persistent_client_expiration == 86400
    assert config.mqtt.max_qos == 1
    assert config.mqtt.receive_maximum == 100  # untouched keys keep their defaults


def test_load_accepts_pathlike_and_str(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level = 'warning'\n")
    assert load_config(path).log_level == "warning"
    assert load_config(str(path)).log_level == "warning"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "info"\n\n[mqtt]\nmax_keepalive 60\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == str(path)
    assert "line 4" in caught.value.problem


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == str(path)
    assert "No such file" in caught.value.problem


def test_invalid_utf8_names_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'log_level = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == str(path)
    assert "UTF-8" in caught.value.problem


def test_value_errors_from_a_file_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nmax_keepalive = 70000\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == "mqtt.max_keepalive"


# --- unknown keys ---------------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    assert_config_error({"verbose": True}, "verbose", "unknown key")


def test_unknown_mqtt_key() -> None:
    assert_config_error({"mqtt": {"keepalive_max": 60}}, "mqtt.keepalive_max")


def test_unknown_listener_key_names_the_index() -> None:
    # Mosquitto's name for a listener's address (zanzara's is host): no key of ours is close to it.
    data = {"listeners": [{}, {"port": 1884, "bind_address": "x"}]}
    assert_config_error(data, "listeners.1.bind_address", "unknown key")


def test_misspelt_key_gets_a_suggestion() -> None:
    error = assert_config_error({"mqtt": {"max_keepalve": 60}}, "mqtt.max_keepalve")
    assert error.problem == "unknown key; did you mean 'max_keepalive'?"


def test_later_sections_are_not_invented_yet() -> None:
    assert_config_error({"tls": {}}, "tls", "unknown key")


# --- wrong types ------------------------------------------------------------------------------------


def test_string_for_int_is_refused_not_coerced() -> None:
    assert_config_error(
        {"listeners": [{"port": "1883"}]}, "listeners.0.port", "Input should be a valid integer"
    )


def test_bool_for_int_is_refused() -> None:
    assert_config_error({"mqtt": {"max_qos": True}}, "mqtt.max_qos")


def test_int_for_bool_is_refused() -> None:
    assert_config_error({"allow_anonymous": 1}, "allow_anonymous", "Input should be a valid boolean")


def test_unknown_log_level() -> None:
    assert_config_error(
        {"log_level": "trace"}, "log_level", "Input should be 'debug', 'info', 'warning' or 'error'"
    )


def test_unknown_listener_protocol() -> None:
    assert_config_error({"listeners": [{"protocol": "mqtts"}]}, "listeners.0.protocol")


def test_section_that_is_not_a_table() -> None:
    assert_config_error({"mqtt": 5}, "mqtt", "Input should be a table")


def test_listeners_as_a_single_table_is_refused() -> None:
    # The classic mistake: [listeners] instead of [[listeners]].
    assert_config_error({"listeners": {"port": 1883}}, "listeners", "Input should be an array")


def test_empty_listener_list_is_refused() -> None:
    assert_config_error({"listeners": []}, "listeners")


def test_non_mapping_document() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict([], source="thing")  # type: ignore[arg-type]
    assert caught.value.field == "thing"


# --- ranges -----------------------------------------------------------------------------------------


def test_port_out_of_range() -> None:
    assert_config_error(
        {"listeners": [{"port": 65536}]}, "listeners.0.port", "Input should be less than or equal to 65535"
    )


def test_negative_port() -> None:
    assert_config_error({"listeners": [{"port": -1}]}, "listeners.0.port")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_keepalive", 65536),
        ("max_keepalive", -1),
        ("connect_timeout", 0),
        ("connect_timeout", float("inf")),
        ("connect_timeout", float("nan")),
        ("max_packet_size", 63),
        ("receive_maximum", 0),
        ("receive_maximum", 65536),
        ("max_inflight_messages", 0),
        ("max_queued_messages", -1),
        ("max_topic_levels", 0),
        ("topic_alias_maximum", 65536),
        ("max_qos", 3),
        ("max_client_id_length", 22),
        ("session_expiry_max", -1),
        ("session_expiry_max", 2**32),
        ("persistent_client_expiration", 0),
        ("max_topic_length", 0),
        ("max_topic_length", 65536),
        ("max_connections", 0),
        ("max_connections", -2),
        ("max_subscriptions", -1),
        ("max_publish_rate", -1.0),
        ("max_publish_rate", float("inf")),
        ("max_bytes_rate", -1),
        ("max_bytes_rate", 1.5),
    ],
)
def test_mqtt_limit_out_of_range(key: str, value: object) -> None:
    assert_config_error({"mqtt": {key: value}}, f"mqtt.{key}")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_keepalive", 0),
        ("max_queued_messages", 0),
        ("topic_alias_maximum", 0),
        ("max_qos", 0),
        ("max_client_id_length", 23),
        ("session_expiry_max", 0),
        ("session_expiry_max", 2**32 - 1),
        ("max_topic_length", 1),
        ("max_connections", 1),
        ("max_subscriptions", 1),
        ("max_publish_rate", 0.5),
        ("max_bytes_rate", 1),
    ],
)
def test_mqtt_limit_edges_accepted(key: str, value: float) -> None:
    assert getattr(config_from_dict({"mqtt": {key: value}}).mqtt, key) == value


def test_max_connections_zero_is_refused() -> None:
    error = assert_config_error({"listeners": [{"max_connections": 0}]}, "listeners.0.max_connections")
    assert "-1" in error.problem


def test_empty_host_is_refused() -> None:
    assert_config_error({"listeners": [{"host": ""}]}, "listeners.0.host")


# --- listener rules -----------------------------------------------------------------------------------


def test_duplicate_listener_address() -> None:
    assert_config_error(
        {"listeners": [{"port": 1883}, {"port": 8883}, {"port": 1883, "protocol": "ws"}]},
        "listeners.2.port",
        "127.0.0.1:1883 is already used by listeners.0",
    )


def test_same_port_on_different_hosts_is_fine() -> None:
    config = config_from_dict({"listeners": [{"host": "127.0.0.1"}, {"host": "::1"}]})
    assert len(config.listeners) == 2


def test_port_zero_never_clashes() -> None:
    config = config_from_dict({"listeners": [{"port": 0}, {"port": 0}]})
    assert [lc.port for lc in config.listeners] == [0, 0]


def test_duplicate_listener_name() -> None:
    assert_config_error(
        {"listeners": [{"name": "a"}, {"name": "a", "port": 1884}]},
        "listeners.1.name",
        "'a' is already used by listeners.0",
    )


def test_ws_path_on_mqtt_listener_is_refused() -> None:
    assert_config_error(
        {"listeners": [{"path": "/ws"}]}, "listeners.0.path", 'only used when protocol = "ws"'
    )


def test_old_default_ws_path_on_mqtt_listener_still_loads() -> None:
    """``path = "/mqtt"`` was the default on every listener: a TCP one that names it still starts."""
    config = config_from_dict({"listeners": [{"path": "/mqtt"}, {"protocol": "ws", "path": "/mqtt"}]})
    assert [lc.path for lc in config.listeners] == [None, "/mqtt"]


def test_ws_path_must_be_absolute() -> None:
    assert_config_error(
        {"listeners": [{"protocol": "ws", "path": "mqtt"}]}, "listeners.0.path", "must start with '/'"
    )


# --- [admin] --------------------------------------------------------------------------------------


def test_admin_beyond_loopback_needs_tokens() -> None:
    """Anyone who reaches the admin API could publish and kick clients: no tokens, no start."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({"admin": {"host": "0.0.0.0", "port": 18083}})
    assert info.value.field == "admin.tokens"
    assert "admin.host = '0.0.0.0'" in str(info.value)


@pytest.mark.parametrize(
    "admin",
    [
        {"host": "127.0.0.1"},
        {"host": "::1"},
        {"host": "localhost"},
        {"host": "0.0.0.0"},  # off (port 0)
        {"host": "0.0.0.0", "port": 18083, "token_file": "tokens"},
        {"host": "0.0.0.0", "port": 18083, "tokens": [{"token": "x" * 16, "scope": "admin"}]},
    ],
)
def test_admin_without_tokens_on_loopback_or_with_them_anywhere(admin: dict[str, object]) -> None:
    assert config_from_dict({"admin": admin}).admin.host == admin["host"]


def test_admin_token_is_long_and_its_scope_known() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"admin": {"tokens": [{"token": "short"}]}})
    assert info.value.field == "admin.tokens.0.token"
    with pytest.raises(ConfigError) as info:
        config_from_dict({"admin": {"tokens": [{"token": "x" * 16, "scope": "root"}]}})
    assert info.value.field == "admin.tokens.0.scope"


# --- environment overrides (ZANZARA_<SECTION>__<KEY>) ------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nmax_inflight_messages = 10\nmax_qos = 1\n[storage]\nbackend = "memory"\n')
    environ = {
        "ZANZARA_MQTT__MAX_INFLIGHT_MESSAGES": "50",
        "ZANZARA_LOG_LEVEL": "debug",
        "ZANZARA_STORAGE__BACKEND": "redis",
        "ZANZARA_MQTT__RETAIN_AVAILABLE": "false",
        "ZANZARA_PUSH__DEFAULT_TTL": "3600",
        "HOME": "/root",  # not ours: ignored
    }
    config = load_config(path, environ)
    assert config.mqtt.max_inflight_messages == 50
    assert config.mqtt.max_qos == 1  # the file's, where no variable says otherwise
    assert config.log_level == "debug"
    assert config.storage.backend == "redis"
    assert config.mqtt.retain_available is False
    assert config.push.default_ttl == 3600


def test_environment_without_a_file() -> None:
    config = load_config(None, {"ZANZARA_SHUTDOWN_GRACE": "0.5", "ZANZARA_DATA_DIR": "/var/lib/zanzara"})
    assert config.shutdown_grace == 0.5
    assert config.sqlite_path == "/var/lib/zanzara/zanzara.db"
    assert load_config(None, {}) == Config()


def test_environment_values_are_toml_where_they_parse() -> None:
    [override] = environment_overrides({"ZANZARA_LISTENERS": '[{port = 1884}, {protocol = "ws", port = 0}]'})
    assert override.value == [{"port": 1884}, {"protocol": "ws", "port": 0}]
    config = load_config(None, {"ZANZARA_LISTENERS": '[{port = 1884}, {protocol = "ws", port = 0}]'})
    assert [(lc.protocol, lc.port) for lc in config.listeners] == [("mqtt", 1884), ("ws", 0)]
    # Listeners given in the environment are what a file would declare: anonymous access then needs asking.
    assert config.allow_anonymous is False


def test_environment_text_stays_text_where_only_text_is_taken() -> None:
    config = load_config(
        None,
        {
            "ZANZARA_STORAGE__PREFIX": "123",  # would parse as a number, but prefix is text
            "ZANZARA_STORAGE__URL": "redis://10.0.0.1:6380/2",  # not TOML at all
            "ZANZARA_ADMIN__HOST": '"localhost"',  # a TOML string is taken without its quotes
        },
    )
    assert config.storage.prefix == "123"
    assert config.storage.url == "redis://10.0.0.1:6380/2"
    assert config.admin.host == "localhost"


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"ZANZARA_MQTT__MAX_INFLIGHT_MESSAGES": "many"}, "Input should be a valid integer"),
        ({"ZANZARA_MQTT__MAX_INFLIGHT_MESSAGES": "0"}, "Input should be greater than or equal to 1"),
        ({"ZANZARA_LOG_LEVEL": "loud"}, "Input should be 'debug', 'info', 'warning' or 'error'"),
        ({"ZANZARA_MQTT__MAX_INFLIGHT": "5"}, "unknown key 'mqtt.max_inflight'; did you mean"),
        ({"ZANZARA_MQT__MAX_QOS": "1"}, "unknown key 'mqt'; did you mean ZANZARA_MQTT?"),
        ({"ZANZARA_LOG_LEVEL__X": "1"}, "log_level is not a table"),
        ({"ZANZARA_STORAGE__URL": "http://x"}, "must start with redis://, rediss:// or unix://"),
    ],
)
def test_a_bad_environment_value_names_the_variable(environ: dict[str, str], problem: str) -> None:
    [variable] = environ
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ)
    assert caught.value.field == variable
    assert caught.value.problem.startswith(problem), caught.value.problem


def test_merge_overrides_leaves_the_document_alone() -> None:
    document: dict[str, object] = {"mqtt": {"max_qos": 1}}
    merged = merge_overrides(document, environment_overrides({"ZANZARA_MQTT__RETAIN_AVAILABLE": "false"}))
    assert merged == {"mqtt": {"max_qos": 1, "retain_available": False}}
    assert document == {"mqtt": {"max_qos": 1}}


# --- data_dir, shutdown_grace, storage.url ------------------------------------------------------------


def test_sqlite_path_is_in_data_dir_unless_storage_path_is_set() -> None:
    assert Config().data_dir == "data"
    assert Config().sqlite_path == "data/zanzara.db"
    assert config_from_dict({"data_dir": "/srv/z"}).sqlite_path == "/srv/z/zanzara.db"
    assert config_from_dict({"data_dir": "/srv/z", "storage": {"path": "x.db"}}).sqlite_path == "x.db"


def test_shutdown_grace() -> None:
    assert Config().shutdown_grace == 5.0
    assert config_from_dict({"shutdown_grace": 0}).shutdown_grace == 0
    assert_config_error({"shutdown_grace": -1}, "shutdown_grace")


@pytest.mark.parametrize("url", ["localhost:6379", "redis://h:port/0"])
def test_malformed_redis_url_is_a_config_error(url: str) -> None:
    assert_config_error({"storage": {"url": url}}, "storage.url")


# --- docs/configuration.md is the reference too ------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _documented_tables(text: str) -> dict[str, dict[str, list[str]]]:
    """{table path ("" for the top level): {key: [type, default, meaning]}} from the page's tables."""
    tables: dict[str, dict[str, list[str]]] = {}
    rows: dict[str, list[str]] | None = None
    for line in text.splitlines():
        heading = re.match(r"^#{2,3} (.*)$", line)
        if heading:
            title = heading.group(1)
            path = re.fullmatch(r"`\[{1,2}([a-z_.]+)\]{1,2}`", title)
            rows = (
                tables.setdefault(path.group(1) if path else "", {})
                if path or title == "Top-level keys"
                else None
            )
            continue
        if rows is not None and line.startswith("| `"):
            # Table cells never hold a "|" of their own (the alternatives are written "or").
            key, *cells = (cell.strip() for cell in line.strip().strip("|").split("|"))
            rows[key.strip("`")] = cells
    return tables


def _tables_of(model: type[BaseModel], prefix: str = "") -> dict[str, type[BaseModel]]:
    """Every table of the configuration: its dotted path and the model that validates it."""
    found = {prefix: model}
    for name, field in model.model_fields.items():
        inner = _model_in_annotation(field.annotation)
        if inner is not None:
            found |= _tables_of(inner, f"{prefix}.{name}" if prefix else name)
    return found


def _model_in_annotation(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in_annotation(argument)
        if found is not None:
            return found
    return None


def _default_cell(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "`unset`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def test_configuration_doc_has_every_table_and_nothing_else() -> None:
    documented = _documented_tables(DOC.read_text(encoding="utf-8"))
    assert set(documented) == set(_tables_of(Config))


@pytest.mark.parametrize(("path", "model"), sorted(_tables_of(Config).items()))
def test_configuration_doc_lists_every_key_with_its_default(path: str, model: type[BaseModel]) -> None:
    rows = _documented_tables(DOC.read_text(encoding="utf-8")).get(path, {})
    keys = {name: f for name, f in model.model_fields.items() if _model_in_annotation(f.annotation) is None}
    where = f"docs/configuration.md, table {path or 'top level'}"
    assert set(rows) - set(keys) == set(), f"{where} documents keys that do not exist"
    assert set(keys) - set(rows) == set(), f"{where} misses keys"
    for name, field in keys.items():
        type_, default, meaning = rows[name]
        assert default == _default_cell(field), f"{where}: {name}'s default is {_default_cell(field)}"
        assert type_ and meaning, f"{where}: {name} needs a type and a meaning"

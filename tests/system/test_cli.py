"""Tests for zanzara.cli: flags over the config file, error reporting, logging, --version."""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import zanzara
from zanzara.cli import JsonFormatter, build_config, build_parser, configure_logging, main
from zanzara.config import AdminConfig, Config, ListenerConfig
from zanzara.errors import ConfigError
from zanzara.logs import CLIENT_ID, EVENT, JSON_FIELDS

from command import ZANZARA


def config_for(*argv: str) -> Config:
    return build_config(build_parser().parse_args(list(argv)))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zanzara.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() reconfigures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Replace zanzara.server with a stub whose run() records its config and returns 0."""
    calls: list[Config] = []

    def run(config: Config, reread: object = None) -> int:
        calls.append(config)
        return 0

    module = types.ModuleType("zanzara.server")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zanzara.server", module)
    # `from zanzara import server` looks at the package attribute first.
    monkeypatch.setattr(zanzara, "server", module, raising=False)
    return calls


# --- build_config -------------------------------------------------------------------------------------


WS_DEFAULT = ListenerConfig(protocol="ws", port=8083)


def test_the_command_serves_the_admin_api_on_18083_unless_told(tmp_path: Path) -> None:
    assert config_for().admin.port == 18083
    assert config_for("--admin-port", "9999").admin.port == 9999
    assert config_for("--admin-port", "0").admin.port == 0
    # A file without [admin] gets the command's default; one that sets the port keeps it.
    assert config_for("-c", str(write(tmp_path, "log_level = 'info'\n"))).admin.port == 18083
    assert config_for("-c", str(write(tmp_path, "[admin]\nport = 0\n"))).admin.port == 0
    args = build_parser().parse_args([])
    assert build_config(args, {"ZANZARA_ADMIN__PORT": "0"}).admin.port == 0
    # The embedded Config() serves no HTTP unless given a port.
    assert Config().admin.port == 0


def test_no_arguments_is_mosquitto_like_default_plus_websocket() -> None:
    config = config_for()
    # The command adds MQTT over WebSocket and the admin API; the embedded Config() has only
    # what it is given.
    assert config == Config().model_copy(
        update={"listeners": (ListenerConfig(), WS_DEFAULT), "admin": AdminConfig(port=18083)}
    )
    assert [(lc.host, lc.port, lc.protocol, lc.path) for lc in config.listeners] == [
        ("127.0.0.1", 1883, "mqtt", None),
        ("127.0.0.1", 8083, "ws", None),  # the MQTT handshake on any path, as Mosquitto
    ]
    assert config.allow_anonymous is True


def test_host_and_port_override_default_listener() -> None:
    config = config_for("--host", "0.0.0.0", "--port", "1884")
    assert config.listeners == (
        ListenerConfig(host="0.0.0.0", port=1884),
        ListenerConfig(host="0.0.0.0", protocol="ws", port=8083),
    )


def test_port_alone_keeps_default_host() -> None:
    assert config_for("--port", "0").listeners == (ListenerConfig(port=0), WS_DEFAULT)


def test_ws_port_moves_or_removes_the_websocket_listener() -> None:
    assert config_for("--ws-port", "9001").listeners == (
        ListenerConfig(),
        ListenerConfig(protocol="ws", port=9001),
    )
    assert config_for("--ws-port", "0").listeners == (ListenerConfig(),)
    assert config_for("--port", "0", "--ws-port", "0").listeners == (ListenerConfig(port=0),)


def test_certfile_adds_tls_listeners() -> None:
    files = {"certfile": "s.crt", "keyfile": "s.key"}
    config = config_for("--certfile", "s.crt", "--keyfile", "s.key")
    assert config.listeners == (
        ListenerConfig(),
        WS_DEFAULT,
        ListenerConfig(port=8883, **files),
        ListenerConfig(protocol="ws", port=8084, **files),
    )
    config = config_for(
        "--certfile",
        "s.crt",
        "--keyfile",
        "s.key",
        "--cafile",
        "ca.crt",
        "--tls-port",
        "9883",
        "--ws-port",
        "0",
    )
    # No plain WebSocket, no secure one unless asked for with --wss-port.
    assert config.listeners == (ListenerConfig(), ListenerConfig(port=9883, cafile="ca.crt", **files))
    config = config_for("--certfile", "s.crt", "--keyfile", "s.key", "--tls-port", "0", "--wss-port", "9084")
    assert config.listeners == (
        ListenerConfig(),
        WS_DEFAULT,
        ListenerConfig(protocol="ws", port=9084, **files),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--certfile", "s.crt"], "--keyfile: required with --certfile"),
        (["--keyfile", "s.key"], "--certfile: required with --keyfile"),
        (["--tls-port", "8883"], "--tls-port: needs --certfile and --keyfile"),
        (["--wss-port", "8084"], "--wss-port: needs --certfile and --keyfile"),
        (["--cafile", "ca.crt"], "--cafile: needs --certfile and --keyfile"),
        (["--ws-port", "1883"], "listeners.1.port: 127.0.0.1:1883 is already used by listeners.0"),
    ],
)
def test_tls_and_ws_flag_mistakes(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"zanzara: config error: {message}\n"


def test_tls_flags_change_the_files_tls_listeners(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[listeners]]
        port = 1883
        [[listeners]]
        port = 8883
        certfile = "old.crt"
        keyfile = "old.key"
        """,
    )
    config = config_for(
        "-c", str(path), "--certfile", "new.crt", "--keyfile", "new.key", "--tls-port", "9883"
    )
    # The file serves no WebSocket: neither flag adds one.
    assert config.listeners == (
        ListenerConfig(),
        ListenerConfig(port=9883, certfile="new.crt", keyfile="new.key"),
    )
    config = config_for("-c", str(path), "--cafile", "ca.crt", "--ws-port", "8080")
    assert [(lc.protocol, lc.port, lc.cafile) for lc in config.listeners] == [
        ("mqtt", 1883, None),
        ("mqtt", 8883, "ca.crt"),
        ("ws", 8080, None),
    ]


def test_verbose_sets_debug() -> None:
    assert config_for("-v").log_level == "debug"
    assert config_for("--verbose").log_level == "debug"


def test_log_level_flag() -> None:
    assert config_for("--log-level", "warning").log_level == "warning"


def test_verbose_and_log_level_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "--log-level", "error"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_flags_override_first_mqtt_listener_of_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level = "error"
        [[listeners]]
        protocol = "ws"
        port = 8080
        [[listeners]]
        host = "10.0.0.1"
        port = 1883
        name = "tcp"
        [[listeners]]
        port = 1885
        """,
    )
    config = config_for("-c", str(path), "--port", "1999", "-v")
    assert [(lc.host, lc.port, lc.protocol) for lc in config.listeners] == [
        ("127.0.0.1", 8080, "ws"),
        ("10.0.0.1", 1999, "mqtt"),
        ("127.0.0.1", 1885, "mqtt"),
    ]
    assert config.listeners[1].name == "tcp"  # the rest of the listener is kept
    assert config.log_level == "debug"


def test_flags_add_mqtt_listener_when_file_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listeners]]\nprotocol = "ws"\nport = 8080\n')
    config = config_for("-c", str(path), "--host", "::1")
    assert [(lc.host, lc.port, lc.protocol) for lc in config.listeners] == [
        ("127.0.0.1", 8080, "ws"),
        ("::1", 1883, "mqtt"),
    ]


def test_flag_that_makes_listeners_clash_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[[listeners]]\nport = 1883\n[[listeners]]\nport = 1884\n")
    with pytest.raises(ConfigError, match=r"listeners\.1\.port: 127\.0\.0\.1:1884 is already used"):
        config_for("-c", str(path), "--port", "1884")


def test_file_values_are_kept_without_flags(tmp_path: Path) -> None:
    path = write(tmp_path, 'allow_anonymous = false\nlog_format = "json"\n')
    config = config_for("-c", str(path))
    assert config.allow_anonymous is False
    assert config.log_format == "json"


@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_bad_port_flag_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", port]) == 2
    assert "argument --port" in capsys.readouterr().err


# --- main -------------------------------------------------------------------------------------------


def test_config_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[mqtt]\nmax_keepalive = 70000\n")
    assert main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "zanzara: config error: mqtt.max_keepalive: Input should be less than or equal to 65535\n"


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.toml"
    assert main(["-c", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"zanzara: config error: {path}: cannot read")


@pytest.mark.usefixtures("restore_logging")
def test_main_runs_server_with_built_config(fake_server: list[Config]) -> None:
    assert main(["--port", "1999", "--log-level", "warning"]) == 0
    [config] = fake_server
    assert config.listeners[0].port == 1999
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_main_returns_server_exit_code(fake_server: list[Config], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["zanzara.server"], "run", lambda config, reread: 3)
    assert main([]) == 3


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zanzara {importlib.metadata.version('zanzara')}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--config" in capsys.readouterr().out


def test_python_m_zanzara_reports_config_error(tmp_path: Path) -> None:
    # A real process: no traceback, one line on stderr, status 2.
    (tmp_path / "bad.toml").write_text("[mqtt]\nmax_keepalive = -5\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "zanzara", "-c", "bad.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "zanzara: config error: mqtt.max_keepalive: " in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- logging ----------------------------------------------------------------------------------------


def _record(msg: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc_info else None
    return logging.LogRecord("zanzara.test", logging.WARNING, __file__, 1, msg, args, info)


def test_json_formatter_one_object_per_line() -> None:
    line = JsonFormatter().format(_record("client %s said %r", "c1", "ciao\nmondo"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "zanzara.test"
    assert entry["message"] == "client c1 said 'ciao\\nmondo'"
    assert entry["time"].endswith("+00:00")
    assert set(entry) == {"time", "level", "logger", "message"}


def test_json_formatter_adds_client_id_and_event_from_extra() -> None:
    logger = logging.getLogger("zanzara.test.extra")
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "connected",
        (),
        None,
        extra={CLIENT_ID: "dev-1", EVENT: "connected"},
    )
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["client_id"], entry["event"]) == ("dev-1", "connected")
    assert tuple(entry) == JSON_FIELDS


def test_json_formatter_includes_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed", exc_info=True)
    entry = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in entry["exc"]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_configure_logging(log_format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "json" if log_format == "json" else "text")
    logging.getLogger("zanzara.x").debug("hidden")
    logging.getLogger("zanzara.x").info("shown %d", 1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if log_format == "json":
        assert json.loads(lines[0])["message"] == "shown 1"
    else:
        assert lines[0].endswith(" INFO zanzara.x: shown 1")


# --- the environment, and flags over it -------------------------------------------------------------------


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "warning"\n[mqtt]\nmax_qos = 2\n')
    environ = {"ZANZARA_LOG_LEVEL": "error", "ZANZARA_MQTT__MAX_QOS": "1"}
    config = build_config(build_parser().parse_args(["-c", str(path)]), environ)
    assert (config.log_level, config.mqtt.max_qos) == ("error", 1)
    config = build_config(build_parser().parse_args(["-c", str(path), "--log-level", "debug"]), environ)
    assert (config.log_level, config.mqtt.max_qos) == ("debug", 1)


def test_bad_environment_value_is_one_line_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], environ={"ZANZARA_MQTT__MAX_QOS": "3"}) == 2
    err = capsys.readouterr().err
    assert err == "zanzara: config error: ZANZARA_MQTT__MAX_QOS: Input should be less than or equal to 2\n"


def test_log_format_flag() -> None:
    assert config_for().log_format == "text"
    assert config_for("--log-format", "json").log_format == "json"


# --- check-config and --help ---------------------------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[[listeners]]\nhost = "0.0.0.0"\nport = 1884\n[storage]\nbackend = "memory"\n')
    assert main(["check-config", str(path)], environ={}) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok (")
    assert "mqtt://0.0.0.0:1884" in out and "anonymous clients refused" in out


def test_check_config_reads_environment_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[mqtt]\nmax_qos = 1\n")
    assert main(["check-config", str(path), "--port", "1999"], environ={"ZANZARA_DATA_DIR": "/srv/z"}) == 0
    out = capsys.readouterr().out
    assert "mqtt://127.0.0.1:1999" in out and "sqlite /srv/z/zanzara.db" in out


@pytest.mark.parametrize(
    ("text", "environ", "error"),
    [
        ("[mqtt]\nmax_qos = 3\n", {}, "mqtt.max_qos: Input should be less than or equal to 2"),
        (
            "",
            {"ZANZARA_MQTT__MAX_QOS": "3"},
            "ZANZARA_MQTT__MAX_QOS: Input should be less than or equal to 2",
        ),
        ('acl_file = "missing-acl"\n', {}, "missing-acl"),
    ],
)
def test_check_config_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    environ: dict[str, str],
    error: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    assert main(["check-config", str(path)], environ=environ) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("zanzara: config error: ") and error in err
    assert err.count("\n") == 1


def test_check_config_through_the_command(tmp_path: Path) -> None:
    good = write(tmp_path, "[mqtt]\nmax_qos = 1\n")
    ok = subprocess.run([ZANZARA, "check-config", str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{good}: ok")
    bad = subprocess.run(
        [ZANZARA, "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ZANZARA_MQTT__MAX_QOS": "7"},
    )
    assert bad.returncode == 2
    assert (
        bad.stderr
        == "zanzara: config error: ZANZARA_MQTT__MAX_QOS: Input should be less than or equal to 2\n"
    )


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for usage in ("zanzara [options]", "zanzara check-config", "zanzara passwd [-c] [-b] [-D] FILE USER"):
        assert usage in out
    assert "ZANZARA_<SECTION>__<KEY>" in out

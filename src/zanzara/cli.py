"""The ``zanzara`` command: flags and a config file in, a running server out.

This module turns the command line into a :class:`~zanzara.config.Config`
(file first, then flags on top), configures stdlib logging from it and hands
over to :func:`zanzara.server.run`.  Configuration problems end here as one
line on stderr and exit status 2, never as a traceback.

It holds no broker logic: it imports :mod:`zanzara.config` and, only when it
is about to serve, :mod:`zanzara.server`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence

from . import logs
from .config import DEFAULT_PORTS, Config, LogFormat, LogLevel, config_from_dict, load_config
from .errors import ConfigError
from .logs import JsonFormatter

__all__ = ["JsonFormatter", "build_config", "build_parser", "check_config", "configure_logging", "main"]

logger = logging.getLogger(__name__)

PROG = "zanzara"
# Exit status for a usage or configuration error, as argparse uses.
EXIT_CONFIG_ERROR = 2
# 128 + SIGINT, the shell convention for "interrupted".
EXIT_INTERRUPTED = 130

# The subcommands, as --help lists them (each is dispatched on argv[0] in main()).
COMMANDS = """\
commands:
  zanzara [options]                          run the broker (the default)
  zanzara check-config [options] FILE        validate FILE with the environment and the
                                             options, start nothing; exit 0 if it is valid
  zanzara passwd [-c] [-b] [-D] FILE USER [PASSWORD]
                                             add, change or delete (-D) a user of a password
                                             file, as mosquitto_passwd (zanzara passwd -h)

environment:
  ZANZARA_<KEY>=VALUE and ZANZARA_<SECTION>__<KEY>=VALUE override the file's keys (the
  options override both), e.g. ZANZARA_LOG_LEVEL=debug, ZANZARA_MQTT__MAX_QOS=1,
  ZANZARA_STORAGE__BACKEND=redis.  Values are TOML values (numbers, true/false, arrays)
  where they parse, else text.  docs/configuration.md lists every key.
"""


def _version() -> str:
    try:
        return importlib.metadata.version("zanzara")
    except importlib.metadata.PackageNotFoundError:
        # Running from a source tree that was never installed.
        return "unknown"


def _port(text: str) -> int:
    """argparse type for --port, so a bad port is a usage error naming the flag."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {port}")
    return port


def _host(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of the ``zanzara`` command."""
    description = (
        "An MQTT 3.1/3.1.1/5.0 broker. Without -c it listens on 127.0.0.1:1883 (MQTT) "
        "and 127.0.0.1:8083 (MQTT over WebSocket, any path) and allows anonymous clients; "
        "with --certfile and --keyfile also on 8883 (MQTT over TLS) and 8084 (secure WebSocket)."
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=textwrap.fill(description, width=90),
        epilog=COMMANDS,
        # Keeps the command table of the epilog as it is written.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--host", type=_host, help="address of the first mqtt listener and of the listeners flags add"
    )
    parser.add_argument("--port", type=_port, help="port of the first mqtt listener")
    tls = parser.add_argument_group("WebSocket and TLS listeners")
    tls.add_argument(
        "--ws-port",
        type=_port,
        metavar="PORT",
        help="port of the WebSocket listener (8083 without -c); 0: none",
    )
    tls.add_argument(
        "--tls-port", type=_port, metavar="PORT", help="port of the MQTT over TLS listener (8883); 0: none"
    )
    tls.add_argument(
        "--wss-port",
        type=_port,
        metavar="PORT",
        help="port of the secure WebSocket listener (8084 when WebSocket is on); 0: none",
    )
    tls.add_argument("--certfile", metavar="FILE", help="PEM server certificate: adds the TLS listeners")
    tls.add_argument("--keyfile", metavar="FILE", help="PEM private key of --certfile")
    tls.add_argument(
        "--cafile", metavar="FILE", help="PEM CA certificates that verify client certificates (TLS listeners)"
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="same as --log-level debug")
    verbosity.add_argument("--log-level", choices=typing.get_args(LogLevel), help="overrides log_level")
    parser.add_argument(
        "--log-format",
        choices=typing.get_args(LogFormat),
        help="overrides log_format: text lines, or JSON lines (time, level, logger, message, "
        "client_id, event)",
    )
    parser.add_argument(
        "--admin-port",
        type=_port,
        metavar="PORT",
        help=f"port of the admin HTTP API, metrics and dashboard ({ADMIN_PORT} unless the "
        "configuration says); 0: none",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


# The admin API's port when nothing else says (EMQX's dashboard port).
ADMIN_PORT = 18083


def build_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration the parsed command line asks for; starts nothing.

    The file (or the built-in defaults) comes first, then the ``ZANZARA_*`` variables
    of ``environ`` (:func:`zanzara.config.environment_overrides`).  Without a file the
    command also serves MQTT over WebSocket on 8083 (the embedded ``Config()``
    does not: it has only what it is given).  Then the flags:

    - --host/--port replace the host/port of the first plain mqtt listener (one
      is added if there is none); --host also applies to the listeners flags add;
    - --ws-port moves the first plain ws listener (adds one), 0 removes it;
    - --certfile/--keyfile (and --cafile) add an MQTT over TLS listener (8883,
      --tls-port) and, when WebSocket is served, a secure WebSocket one (8084,
      --wss-port); with a file that has TLS listeners, the flags change the first
      of each kind instead.  A port flag 0 removes that listener;
    - -v/--log-level replace ``log_level``, --log-format ``log_format``;
    - --admin-port sets ``admin.port``; unset anywhere, the command serves the admin
      API on 18083.

    The result is validated again as a whole, so a flag that makes two listeners
    clash is reported like the same mistake in the file.  Raises :class:`ConfigError`.
    """
    config_path: str | None = args.config
    log_level: str | None = "debug" if args.verbose else args.log_level

    config = load_config(config_path, environ)
    data = config.model_dump()
    listeners = _Listeners(list(data["listeners"]), host=args.host)
    if args.host is not None or args.port is not None:
        listeners.update("mqtt", False, port=args.port, host=args.host)
    # Listeners given whole in the environment are all the listeners, as in a file.
    from_file = config_path is not None or "ZANZARA_LISTENERS" in (environ or {})
    if not from_file and args.ws_port is None:
        listeners.update("ws", False, port=DEFAULT_PORTS["ws", False])
    elif args.ws_port is not None:
        listeners.update("ws", False, port=args.ws_port)
    _apply_tls_flags(args, listeners)
    data["listeners"] = listeners.items
    if args.admin_port is not None:
        data["admin"]["port"] = args.admin_port
    elif "port" not in config.admin.model_fields_set:
        # The command's default (the embedded Config() serves no HTTP unless told).
        data["admin"]["port"] = ADMIN_PORT
    if log_level is not None:
        data["log_level"] = log_level
    if args.log_format is not None:
        data["log_format"] = args.log_format
    if data == config.model_dump():
        return config
    return config_from_dict(data, source=config_path or "<command line>")


class _Listeners:
    """The ``[[listeners]]`` being built from the file and the flags (as TOML-shaped dicts)."""

    def __init__(self, items: list[dict[str, object]], host: str | None) -> None:
        self.items = items
        self._host = host

    def find(self, protocol: str, tls: bool) -> int | None:
        return next(
            (
                i
                for i, item in enumerate(self.items)
                if item["protocol"] == protocol and (item.get("certfile") is not None) is tls
            ),
            None,
        )

    def update(self, protocol: str, tls: bool, *, port: int | None, **changes: object) -> None:
        """Change the first listener of this kind, adding it if missing; port 0 removes it."""
        index = self.find(protocol, tls)
        if port == 0 and not (protocol == "mqtt" and not tls):  # --port 0: any free port
            if index is not None:
                del self.items[index]
            return
        values = {k: v for k, v in {"port": port, **changes}.items() if v is not None}
        if index is None:
            added: dict[str, object] = {"protocol": protocol}
            if self._host is not None:
                added["host"] = self._host
            if "port" not in values:
                values["port"] = DEFAULT_PORTS[protocol, tls]
            self.items.append({**added, **values})
        else:
            self.items[index] = {**self.items[index], **values}


def _apply_tls_flags(args: argparse.Namespace, listeners: _Listeners) -> None:
    certfile: str | None = args.certfile
    keyfile: str | None = args.keyfile
    if (certfile is None) != (keyfile is None):
        missing, given = ("--keyfile", "--certfile") if keyfile is None else ("--certfile", "--keyfile")
        raise ConfigError(missing, f"required with {given}")
    files = {"certfile": certfile, "keyfile": keyfile, "cafile": args.cafile}
    for protocol, flag, port in (("mqtt", "--tls-port", args.tls_port), ("ws", "--wss-port", args.wss_port)):
        exists = listeners.find(protocol, True) is not None
        if certfile is None and not exists:
            if port:
                raise ConfigError(flag, "needs --certfile and --keyfile")
            continue
        if not exists and protocol == "ws" and port is None and listeners.find("ws", False) is None:
            continue  # secure WebSocket by default only where WebSocket is served
        listeners.update(protocol, True, port=port, **files)
    tls_listeners = (listeners.find("mqtt", True), listeners.find("ws", True))
    if args.cafile is not None and tls_listeners == (None, None):
        raise ConfigError("--cafile", "needs --certfile and --keyfile")


def configure_logging(level: LogLevel, log_format: LogFormat) -> None:
    """Send every log record at ``level`` or above to stderr in ``log_format``."""
    logs.configure(level, log_format)


def _report(error: ConfigError) -> int:
    print(f"{PROG}: config error: {error}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def check_config(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """``zanzara check-config [options] FILE``: validate as the broker would, start nothing.

    Prints a summary on stdout and returns 0, or the error on stderr and returns 2.
    """
    parser = build_parser(prog=f"{PROG} check-config")
    parser.epilog = None
    parser.add_argument("file", metavar="FILE", help="TOML configuration file (or -c FILE)", nargs="?")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return _exit_status(exc)
    if args.file is not None:
        if args.config is not None:
            return _report(ConfigError(args.file, "give the file once, as FILE or -c FILE"))
        args.config = args.file
    try:
        config = build_config(args, environ)
        _check_auth_files(config)
    except ConfigError as error:
        return _report(error)
    print(f"{args.config or 'built-in defaults'}: ok ({_summary(config)})")
    return 0


def _check_auth_files(config: Config) -> None:
    """Read the password and ACL files as the broker would at start (ConfigError if one is bad)."""
    if config.password_file or config.acl_file:
        from zanzara.auth.files import FileAuth  # noqa: PLC0415 - only this subcommand needs it

        FileAuth(config.password_file, config.acl_file)


def _summary(config: Config) -> str:
    listeners = ", ".join(
        f"{lc.protocol}{'s' if lc.tls else ''}://{lc.host}:{lc.port}" for lc in config.listeners
    )
    storage = config.storage
    where = {"sqlite": config.sqlite_path, "redis": storage.url, "memory": "in memory"}[storage.backend]
    anonymous = "allowed" if config.allow_anonymous else "refused"
    return f"listeners {listeners}; storage {storage.backend} {where}; anonymous clients {anonymous}"


def _exit_status(exc: SystemExit) -> int:
    # argparse exits for --help, --version and usage errors; hand its status back so
    # that callers of main() always get an int.
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else EXIT_CONFIG_ERROR


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the ``zanzara`` command; returns the process exit status.

    ``environ`` (default ``os.environ``) is where the ``ZANZARA_*`` overrides come from.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if argv[:1] == ["passwd"]:
        # `zanzara passwd [-c] [-b] [-D] FILE USER [PASSWORD]`, as mosquitto_passwd.
        from zanzara.auth.passwd_command import passwd_main  # noqa: PLC0415

        return passwd_main(argv[1:])
    if argv[:1] == ["check-config"]:
        return check_config(argv[1:], env)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return _exit_status(exc)
    try:
        config = build_config(args, env)
    except ConfigError as error:
        return _report(error)

    configure_logging(config.log_level, config.log_format)
    logger.info("zanzara %s, configuration from %s", _version(), args.config or "built-in defaults")

    # Imported here so that parsing and validating need none of the server's
    # dependencies (and tests of this module need no server at all).
    from zanzara import server  # noqa: PLC0415

    # SIGHUP builds the configuration again as at start (file, environment, flags): a level
    # given by a flag or a variable keeps winning over the file's.
    reread: Callable[[], Config] | None = None
    if args.config is not None:
        reread = lambda: build_config(args, env)  # noqa: E731
    try:
        return server.run(config, reread=reread)
    except ConfigError as error:
        # Some problems show only when the server applies the configuration;
        # they are reported the same way as those found while loading it.
        return _report(error)
    except KeyboardInterrupt:
        # The server handles SIGINT once it runs; this covers Ctrl-C during startup.
        return EXIT_INTERRUPTED

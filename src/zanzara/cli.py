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
import json
import logging
import sys
import typing
from collections.abc import Sequence
from datetime import UTC, datetime

from .config import Config, LogFormat, LogLevel, config_from_dict, load_config
from .errors import ConfigError

__all__ = ["JsonFormatter", "build_config", "build_parser", "configure_logging", "main"]

logger = logging.getLogger(__name__)

PROG = "zanzara"
# Exit status for a usage or configuration error, as argparse uses.
EXIT_CONFIG_ERROR = 2
# 128 + SIGINT, the shell convention for "interrupted".
EXIT_INTERRUPTED = 130

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_LEVELS: dict[LogLevel, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zanzara`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An MQTT 3.1/3.1.1/5.0 broker. Without -c it listens on 127.0.0.1:1883 "
        "and allows anonymous clients.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--host", type=_host, help="address of the first mqtt listener")
    parser.add_argument("--port", type=_port, help="port of the first mqtt listener")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="same as --log-level debug")
    verbosity.add_argument("--log-level", choices=typing.get_args(LogLevel), help="overrides log_level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def build_config(args: argparse.Namespace) -> Config:
    """The configuration the parsed command line asks for; starts nothing.

    The file (or the built-in defaults) comes first; --host/--port replace the
    host/port of the first listener whose protocol is mqtt (one is added if
    there is none), and -v/--log-level replace ``log_level``.  The result is
    validated again as a whole, so a flag that makes two listeners clash is
    reported like the same mistake in the file.  Raises :class:`ConfigError`.
    """
    config_path: str | None = args.config
    host: str | None = args.host
    port: int | None = args.port
    log_level: str | None = "debug" if args.verbose else args.log_level

    config = load_config(config_path) if config_path is not None else Config()
    if host is None and port is None and log_level is None:
        return config

    data = config.model_dump()
    if host is not None or port is not None:
        listeners: list[dict[str, object]] = list(data["listeners"])
        first = next((i for i, item in enumerate(listeners) if item["protocol"] == "mqtt"), None)
        if first is None:
            listeners.append({"protocol": "mqtt"})
            first = len(listeners) - 1
        override = {"host": host, "port": port}
        listeners[first] = {**listeners[first], **{k: v for k, v in override.items() if v is not None}}
        data["listeners"] = listeners
    if log_level is not None:
        data["log_level"] = log_level
    return config_from_dict(data, source=config_path or "<command line>")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``.

    ``exc`` and ``stack`` are added when the record carries them, so a log
    shipper never has to reassemble a multi-line traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: LogLevel, log_format: LogFormat) -> None:
    """Send every log record at ``level`` or above to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    # force: the command owns the process, so replace whatever was set up before.
    logging.basicConfig(level=_LEVELS[level], handlers=[handler], force=True)


def _report(error: ConfigError) -> int:
    print(f"{PROG}: config error: {error}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zanzara`` command; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; hand its
        # status back so that callers of main() always get an int.
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG_ERROR
    try:
        config = build_config(args)
    except ConfigError as error:
        return _report(error)

    configure_logging(config.log_level, config.log_format)
    logger.info("zanzara %s, configuration from %s", _version(), args.config or "built-in defaults")

    # Imported here so that parsing and validating need none of the server's
    # dependencies (and tests of this module need no server at all).
    from zanzara import server  # noqa: PLC0415

    try:
        return server.run(config)
    except ConfigError as error:
        # Some problems show only when the server applies the configuration;
        # they are reported the same way as those found while loading it.
        return _report(error)
    except KeyboardInterrupt:
        # The server handles SIGINT once it runs; this covers Ctrl-C during startup.
        return EXIT_INTERRUPTED

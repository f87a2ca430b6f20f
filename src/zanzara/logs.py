"""How zanzara's log records look: human-readable lines or JSON lines, one handler on stderr.

Every module logs through :mod:`logging` (``logging.getLogger(__name__)``); this module only
decides the output.  A record about one client or one broker event says so with the
``extra`` fields named here, which the JSON format turns into keys of their own::

    logger.info("connected from %s", address, extra={CLIENT_ID: client_id, EVENT: "connected"})

It imports nothing of zanzara's, so that any layer may use the field names.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "CLIENT_ID",
    "EVENT",
    "JSON_FIELDS",
    "LEVELS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "configure",
    "set_level",
]

# The ``extra=`` keys a record may carry, copied into the JSON object under the same names.
CLIENT_ID = "client_id"
EVENT = "event"
_EXTRA_FIELDS = (CLIENT_ID, EVENT)
# The keys of a JSON line, in their order (the last two only when the record has them;
# "exc" and "stack" follow for records with a traceback).
JSON_FIELDS = ("time", "level", "logger", "message", *_EXTRA_FIELDS)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``.

    ``client_id`` and ``event`` are added when the record carries them (``extra=``), and
    ``exc`` and ``stack`` when it has a traceback, so a log shipper never has to
    reassemble a multi-line one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra field that is not JSON (an enum, an address tuple) still logs.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: Literal["text", "json"]) -> None:
    """Send every record at ``level`` or above to stderr, as text lines or JSON lines.

    Replaces whatever handlers the root logger had: the ``zanzara`` command owns its process.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=LEVELS[level], handlers=[handler], force=True)


def set_level(level: str) -> None:
    """Change the level of the root logger (SIGHUP), keeping its handlers."""
    logging.getLogger().setLevel(LEVELS[level])

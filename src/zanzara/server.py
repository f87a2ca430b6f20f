"""The ``zanzara`` command's runtime: the event loop, signals, garbage collection.

:func:`run` runs a :class:`~zanzara.broker.Broker` until SIGINT or SIGTERM
(SIGHUP reloads the password and ACL files and the log level), on uvloop where it is
installed.  The signals and the graceful shutdown are :meth:`Broker.serve_forever`'s, so
that a program embedding the broker gets the same.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable

from . import logs
from .broker import Broker
from .config import Config
from .errors import ConfigError, StoreError, StoreInUse

__all__ = ["Broker", "run", "tune_gc"]

logger = logging.getLogger(__name__)


def _install_loop_policy() -> str:
    try:
        import uvloop  # noqa: PLC0415 - optional: the stock loop is the fallback
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


GC_THRESHOLD = (20_000, 10, 10)


def tune_gc() -> None:
    """Collect cyclic garbage less often than Python's default (every 700 allocations).

    A broker allocates a few objects per message and almost none of them form cycles;
    reference counting frees them.  At the default threshold the collector ran thousands
    of times a second and walked the whole backlog of queued messages whenever it grew by
    a quarter.  Measured with the broker on one core: persistent QoS 1 fan-in +20%, a
    1000x100 offline publish and drain about 20% faster.  The ``zanzara`` command calls it;
    a program that embeds the broker may, too (it changes the whole process).
    """
    gc.set_threshold(*GC_THRESHOLD)


# Exit status when the store cannot be opened (as for a configuration error: the operator
# must change something); 1 when another broker holds it or a port is taken.
EXIT_STORE_ERROR = 2


def run(config: Config, reread: Callable[[], Config] | None = None) -> int:
    """Run the broker until SIGINT/SIGTERM; returns the process exit code.

    ``reread`` builds the configuration again (from its file) on SIGHUP, for the settings
    that can change while the broker runs: today ``log_level``.
    """
    loop_name = _install_loop_policy()
    tune_gc()
    logger.debug("event loop: %s", loop_name)

    async def main() -> int:
        broker = Broker(config)
        try:
            await broker.start()
        except StoreInUse as exc:  # another broker holds the store: stop it first, or wait
            logger.error("cannot open the store: %s", exc)
            return 1
        except StoreError as exc:  # a path, a file or a server that cannot be used as configured
            logger.error("cannot open the store: %s", exc)
            return EXIT_STORE_ERROR
        except OSError as exc:
            logger.error("cannot listen: %s", exc)
            return 1
        # What start() loaded (sessions, queues, retained messages) lives long: keep it out
        # of every later collection.
        gc.freeze()
        if reread is not None:
            # SIGHUP and the admin API's reload both re-read the file's log_level.
            broker.reload_hooks["log_level"] = _LogLevel(config.log_level, reread)
        await broker.serve_forever(on_reload=_Reloader(broker))
        return 0

    return asyncio.run(main())


class _Reloader:
    """SIGHUP: what the broker reloads (files, the log level); says what it did, or that there was nothing."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def __call__(self) -> None:
        if not self._broker.reloadable:
            logger.info(
                "SIGHUP: nothing to reload (no password_file, acl_file or admin.token_file, "
                "and no configuration file)"
            )
            return
        self._broker.reload()  # logs what it reloaded, or why it kept the old state


class _LogLevel:
    """Re-read the configuration file's ``log_level`` and apply it; False if the file is bad."""

    def __init__(self, log_level: str, reread: Callable[[], Config]) -> None:
        self._log_level = log_level
        self._reread = reread

    def __call__(self) -> bool:
        try:
            level = self._reread().log_level
        except ConfigError as exc:
            logger.error("configuration not reloaded, keeping log level %s: %s", self._log_level, exc)
            return False
        if level == self._log_level:
            logger.info("log level unchanged (%s)", level)
            return True
        logs.set_level(level)
        logger.info("log level %s -> %s", self._log_level, level)
        self._log_level = level
        return True

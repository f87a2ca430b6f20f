"""The admin API served by uvicorn inside the broker's own event loop.

No second thread or process, and no signal handlers of uvicorn's: the broker (or the embedding
program) owns SIGTERM/SIGINT and stops this server in its own shutdown.  The listening socket is
bound here, before uvicorn sees it, so an address in use is our clear error, not uvicorn's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from ..errors import ConfigError
from .app import BrokerAPI, create_app
from .tokens import TokenTable

__all__ = ["AdminServer"]

logger = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handling: the broker's shutdown stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """The admin HTTP API of one broker, started and stopped with it."""

    def __init__(self, broker: BrokerAPI) -> None:
        self.config = broker.config.admin
        self.tokens = TokenTable(self.config)
        self.app = create_app(broker, self.tokens)
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = self.config.port

    @property
    def url(self) -> str:
        host = self.config.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self, port: int | None = None) -> None:
        """Bind and serve; ``port`` overrides the configured one (0: any free port)."""
        cfg = self.config
        port = cfg.port if port is None else port
        try:
            sock = socket.create_server((cfg.host, port), family=_family(cfg.host), reuse_port=False)
        except OSError as exc:
            raise ConfigError(
                "admin.port", f"cannot listen on {cfg.host}:{port}: {exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # our logging, our format
            log_level="warning",  # uvicorn's start and stop lines repeat ours
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            server_header=False,
        )
        server = self._server = _InLoopServer(config)
        self._task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[sock]), name="zanzara-admin"
        )
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise ConfigError("admin.port", "the admin API stopped while starting")
            await asyncio.sleep(0.01)
        logger.info("admin API on %s (docs at %s/docs)", self.url, self.url)

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        # Event streams never end on their own: past the grace, uvicorn cancels them.
        await task
        self._server = self._task = None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET

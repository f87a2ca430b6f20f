"""Run a zanzara Broker in a background thread for tests driven by blocking clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from zanzara import Broker
from zanzara.config import Config, ListenerConfig, StorageConfig

from command import free_port

T = TypeVar("T")


class BrokerThread:
    def __init__(
        self,
        config: Config | None = None,
        *,
        setup: Callable[[Broker], None] | None = None,
        loop: str = "asyncio",
        admin: bool = False,
    ) -> None:
        """``loop``: "asyncio" (the stock loop) or "uvloop" (the zanzara command's default);
        ``admin``: serve the admin API too, on a free port (:attr:`admin_url`)."""
        config = config or Config(storage=StorageConfig(backend="memory"))
        listeners = tuple(lc.model_copy(update={"port": 0}) for lc in config.listeners) or (
            ListenerConfig(port=0),
        )
        admin_config = config.admin.model_copy(update={"port": free_port() if admin else 0})
        self.config = config.model_copy(update={"listeners": listeners, "admin": admin_config})
        self._setup = setup
        if loop == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.broker: Broker | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="zanzara-test-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("broker did not start")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.broker = Broker(self.config)
            if self._setup is not None:
                self._setup(self.broker)
            await self.broker.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.broker.stop(grace=2)

    @property
    def port(self) -> int:
        assert self.broker is not None
        return self.broker.addresses[0][1]

    @property
    def admin_url(self) -> str:
        assert self.broker is not None and self.broker.admin is not None, "started without admin=True"
        return f"http://127.0.0.1:{self.broker.admin.port}"

    @property
    def core(self) -> Any:
        assert self.broker is not None
        return self.broker.core

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the broker's loop and return its result."""
        fut: Future[T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(10)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def wait_offline(self, client_id: str, timeout: float = 5.0) -> None:
        """Block until the broker has seen ``client_id``'s connection go."""
        import time

        deadline = time.monotonic() + timeout
        while self.call(lambda: client_id in self.core.clients):
            if time.monotonic() > deadline:
                raise AssertionError(f"{client_id} is still connected")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> BrokerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

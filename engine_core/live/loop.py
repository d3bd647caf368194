"""An asyncio loop on a thread of its own, for a venue broker: the broker
contract is synchronous, the venue's sessions (REST, streams) are async.
A broker's methods wait on it with :meth:`LoopThread.call`, whose errors
name the broker, the call and the time waited."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from engine_core.baton import step_aside
from engine_core.errors import BrokerError, BrokerTimeout

T = TypeVar("T")


class LoopThread:
    """``start`` the loop; ``run`` a coroutine on it from any other thread and
    wait for its result; ``stop`` the loop and its thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._forever, args=(loop,), name=self.name, daemon=True)
        self._thread.start()
        self.loop = loop

    @staticmethod
    def _forever(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    @property
    def running(self) -> bool:
        return self.loop is not None

    def on_thread(self) -> bool:
        """Whether the caller is the loop's own thread (where ``run`` would wait on itself)."""
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None, *, cancel: bool = False) -> T:
        """Run ``coro`` on the loop and return its result. After ``timeout``
        seconds raises :class:`TimeoutError` naming the loop, the coroutine and
        the time waited; the coroutine goes on unless ``cancel``."""
        if self.loop is None or self.on_thread():
            coro.close()
            raise RuntimeError(f"{self.name}: " + ("not started" if self.loop is None else "run from its own thread"))
        what = getattr(coro, "__qualname__", type(coro).__name__)
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        step_aside()  # a worker waiting for a venue's answer lets the other symbols' turns go on
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as err:
            if cancel:
                future.cancel()
            raise TimeoutError(f"{self.name}: {what} gave no answer within {timeout:g} s") from err

    def call(self, who: str, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """A broker method (``who``: ``"alpaca broker"``) waiting on the loop:
        ``run`` with ``cancel``, and a :class:`BrokerError` naming the call
        when the loop is not running or the caller is the loop itself (an
        ``on_update`` calling back), a :class:`BrokerTimeout` naming the call
        and the wait when no answer comes or the engine stops first."""
        what = getattr(coro, "__name__", "call").lstrip("_")
        if self.loop is None or self.on_thread():
            coro.close()
            why = "not connected (connect() first)" if self.loop is None else "called from its own loop thread"
            raise BrokerError(f"{who}: {what}: {why}")
        try:
            return self.run(coro, timeout, cancel=True)
        except TimeoutError as err:
            raise BrokerTimeout(f"{who}: {what}: no answer within {timeout:g} s") from err
        except concurrent.futures.CancelledError as err:  # the engine stopped before the answer came
            raise BrokerTimeout(f"{who}: {what}: stopped before the answer came") from err

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, wait for its thread, close the loop."""
        loop, self.loop = self.loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        if not loop.is_running():
            loop.close()


async def cancel_all(tasks: list[asyncio.Task[Any]], timeout: float = 10.0) -> None:
    """Cancel tasks and wait until they are done, cancelling again if one
    swallowed it (``asyncio.wait_for`` can, before Python 3.12)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = [t for t in tasks if not t.done()]
        if not pending or asyncio.get_running_loop().time() > deadline:
            return
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=0.2)

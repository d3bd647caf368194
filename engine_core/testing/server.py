"""A local server for fake venues: an aiohttp application on 127.0.0.1,
served from a thread with its own event loop.

A fake venue subclasses :class:`BackgroundServer`, adds its routes in
``routes`` and closes the connections it holds open in
``close_connections``; every answer's ``Date`` header tells the venue's
clock (``venue_time_ns``: this machine's unless the fake keeps its own, as a
clock-skew fault plan does); ``hold_order_answer`` is a fault plan every
fake venue shares (an order's answer held until the test releases it, its
stream events going out first); a test starts it, points a config at ``http_url`` /
``ws_url``, and drives it from any thread, running code on the server's loop
with ``call``::

    class FakeVenue(BackgroundServer):
        def routes(self, router):
            router.add_get("/v1/time", self._time)

    with FakeVenue() as venue:
        config = {"rest_url": venue.http_url}

Needs aiohttp (a venue plugin's dependency, not the core's): import this
module from the plugin's own tests or fakes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, TypeVar

from aiohttp import web

from engine_core.live.loop import LoopThread

_S = TypeVar("_S", bound="BackgroundServer")


class BackgroundServer:
    """An aiohttp application on a free port of 127.0.0.1, in a thread of its own."""

    thread_name = "fake-server"
    CALL_TIMEOUT = 30.0  # seconds ``call`` (and so ``start`` and ``stop``) waits at most

    def __init__(self) -> None:
        self.port = 0
        self._io = LoopThread(self.thread_name)
        self._runner: web.AppRunner | None = None
        self.received: list[str] = []  # "METHOD /path" of every request that reached the server, any route
        self._answer_gate: threading.Event | None = None  # see hold_order_answer

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the application's routes."""
        raise NotImplementedError

    async def close_connections(self) -> None:
        """Close what the application holds open (websockets) before the server stops."""

    def venue_time_ns(self) -> int:
        """The venue's clock (ns), which every answer's ``Date`` header tells."""
        return time.time_ns()

    async def _date(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = formatdate(self.venue_time_ns() / 1e9, usegmt=True)

    def start(self: _S) -> _S:
        """Serve; returns once the port is bound (errors binding it are raised here)."""
        self._io.start()
        self.call(self._serve)
        return self

    def stop(self) -> None:
        """Close the connections, then the server, then its loop and thread."""
        if not self._io.running:
            return
        try:
            self.call(self._cleanup)
        finally:
            self._io.stop(self.CALL_TIMEOUT)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (a coroutine function or a plain one)
        on the server's loop and return its result."""
        if not self._io.running:
            raise RuntimeError(f"{type(self).__name__} is not running")

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return self._io.run(run(), self.CALL_TIMEOUT)

    def hold_order_answer(self) -> None:
        """Fault plan: new orders are placed and worked as usual (their stream
        events, a fill, go out), but their answers are held until
        :meth:`release_order_answer`: the venue's stream tells of an order
        before the order's own answer does."""
        self._answer_gate = threading.Event()

    def release_order_answer(self) -> None:
        gate, self._answer_gate = self._answer_gate, None
        if gate is not None:
            gate.set()

    async def order_answer_held(self) -> None:
        """A fake's order handler awaits this before it answers (see
        :meth:`hold_order_answer`; at most ``CALL_TIMEOUT`` seconds)."""
        gate = self._answer_gate
        deadline = time.monotonic() + self.CALL_TIMEOUT
        while gate is not None and not gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @web.middleware
    async def _note(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.received.append(f"{request.method} {request.path}")
        return await handler(request)

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._note])
        app.on_response_prepare.append(self._date)
        self.routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def _cleanup(self) -> None:
        await self.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()

"""engine_core.testing.server: the local server fake venues run on."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from aiohttp import web  # a venue plugin's dependency, installed with them

from engine_core.testing.server import BackgroundServer


class Echo(BackgroundServer):
    thread_name = "fake-echo"

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/hello/{name}", self._hello)

    async def _hello(self, request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def close_connections(self) -> None:
        self.closed = True


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read().decode()


def test_serves_on_localhost_runs_calls_on_its_loop_and_stops():
    with Echo() as server:
        assert server.http_url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.ws_url == f"ws://127.0.0.1:{server.port}"
        assert get(f"{server.http_url}/hello/venue") == "hello venue"

        async def where(suffix: str) -> str:
            return threading.current_thread().name + suffix

        assert server.call(where, "!") == "fake-echo!"  # a coroutine function, on the server's thread
        assert server.call(lambda: threading.current_thread().name) == "fake-echo"  # a plain one too
    assert server.closed  # close_connections ran before the server stopped
    with pytest.raises(urllib.error.URLError):
        get(f"{server.http_url}/hello/venue")
    with pytest.raises(RuntimeError, match="Echo is not running"):
        server.call(lambda: None)
    server.stop()  # stopping twice is harmless


def test_an_error_in_a_call_reaches_the_caller():
    def boom() -> None:
        raise ValueError("on the loop")

    with Echo() as server, pytest.raises(ValueError, match="on the loop"):
        server.call(boom)

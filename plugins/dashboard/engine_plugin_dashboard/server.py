"""The web app (aiohttp): the page, its JSON API, the stream of changes
(server-sent events), and the token check in front of all of them.

Routes (every one needs the token: ``?token=`` once, then the cookie):

=====================  ===================================================
GET  /                 the page (one HTML file, hash routes)
GET  /static/...       its scripts and styles; ``vendor/`` the npm libraries
GET  /api/fleet        every engine and symbol row
GET  /api/symbol       one symbol: row, bars, fill markers, events
GET  /api/stream       server-sent events: what changed, every 0.1 s at most
POST /api/control      pause / resume / flatten / reload (token header, same origin)
GET  /api/reports      every report and study under the reports folder
GET  /api/report       one report; /api/study one study; /api/shards a sharded run's shards as one
POST /api/trial        write a study trial's config; answers its command line
=====================  ===================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from engine_core import ConfigError
from engine_plugin_dashboard import reports, security
from engine_plugin_dashboard.fleet import Fleet
from engine_plugin_dashboard.live import ControlRefused, MqttLink

log = logging.getLogger("engine_plugin_dashboard")

STATIC = Path(__file__).parent / "static"
PUSH_EVERY = 0.1  # seconds between two pushes of changes: a row changes on the page within 0.2 s
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream
VENDOR = {
    "lightweight-charts.js": "lightweight-charts/dist/lightweight-charts.standalone.production.js",
}
_NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"


def vendor_file(name: str) -> Path | None:
    """A front-end library installed from npm: copied into the package by its
    build, or in the plugin's node_modules (an editable install after ``npm ci``)."""
    for path in (STATIC / "vendor" / name, _NODE_MODULES / VENDOR[name]):
        if path.is_file():
            return path
    return None


@dataclass
class Settings:
    token: str
    reports: Path
    mqtt: MqttLink | None = None
    journal: Path | None = None
    fleet: Fleet = field(default_factory=lambda: Fleet("none"))


class Client:
    """One open stream: the whole fleet, or one symbol's page."""

    def __init__(self, response: web.StreamResponse, engine: str | None, symbol: str | None) -> None:
        self.response = response
        self.engine = engine
        self.symbol = symbol

    def picks(self, changes: dict[str, Any]) -> dict[str, Any]:
        if self.symbol is None:  # the fleet page: rows, engines and the fleet's orders, fills and errors
            return {k: v for k, v in changes.items() if k not in ("bars", "events")}
        mine = lambda item: item["engine"] == self.engine and item["symbol"] == self.symbol  # noqa: E731
        return {
            **{k: v for k, v in changes.items() if k != "recent"},
            "rows": [r for r in changes["rows"] if mine(r)],
            "events": [e for e in changes["events"] if mine(e)],
            "bars": [b for b in changes["bars"] if mine(b)],
        }


class Hub:
    """Pushes the fleet's changes to every open stream."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.clients: set[Client] = set()
        self.closing = asyncio.Event()  # the server is stopping: the open streams end now

    async def run(self) -> None:
        last_tick = 0.0
        while True:
            await asyncio.sleep(PUSH_EVERY)
            now = time.monotonic()
            if now - last_tick >= 1.0:
                self.fleet.tick()
                last_tick = now
            if not self.clients:
                self.fleet.forget_changes()  # nobody to tell: build nothing
                continue
            changes = self.fleet.take_changes()
            if changes is None:
                continue
            whole = None
            for client in list(self.clients):
                if client.symbol is None:
                    whole = whole or _event(client.picks(changes))
                    data = whole
                else:
                    data = _event(client.picks(changes))
                await self._send(client, data)

    async def _send(self, client: Client, data: bytes) -> None:
        try:
            await client.response.write(data)
        except (ConnectionError, RuntimeError):
            self.clients.discard(client)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)


# ------------------------------------------------------------ the token


def _given_token(request: web.Request) -> str | None:
    return request.headers.get(security.HEADER) or request.cookies.get(security.COOKIE)


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    settings: Settings = request.app[SETTINGS]
    token = settings.token
    if request.method == "POST":
        # the header, not the cookie: another site's form can send the cookie, never the header
        if not security.same(token, request.headers.get(security.HEADER)):
            return _refuse(403, f"a control request needs the dashboard's token in the {security.HEADER} header")
        if not security.same_origin(request.headers.get("Origin"), request.host):
            return _refuse(403, f"control from another origin ({request.headers.get('Origin')}) is refused")
        return await handler(request)
    if request.method not in ("GET", "HEAD"):
        return _refuse(405, "only GET and POST")
    if security.same(token, request.query.get("token")):
        # first visit: keep the token in a cookie and take it out of the address bar
        response = web.HTTPFound(request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"}))
        response.set_cookie(security.COOKIE, token, httponly=True, samesite="Strict", path="/")
        raise response
    if not security.same(token, _given_token(request)):
        if "text/html" in request.headers.get("Accept", ""):  # a browser: a page, not JSON
            return web.Response(text=_NO_TOKEN_PAGE, status=401, content_type="text/html")
        return _refuse(401, "this dashboard needs its token: open the address `engine dashboard` printed")
    return await handler(request)


def _refuse(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


_NO_TOKEN_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>engine dashboard: token needed</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;line-height:1.5;color:#222}}
code{{background:#f0f0f0;padding:0 .25em;white-space:nowrap}}</style></head>
<body><h1>This dashboard needs its token</h1>
<p>Open the address the dashboard printed when it started, the one ending in
<code>/?token=...</code>: <code>engine dashboard</code> prints it on its terminal, and
<code>engine run</code> of a config with a <code>[dashboard]</code> table prints it on stderr.
The first visit keeps the token in a cookie of this browser.</p>
<p>Lost it? The token is the <code>--token</code> given, or <code>{security.TOKEN_ENV}</code>;
without either, a random one was made: look for the line <code>dashboard: open http://...</code>
in its terminal or log, or restart it to print a new address.</p>
</body></html>
"""


# ------------------------------------------------------------ pages and API


async def index(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    charts = "true" if vendor_file("lightweight-charts.js") else "false"
    html = html.replace("{{TOKEN}}", settings.token).replace("{{CHARTS}}", charts)
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name.startswith("vendor/"):
        path = vendor_file(name[len("vendor/") :]) if name[len("vendor/") :] in VENDOR else None
    else:
        path = STATIC / name if "/" not in name and (STATIC / name).is_file() else None
    if path is None or name == "index.html":
        raise web.HTTPNotFound(text=f"no file {name}")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def fleet_api(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    snap = settings.fleet.snapshot()
    snap["control"] = _control_state(settings)
    return web.json_response(snap)


def _control_state(settings: Settings) -> dict[str, Any]:
    """Per engine: None when it takes commands, else why not (the page greys the buttons out with it)."""
    out: dict[str, Any] = {}
    for name in settings.fleet.engines:
        if settings.mqtt is None:
            out[name] = "read-only: this view is read from the engine's journal"
        else:
            out[name] = settings.mqtt.refusal(name)
    return out


async def symbol_api(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    engine, symbol = request.query.get("engine", ""), request.query.get("symbol", "")
    detail = settings.fleet.symbol_detail(engine, symbol)
    if detail is None:
        return _refuse(404, f"no symbol {symbol!r} of engine {engine!r} seen yet")
    detail["control"] = _control_state(settings).get(engine)
    return web.json_response(detail)


async def stream(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    client = Client(response, request.query.get("engine"), request.query.get("symbol"))
    await response.write(b"retry: 1000\n\n")
    hub.clients.add(client)
    try:
        while client in hub.clients and not hub.closing.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(hub.closing.wait(), HEARTBEAT)
            await hub._send(client, b": alive\n\n")
    finally:
        hub.clients.discard(client)
    return response


async def control_api(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    try:
        body = await request.json()
        engine, command, symbol = body["engine"], body["command"], body.get("symbol")
        if not isinstance(engine, str) or not isinstance(command, str) or not isinstance(symbol, (str, type(None))):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return _refuse(400, 'expected JSON {"engine": "...", "command": "pause", "symbol": "..." or null}')
    if settings.mqtt is None:
        return _refuse(409, "read-only: this view is read from the engine's journal, which takes no commands")
    engines = sorted(settings.fleet.engines) if engine == "*" else [engine]
    replies = {}
    for name in engines:
        try:
            replies[name] = await settings.mqtt.command(name, command, symbol)
        except ControlRefused as err:
            replies[name] = {"ok": False, "error": str(err), "results": {}, "errors": {}}
    log.warning(
        "dashboard: %s %s on %s: %s",
        command,
        symbol or "every symbol",
        engine if engine != "*" else "every engine",
        "; ".join(f"{n}: {'ok' if r.get('ok') else r.get('error')}" for n, r in replies.items()),
    )
    return web.json_response({"replies": replies, "ok": all(r.get("ok") for r in replies.values())})


async def reports_api(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    return web.json_response(await asyncio.to_thread(reports.listing, settings.reports))


def _reading(fn: Callable[[Path, str], dict[str, Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        settings: Settings = request.app[SETTINGS]
        try:
            return web.json_response(await asyncio.to_thread(fn, settings.reports, request.query.get("id", "")))
        except reports.ReportError as err:
            return _refuse(404, str(err))

    return handler


async def trial_api(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    try:
        body = await request.json()
        path = await asyncio.to_thread(reports.trial_config, settings.reports, str(body["study"]), str(body["number"]))
    except (ValueError, KeyError, TypeError):
        return _refuse(400, 'expected JSON {"study": "...", "number": 3}')
    except reports.ReportError as err:
        return _refuse(404, str(err))
    except OSError as err:
        return _refuse(500, f"cannot write the trial's config: {err}")
    return web.json_response({"config": str(path), "command": f"engine run -c {path}"})


# ------------------------------------------------------------ the app


def make_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[SETTINGS] = settings
    app[HUB] = Hub(settings.fleet)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name:.+}", static)
    app.router.add_get("/api/fleet", fleet_api)
    app.router.add_get("/api/symbol", symbol_api)
    app.router.add_get("/api/stream", stream)
    app.router.add_post("/api/control", control_api)
    app.router.add_get("/api/reports", reports_api)
    app.router.add_get("/api/report", _reading(reports.report))
    app.router.add_get("/api/study", _reading(reports.study))
    app.router.add_get("/api/shards", _reading(reports.shards))
    app.router.add_post("/api/trial", trial_api)
    app.cleanup_ctx.append(_background)
    return app


def address(host: str, port: int, token: str) -> str:
    """The page's address with its token, as printed on the terminal."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


async def start_site(
    settings: Settings, host: str, port: int, *, where: str = "--port", handle_signals: bool = False
) -> tuple[web.AppRunner, int]:
    """Serve the app on ``host:port``; the runner (``stop_site`` it) and the
    port bound (``port`` 0: a free one). ConfigError naming ``where`` when
    the address cannot be listened on."""
    runner = web.AppRunner(make_app(settings), access_log=None, handle_signals=handle_signals)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise ConfigError(f"{where}: cannot listen on {host}:{port}: {err.strerror or err}") from None
    sockets = getattr(site._server, "sockets", None) or []  # the port chosen for port 0
    return runner, (sockets[0].getsockname()[1] if sockets else port)


async def stop_site(runner: web.AppRunner) -> None:
    """End the open streams, then stop serving (the port is free on return)."""
    runner.app[HUB].closing.set()
    await runner.cleanup()


async def _background(app: web.Application) -> AsyncIterator[None]:
    settings: Settings = app[SETTINGS]
    tasks = [asyncio.create_task(app[HUB].run())]
    if settings.mqtt is not None:
        tasks.append(asyncio.create_task(settings.mqtt.run()))
    elif settings.journal is not None:
        from engine_plugin_dashboard.journal_view import follow

        tasks.append(asyncio.create_task(follow(settings.journal, settings.fleet)))
    else:
        settings.fleet.set_link("none", "no live view: start with --mqtt HOST[:PORT] or --journal PATH")
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

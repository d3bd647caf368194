"""Binance's REST API: signed requests, a clock kept in sync with the
server, and the request-weight budget.

Signing (rest-api.md, "SIGNED Endpoint security"): the HMAC-SHA256 of the
exact query string sent, hex, appended as ``signature``; ``timestamp`` is
the local clock corrected by the offset measured with ``GET /api/v3/time``;
``recvWindow`` bounds how long the request stays valid (a -1021 resyncs).

Time: ``clock`` (a :class:`~engine_core.live.VenueClock`) is the venue's
time as its answers tell it (``serverTime``, every response's ``Date``
header); whether a kline has closed is decided by it, never by the local
clock, which may run ahead of Binance's.

Limits: every response's ``X-MBX-USED-WEIGHT-1M`` feeds the shared
:class:`~engine_core.live.RateLimiter`, which makes requests wait for the
next minute before the budget is spent; a 429 pauses every request for its
``Retry-After`` and the request is tried again; a 418 (the IP is banned)
stops with :class:`BinanceBanned`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from engine_core import BrokerError, BrokerTimeout, error_text
from engine_core.live import Backoff, RateLimiter, VenueClock
from engine_plugin_binance import wire

log = logging.getLogger("engine_plugin_binance")

WEIGHT_PER_MINUTE = 6000  # REQUEST_WEIGHT limit in exchangeInfo's rateLimits
INVALID_TIMESTAMP = -1021
NO_SUCH_ORDER = -2013


class BinanceError(BrokerError):
    """Binance answered with an error (``code`` and ``msg`` from its payload)."""

    def __init__(self, message: str, *, code: int = 0, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class BinanceBanned(BinanceError):
    """HTTP 418: the IP is banned for sending on after 429s."""


class Unanswered(BinanceError, BrokerTimeout):
    """A request was sent and no answer came (network error, timeout, 5xx): it
    may or may not have been executed."""


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` with ``secret``, hex (rest-api.md, HMAC Keys)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: dict[str, Any], secret: str) -> str:
    """The query string as sent: ``params`` percent-encoded in the order
    given, then ``signature`` of exactly that string."""
    query = urlencode(params)
    return f"{query}&signature={sign(secret, query)}"


class BinanceRest:
    """One aiohttp session to a Binance REST base URL, on the loop it was made on."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        api_secret: str = "",
        recv_window: int = 5000,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        retries: int = 4,
    ) -> None:
        self.base = base_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.recv_window = recv_window
        self.limiter = limiter or RateLimiter(WEIGHT_PER_MINUTE)
        self.offset_ms = 0
        self.clock = VenueClock()
        self.retries = retries
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self.loop = asyncio.get_running_loop()
            headers = {"X-MBX-APIKEY": self._key} if self._key else {}
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=self._timeout, connector=aiohttp.TCPConnector(limit=16)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # ---------------------------------------------------------------- time

    def now_ms(self) -> int:
        """Binance's clock as this machine estimates it, for signing (the local
        clock corrected by the offset the last sync measured)."""
        return int(time.time() * 1000) + self.offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to ``GET /api/v3/time`` (midpoint of the round trip)."""
        before = time.time()
        body = await self.request("GET", "/api/v3/time", weight=1)
        after = time.time()
        server = int(body["serverTime"])
        self.clock.observe(server * wire.MS)
        self.offset_ms = server - int((before + after) * 500)
        return self.offset_ms

    def closed(self, row: wire.KlineRow | wire.KlineText) -> bool:
        """The kline has closed by Binance's clock (its close time ``T`` is its last millisecond)."""
        return self.clock.closed((row.T + 1) * wire.MS)

    # ---------------------------------------------------------------- requests

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        weight: int = 1,
        signed: bool = False,
        raw: bool = False,
        retry_unanswered: bool | None = None,
    ) -> Any:
        """Send a request and return its decoded JSON (its bytes with ``raw``).

        GETs are retried on network errors and 5xx (with backoff); other
        methods are not (``Unanswered``): the caller resolves them. 429s are
        retried after ``Retry-After`` for every method (Binance did not
        execute a rate-limited request). A signed request refused for its
        timestamp (-1021) is retried once after a clock sync."""
        if retry_unanswered is None:
            retry_unanswered = method == "GET"
        backoff = Backoff(0.2, 5.0)
        resynced = False
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(weight)
            query = ""
            if signed:
                p = dict(params or {})
                p["recvWindow"] = self.recv_window
                p["timestamp"] = self.now_ms()
                query = signed_query(p, self._secret)
            elif params:
                query = urlencode(params)
            url = URL(f"{self.base}{path}?{query}" if query else f"{self.base}{path}", encoded=True)
            try:
                async with self._http().request(method, url) as resp:
                    body = await resp.read()
                    status = resp.status
                    headers = resp.headers
                    self.clock.observe_date(headers.get("Date"))
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                timed_out = isinstance(err, asyncio.TimeoutError)
                why = f"none within {self._timeout.total:g} s" if timed_out else error_text(err)
                what = f"{method} {path}: no answer ({why})"
                if retry_unanswered and attempt <= self.retries:
                    log.warning("binance: %s; retrying", what)
                    await backoff.wait()
                    continue
                raise Unanswered(f"Binance {what}") from err
            used = headers.get("X-MBX-USED-WEIGHT-1M")
            if used is not None and used.isdigit():
                self.limiter.observe(int(used))
            if status == 418:
                after = headers.get("Retry-After", "?")
                self.limiter.pause(_seconds(headers.get("Retry-After"), 60.0))  # nothing more until the ban ends
                raise BinanceBanned(
                    f"Binance banned this IP (HTTP 418) for {after}s after repeated rate-limit breaches; "
                    f"stopping ({method} {path})",
                    status=418,
                )
            if status == 429:
                wait = _seconds(headers.get("Retry-After"), 1.0)
                log.warning("binance: rate limited (429) on %s %s; waiting %.0fs", method, path, wait)
                self.limiter.pause(wait)
                if attempt <= self.retries:
                    continue
                raise BinanceError(f"Binance {method} {path}: still rate limited after {attempt} tries", status=429)
            if status >= 500:
                what = f"{method} {path}: HTTP {status}, execution status unknown"
                if retry_unanswered and attempt <= self.retries:
                    await backoff.wait()
                    continue
                raise Unanswered(f"Binance {what}", status=status)
            if status >= 400:
                code, msg = _error(body)
                if code == INVALID_TIMESTAMP and signed and not resynced:
                    resynced = True
                    await self.sync_time()
                    continue
                raise BinanceError(
                    f"Binance {method} {path}: {msg} (code {code}, HTTP {status})", code=code, status=status
                )
            return body if raw else wire.decode(body)


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _error(body: bytes) -> tuple[int, str]:
    try:
        payload = wire.decode(body)
        return int(payload.get("code", 0)), str(payload.get("msg", ""))
    except (wire.DecodeError, AttributeError, TypeError, ValueError):
        return 0, body[:200].decode("utf-8", "replace")


# ------------------------------------------------------------ klines

KLINES_LIMIT = 1000  # Binance's maximum per request
KLINES_WEIGHT = 2


async def klines_after(
    rest: BinanceRest, symbol: str, interval: str, start_ms: int, end_ms: int | None = None
) -> list[wire.KlineRow]:
    """Closed klines of ``symbol`` from ``start_ms`` (open time, included) to
    ``end_ms`` (excluded; None: up to now), paged by ``startTime``. Closed by
    Binance's clock at the answer: the kline in progress is left to the stream."""
    out: list[wire.KlineRow] = []
    cursor = start_ms
    while True:
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "startTime": cursor, "limit": KLINES_LIMIT}
        if end_ms is not None:
            params["endTime"] = end_ms - 1
        rows = wire.decode_klines(await rest.request("GET", "/api/v3/klines", params, weight=KLINES_WEIGHT, raw=True))
        closed = [r for r in rows if rest.closed(r) and (end_ms is None or r.t < end_ms)]
        out += closed
        if len(rows) < KLINES_LIMIT or len(closed) < len(rows):
            return out
        cursor = rows[-1].t + 1


async def klines_before(rest: BinanceRest, symbol: str, interval: str, count: int) -> list[wire.KlineRow]:
    """The last ``count`` closed klines of ``symbol``, oldest first (paged
    backwards by ``endTime``)."""
    out: list[wire.KlineRow] = []
    end: int | None = None
    while len(out) < count:
        limit = min(KLINES_LIMIT, count - len(out) + 1)
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if end is not None:
            params["endTime"] = end
        rows = wire.decode_klines(await rest.request("GET", "/api/v3/klines", params, weight=KLINES_WEIGHT, raw=True))
        closed = [r for r in rows if rest.closed(r)]
        if not closed:
            break
        out = closed + out
        if len(rows) < limit:
            break
        end = closed[0].t - 1
    return out[-count:] if count else []

"""HTTP to Alpaca's REST APIs (market data v2 and trading v2), with aiohttp.

One :class:`AlpacaRest` per base URL and event loop: it sends the key
headers, keeps to the rate limit (Alpaca answers ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``, 200 requests a minute
by default) through the shared :class:`~engine_core.live.RateLimiter`, waits
out a 429, and retries reads (GET) on transport errors and 5xx with backoff.
Writes (POST, DELETE) are never retried here: the broker resolves an
unanswered order by its client id instead. Every answer's ``Date`` header
feeds ``clock`` (:class:`~engine_core.live.VenueClock`), Alpaca's time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from engine_core import BrokerError, BrokerTimeout, error_text
from engine_core.live import Backoff, RateLimiter, VenueClock
from engine_plugin_alpaca.wire import ApiError, api_error

DEFAULT_LIMIT = 200  # requests per minute (Alpaca's default for trading and market data)


class AlpacaHttpError(BrokerError):
    """An error answer (``error`` holds status, Alpaca's code and message)."""

    def __init__(self, what: str, error: ApiError) -> None:
        super().__init__(f"{what}: {error}")
        self.error = error


class AlpacaUnreachable(BrokerTimeout):
    """No answer: a transport error or a timeout."""


class AlpacaRest:
    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        limiter: RateLimiter | None = None,
        clock: VenueClock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}
        self.timeout = timeout
        self.retries = retries
        self.limiter = limiter or RateLimiter(DEFAULT_LIMIT, 60.0)
        self.clock = clock or VenueClock()
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _observe(self, headers: Any) -> None:
        remaining, limit, reset = (
            headers.get(h) for h in ("X-RateLimit-Remaining", "X-RateLimit-Limit", "X-RateLimit-Reset")
        )
        try:
            if limit is not None and int(limit) > 0:
                self.limiter.limit = int(limit)
            if remaining is not None:
                reset_at = float(reset) if reset not in (None, "", "0") else None
                self.limiter.observe(max(0, self.limiter.limit - int(remaining)), reset_at)
        except ValueError:
            pass

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one). Raises AlpacaHttpError
        for an error answer, AlpacaUnreachable when none came."""
        backoff = Backoff(0.25, 5.0)
        attempts = self.retries + 1 if method == "GET" else 1
        what = f"{method} {path}"
        for attempt in range(attempts):
            await self.limiter.acquire()
            session = await self.session()
            try:
                async with session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": "application/json"} if body is not None else None,
                ) as resp:
                    self.requests += 1
                    self.clock.observe_date(resp.headers.get("Date"))
                    self._observe(resp.headers)
                    text = await resp.text()
                    data = _json(text)
                    if resp.status < 300:
                        return data
                    err = api_error(resp.status, data if data is not None else text)
                    if resp.status == 429:
                        self.limiter.pause(_retry_after(resp.headers))
                        if attempt + 1 < attempts or method == "GET":
                            continue
                    elif resp.status >= 500 and attempt + 1 < attempts:
                        await backoff.wait()
                        continue
                    raise AlpacaHttpError(what, err)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if attempt + 1 < attempts:
                    await backoff.wait()
                    continue
                why = (
                    f"no answer within {self.timeout:g} s" if isinstance(exc, asyncio.TimeoutError) else error_text(exc)
                )
                raise AlpacaUnreachable(f"{what}: {why}") from exc
        raise AlpacaUnreachable(f"{what}: no answer after {attempts} attempts")

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params)


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _retry_after(headers: Any) -> float:
    for name in ("Retry-After", "X-RateLimit-Reset"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if name == "X-RateLimit-Reset" and seconds > 1e9:  # a Unix time
                import time

                seconds -= time.time()
            return max(0.0, min(seconds, 60.0))
    return 1.0

"""What every live venue shares, written once and venue-neutral.

Venue plugins (Binance, Alpaca) are thin adapters over these pieces; each
takes plain values and callables, so none of them imports a network library:

=================  ============================================================
module             holds
=================  ============================================================
``backoff``        :class:`Backoff`: exponential reconnect delays with jitter
``sequencer``      :class:`BarSequencer`: per-symbol order of bars from a stream
                   and from backfills (drop duplicates and out-of-order bars,
                   detect gaps, deliver each bar once, in time order)
``ratelimit``      :class:`RateLimiter`: a request-weight budget per window,
                   fed by the venue's usage headers, with ``Retry-After`` pauses
``problems``       :class:`WireProblems`: bad wire data counted per kind and
                   logged once per kind
``download``       :func:`download_bars`: paged history into a CSV file the
                   ``csv`` source reads, resumable, with a progress bar, moved
                   into place only once it holds a bar
``clock``          :class:`VenueClock`: the venue's time from its own answers
                   (server time, ``Date`` headers), which decides when a bar
                   has closed, never the local clock
``loop``           :class:`LoopThread` (a venue broker's loop on a thread of
                   its own), :func:`cancel_all`
``urls``           ``HttpBaseUrl``, ``WsBaseUrl``: base-URL config keys
``tracker``        :class:`VenueOrders`: a venue broker's orders, each update
                   reported once (ack, fills, end), delivered on a thread of
                   its own; orders of unknown fate asked for until known;
                   sends held back for the rate limit, none after stop
=================  ============================================================
"""

from __future__ import annotations

from engine_core.live.backoff import Backoff
from engine_core.live.clock import VenueClock, http_date_ns
from engine_core.live.download import CSV_HEADER, DownloadResult, Row, download_bars, format_ts, last_csv_ts
from engine_core.live.loop import LoopThread, cancel_all
from engine_core.live.problems import WireProblems
from engine_core.live.ratelimit import RateLimited, RateLimiter
from engine_core.live.sequencer import BarSequencer
from engine_core.live.tracker import VenueOrder, VenueOrders
from engine_core.live.urls import HttpBaseUrl, WsBaseUrl

__all__ = [
    "CSV_HEADER",
    "Backoff",
    "BarSequencer",
    "DownloadResult",
    "HttpBaseUrl",
    "LoopThread",
    "RateLimited",
    "RateLimiter",
    "Row",
    "VenueClock",
    "VenueOrder",
    "VenueOrders",
    "WireProblems",
    "WsBaseUrl",
    "cancel_all",
    "download_bars",
    "format_ts",
    "http_date_ns",
    "last_csv_ts",
]

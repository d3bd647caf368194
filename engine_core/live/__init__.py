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
                   ``csv`` source reads, resumable, with a progress bar
``loop``           :class:`LoopThread`: a venue broker's asyncio loop on its
                   own thread; :func:`cancel_all`
``tracker``        :class:`VenueOrders`: a venue broker's orders, each update
                   reported once (ack, fills, end), delivered on a thread of
                   its own; orders of unknown fate asked for until known
=================  ============================================================
"""

from __future__ import annotations

from engine_core.live.backoff import Backoff
from engine_core.live.download import CSV_HEADER, DownloadResult, download_bars, last_csv_ts
from engine_core.live.loop import LoopThread, cancel_all
from engine_core.live.problems import WireProblems
from engine_core.live.ratelimit import RateLimited, RateLimiter
from engine_core.live.sequencer import BarSequencer
from engine_core.live.tracker import VenueOrder, VenueOrders

__all__ = [
    "CSV_HEADER",
    "Backoff",
    "BarSequencer",
    "DownloadResult",
    "LoopThread",
    "RateLimited",
    "RateLimiter",
    "VenueOrder",
    "VenueOrders",
    "WireProblems",
    "cancel_all",
    "download_bars",
    "last_csv_ts",
]

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
=================  ============================================================
"""

from __future__ import annotations

from engine_core.live.backoff import Backoff
from engine_core.live.download import CSV_HEADER, DownloadResult, download_bars, last_csv_ts
from engine_core.live.problems import WireProblems
from engine_core.live.ratelimit import RateLimited, RateLimiter
from engine_core.live.sequencer import BarSequencer

__all__ = [
    "CSV_HEADER",
    "Backoff",
    "BarSequencer",
    "DownloadResult",
    "RateLimited",
    "RateLimiter",
    "WireProblems",
    "download_bars",
    "last_csv_ts",
]

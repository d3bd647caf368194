"""O(1) streaming indicators with their own incremental state, by family as
NautilusTrader groups its indicators: ``averages`` (SMA, EMA, WMA),
``momentum`` (RSI, MACD, STOCH), ``volatility`` (ATR, BBANDS) and ``volume``
(VWAP). ``base`` holds their base classes, ``recurrences`` the TA-Lib
recurrences they continue exactly.

Each follows TA-Lib's C code step by step (same seeding, same order of
floating-point operations), so ``update`` reproduces TA-Lib's numbers.
``update_many`` never restarts anything: it runs exactly the operations
``update`` runs, in the same order, so its values do not depend on where
chunks start. Once an indicator is ready, ``_bulk`` continues it over the
rest of the chunk vectorised (``np.cumsum`` is a sequential accumulate, so a
running sum keeps TA-Lib's order of additions) or inside TA-Lib's own C loop
seeded with the indicator's state; before that, ``_push`` runs bar by bar.
"""

from __future__ import annotations

from engine_plugin_indicators.streaming.averages import EmaStream, SmaStream, WmaStream
from engine_plugin_indicators.streaming.base import O1Indicator
from engine_plugin_indicators.streaming.momentum import MacdStream, RsiStream, StochStream
from engine_plugin_indicators.streaming.volatility import AtrStream, BbandsStream
from engine_plugin_indicators.streaming.volume import VwapStream

O1_CLASSES: dict[str, type[O1Indicator]] = {
    "SMA": SmaStream,
    "EMA": EmaStream,
    "WMA": WmaStream,
    "RSI": RsiStream,
    "MACD": MacdStream,
    "BBANDS": BbandsStream,
    "ATR": AtrStream,
    "STOCH": StochStream,
    "VWAP": VwapStream,
}

__all__ = [
    "O1_CLASSES",
    "O1Indicator",
    "AtrStream",
    "BbandsStream",
    "EmaStream",
    "MacdStream",
    "RsiStream",
    "SmaStream",
    "StochStream",
    "VwapStream",
    "WmaStream",
]

"""Symbol filters from ``GET /api/v3/exchangeInfo``, applied before an order
is sent: quantities are rounded down to ``LOT_SIZE``'s step (``MARKET_LOT_SIZE``
for market orders when it sets one), prices to ``PRICE_FILTER``'s tick, and
an order that still breaks a filter is refused naming the filter."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from engine_core import BrokerError

_ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    base: str
    quote: str
    status: str = "TRADING"
    # One field per value of the exchangeInfo filters, flat as Binance lists
    # them (0: the filter is absent); alike in shape, each checked its own way.
    step: Decimal = _ZERO
    min_qty: Decimal = _ZERO
    max_qty: Decimal = _ZERO
    market_step: Decimal = _ZERO
    market_min_qty: Decimal = _ZERO
    market_max_qty: Decimal = _ZERO
    tick: Decimal = _ZERO
    min_price: Decimal = _ZERO
    max_price: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    max_notional: Decimal = _ZERO
    min_notional_market: bool = True
    max_notional_market: bool = False

    @classmethod
    def from_exchange_info(cls, sym: dict[str, Any]) -> SymbolRules:
        kw: dict[str, Any] = {}
        for f in sym.get("filters", []):
            kind = f.get("filterType")
            if kind == "LOT_SIZE":
                kw.update(step=Decimal(f["stepSize"]), min_qty=Decimal(f["minQty"]), max_qty=Decimal(f["maxQty"]))
            elif kind == "MARKET_LOT_SIZE":
                kw.update(
                    market_step=Decimal(f["stepSize"]),
                    market_min_qty=Decimal(f["minQty"]),
                    market_max_qty=Decimal(f["maxQty"]),
                )
            elif kind == "PRICE_FILTER":
                kw.update(
                    tick=Decimal(f["tickSize"]), min_price=Decimal(f["minPrice"]), max_price=Decimal(f["maxPrice"])
                )
            elif kind == "NOTIONAL":
                kw.update(
                    min_notional=Decimal(f.get("minNotional", "0")),
                    max_notional=Decimal(f.get("maxNotional", "0")),
                    min_notional_market=bool(f.get("applyMinToMarket", True)),
                    max_notional_market=bool(f.get("applyMaxToMarket", False)),
                )
            elif kind == "MIN_NOTIONAL" and "min_notional" not in kw:
                kw.update(
                    min_notional=Decimal(f["minNotional"]), min_notional_market=bool(f.get("applyToMarket", True))
                )
        return cls(sym["symbol"], sym["baseAsset"], sym["quoteAsset"], sym.get("status", "TRADING"), **kw)

    def round_qty(self, qty: Decimal, market: bool = False) -> Decimal:
        """``qty`` rounded down to the lot step."""
        step = self.market_step if market and self.market_step > 0 else self.step
        if step <= 0:
            return qty
        return (qty / step).to_integral_value(ROUND_DOWN) * step

    def round_price(self, price: Decimal) -> Decimal:
        """``price`` rounded to the nearest tick."""
        if self.tick <= 0:
            return price
        return (price / self.tick).to_integral_value(ROUND_HALF_EVEN) * self.tick

    def check(self, qty: Decimal, price: Decimal | None, ref_price: Decimal | None, market: bool) -> None:
        """Refuse (BrokerError naming the filter) an order that breaks a filter.
        ``ref_price`` stands in for a market order's price in the notional checks."""
        s = self.symbol
        if self.status != "TRADING":
            raise BrokerError(f"{s}: not trading on Binance (status {self.status})")
        lo, hi = (self.min_qty, self.max_qty)
        name = "LOT_SIZE"
        if market and self.market_step > 0:
            lo, hi, name = self.market_min_qty, self.market_max_qty, "MARKET_LOT_SIZE"
        if qty <= 0 or qty < lo:
            raise BrokerError(f"{s}: quantity {qty} below {name} minQty {lo} (after rounding to the step)")
        if hi > 0 and qty > hi:
            raise BrokerError(f"{s}: quantity {qty} above {name} maxQty {hi}")
        if price is not None:
            if self.min_price > 0 and price < self.min_price:
                raise BrokerError(f"{s}: price {price} below PRICE_FILTER minPrice {self.min_price}")
            if self.max_price > 0 and price > self.max_price:
                raise BrokerError(f"{s}: price {price} above PRICE_FILTER maxPrice {self.max_price}")
        at = price if price is not None else ref_price
        if at is None:
            return
        notional = qty * at
        if self.min_notional > 0 and (not market or self.min_notional_market) and notional < self.min_notional:
            raise BrokerError(f"{s}: notional {notional:f} below NOTIONAL minNotional {self.min_notional}")
        if self.max_notional > 0 and (not market or self.max_notional_market) and notional > self.max_notional:
            raise BrokerError(f"{s}: notional {notional:f} above NOTIONAL maxNotional {self.max_notional}")

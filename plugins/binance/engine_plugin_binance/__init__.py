"""Binance spot for the engine: the ``binance`` source and broker, and ``engine download binance``."""

"""Alpaca for the engine: the ``alpaca`` data source, the ``alpaca`` broker and
``engine download alpaca``."""

"""engine_core: the small core of a plugin-based trading engine."""

__version__ = "0.1.0"

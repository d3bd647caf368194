"""Where an engine's recordings live and whether a run records (no pyarrow
import: the runner asks this of every run)."""

from __future__ import annotations

from pathlib import Path

from engine_core.config import EngineSection


def recordings_dir(base_dir: Path, engine: EngineSection) -> Path:
    """Where an engine's recordings live: ``<state_dir>/recordings/<engine id>``."""
    return base_dir / engine.state_dir / "recordings" / engine.id


def recording_enabled(engine: EngineSection) -> bool:
    """``[engine] record``: on by default for live runs, never for backtests."""
    return engine.mode == "live" and engine.record is not False


__all__ = ["recording_enabled", "recordings_dir"]

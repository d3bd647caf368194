"""``engine report merge``: one report over the reports of several shards of a run.

Each shard (``engine run --shard K/N``) writes its own report directory
(``<report.dir>-KofN``). Symbols belong to exactly one shard, so the merged
per-symbol figures are each shard's own; the total is recomputed over the
total equity curve of all shards (each shard's ``equity.csv`` less the
starting cash, forward-filled on the union of their times, as
:mod:`engine_core.report.metrics` does for symbols) and over all round trips
(the shards' ``trades.csv``). The equity files carry 10 significant digits,
so the merged total is exact to those; exposure is not in the files, so the
merged total has none (its shards' and symbols' figures do).
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.errors import ConfigError
from engine_core.model import RoundTrip, Side
from engine_core.report.candles import CANDLES_HEADER
from engine_core.report.files import write_report
from engine_core.report.metrics import summarize
from engine_core.results import RunResult, SymbolResult


def _ns(texts: list[str]) -> np.ndarray:
    return np.array([t.rstrip("Z") for t in texts], dtype="datetime64[ns]").astype(np.int64)


def _read(folder: Path) -> tuple[dict[str, Any], SymbolResult]:
    """A shard's summary, and its total curve and round trips as one pseudo-symbol."""
    missing = [name for name in ("summary.json", "equity.csv", "trades.csv") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder}: no {', '.join(missing)}: not a report folder that engine run wrote")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        with (folder / "equity.csv").open(newline="", encoding="utf-8") as f:
            curve = list(csv.DictReader(f))
        with (folder / "trades.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder}: cannot read the report: {err}") from None
    start_cash = float(summary["start_cash"])
    trades = [
        RoundTrip(
            r["symbol"],
            Side(r["side"]),
            Decimal(r["qty"]),
            int(entry),
            Decimal(r["entry_price"]),
            int(exit_),
            Decimal(r["exit_price"]),
            Decimal(r["pnl"]),
            Decimal(r["commission"]),
            r["exit_reason"],
        )
        for r, entry, exit_ in zip(rows, _ns([r["entry_time"] for r in rows]), _ns([r["exit_time"] for r in rows]))
    ]
    ts = _ns([row["time"] for row in curve])
    pnl = np.array([float(row["equity"]) for row in curve]) - start_cash
    return summary, SymbolResult(folder.name, ts, pnl, np.zeros(len(ts), bool), trades=trades)


def merge_reports(folders: list[Path], out: Path) -> dict[str, Any]:
    """Write one report into ``out`` from the shard reports in ``folders``; return its summary."""
    shards = [_read(Path(folder)) for folder in folders]
    summaries = [s for s, _ in shards]
    first = summaries[0]
    for folder, s in zip(folders, summaries):
        if (s["strategy"], s["start_cash"], s["params"]) != (first["strategy"], first["start_cash"], first["params"]):
            raise ConfigError(f"{folder}: another run than {folders[0]} (strategy, cash or parameters differ)")
    per_symbol: dict[str, Any] = {}
    for folder, s in zip(folders, summaries):
        for symbol, figures in s["per_symbol"].items():
            if symbol in per_symbol:
                raise ConfigError(f"{folder}: symbol {symbol} is in two of the reports; merge each shard once")
            per_symbol[symbol] = figures
    result = RunResult(
        first["strategy"],
        first["mode"],
        Decimal(str(first["start_cash"])),
        {line.symbol: line for _, line in shards},
        source_stats={str(folder): s["source"] for folder, s in zip(folders, summaries)},
        params=first["params"],
    )
    summary = summarize(result)
    total = summary["total"]
    totals = [s["total"] for s in summaries]
    total |= {
        "bars": sum(t["bars"] for t in totals),
        "orders": sum(t["orders"] for t in totals),
        "fills": sum(t["fills"] for t in totals),
        "halted": {k: v for t in totals for k, v in t["halted"].items()},
        "errors": [e for t in totals for e in t["errors"]],
        "exposure": None,
    }
    summary |= {"symbols": list(per_symbol), "per_symbol": per_symbol, "merged_from": [str(f) for f in folders]}
    write_report(result, summary, out)
    _merge_candles(folders, out / "candles.csv")
    return summary


def _merge_candles(folders: list[Path], path: Path) -> None:
    """``candles.csv``: every shard's candles (their symbols are disjoint),
    in the order the shards were named. A shard written before candles.csv
    existed adds none."""
    with path.open("wb") as out:
        out.write(CANDLES_HEADER)
        for folder in folders:
            try:
                data = (Path(folder) / "candles.csv").read_bytes()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ConfigError(f"{folder}: cannot read the report: {err}") from None
            if not data.startswith(CANDLES_HEADER):
                raise ConfigError(f"{folder}/candles.csv: not the candles file engine run writes (its header differs)")
            out.write(data[len(CANDLES_HEADER) :])


def default_output(folders: list[Path]) -> Path:
    """Where a merge writes by default: the shards' directory name less ``-KofN``."""
    name = Path(folders[0]).name
    stem, dash, tail = name.rpartition("-")
    if dash and "of" in tail and tail.replace("of", "").isdigit():
        return Path(folders[0]).with_name(stem)
    return Path(folders[0]).with_name(f"{name}-merged")


def refuse_other_report(out: Path, folders: list[Path]) -> None:
    """Refuse a default output that holds something else than a merge of
    these shards (an unsharded run's report of the same name, say): the
    merge would overwrite it. ``-o`` naming it overwrites on purpose."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        merged_from = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("merged_from")
    except (OSError, ValueError, AttributeError):
        merged_from = None
    if isinstance(merged_from, list) and sorted(Path(str(f)).name for f in merged_from) == sorted(
        Path(f).name for f in folders
    ):
        return
    raise ConfigError(
        f"{out}: holds another report than a merge of these shards; "
        "name the merge's folder with -o (naming this one overwrites it)"
    )


__all__ = ["default_output", "merge_reports", "refuse_other_report"]

"""The report browser's data: every backtest report (a folder with
``summary.json``, ``trades.csv``, ``equity.csv`` (and ``candles.csv``), as ``engine run`` writes
them) and every optimisation study (a folder with ``trials.csv`` and
``best.toml``, as ``engine optimize`` writes them) under the reports folder.

A folder is named by its path relative to the reports folder; a path that
leaves it is refused. A file that cannot be read is listed with what is wrong,
never a crash of the page.
"""

from __future__ import annotations

import csv
import json
import math
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_DEPTH = 4  # folder levels searched under the reports folder
CURVE_POINTS = 2000  # points of an equity curve sent to the page, at most
TRADES_SHOWN = 5000  # round trips sent to the page, at most
FIGURES = ("total_return", "sharpe", "sortino", "max_drawdown", "trades", "win_rate", "profit_factor", "pnl")


SHARD = re.compile(r"(?P<run>.+)-(?P<k>\d+)of(?P<n>\d+)")  # engine run --shard K/N writes <report.dir>-KofN


class ReportError(Exception):
    """A report or study the page asked for that cannot be shown; the text says why."""


def _walk(root: Path, name: str) -> list[Path]:
    found: list[Path] = []
    for depth in range(MAX_DEPTH + 1):
        found += root.glob("/".join(["*"] * depth + [name]))
    return sorted(found)


def _when(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def listing(root: Path) -> dict[str, Any]:
    """Every report and study under ``root``, with their headline figures."""
    if not root.is_dir():
        return {"root": str(root), "missing": True, "reports": [], "studies": []}
    reports = []
    for path in _walk(root, "summary.json"):
        entry: dict[str, Any] = {"id": path.parent.relative_to(root).as_posix() or ".", "date": _when(path)}
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            total = summary.get("total") or {}
            entry.update({k: total.get(k) for k in FIGURES})
            entry.update(
                strategy=summary.get("strategy"),
                symbols=summary.get("symbols") or [],
                first_bar=summary.get("first_bar"),
                last_bar=summary.get("last_bar"),
            )
            if summary.get("merged_from"):  # engine report merge wrote it
                entry["merged_from"] = [Path(f).name for f in summary["merged_from"]]
        except (OSError, ValueError, AttributeError) as err:
            entry["problem"] = f"summary.json: {err}"
        reports.append(entry)
    studies = []
    for path in _walk(root, "trials.csv"):
        entry = {"id": path.parent.relative_to(root).as_posix() or ".", "date": _when(path)}
        try:
            trials = _rows(path)
            entry["trials"] = len(trials)
            done = [t for t in trials if t.get("state") == "complete" and _num(t.get("value")) is not None]
            entry["best"] = max((_num(t["value"]) for t in done), default=None)  # type: ignore[type-var]
        except (OSError, ValueError) as err:
            entry["problem"] = f"trials.csv: {err}"
        studies.append(entry)
    return {"root": str(root), "missing": False, "reports": reports, "studies": studies, "runs": runs(reports)}


def runs(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sharded runs among ``reports``: each run's shards (``<run>-KofN``),
    the shards not found, and the report ``engine report merge`` made of them."""
    found: dict[tuple[str, int], dict[int, str]] = {}
    for entry in reports:
        m = SHARD.fullmatch(entry["id"])
        if m and 1 <= int(m["k"]) <= int(m["n"]):
            entry["shard"] = f"{m['k']}/{m['n']}"
            found.setdefault((m["run"], int(m["n"])), {})[int(m["k"])] = entry["id"]
    ids = {entry["id"] for entry in reports}
    return [
        {
            "run": run,
            "n": n,
            "shards": [shards[k] for k in sorted(shards)],
            "missing": [k for k in range(1, n + 1) if k not in shards],
            "merged": run if run in ids else None,
        }
        for (run, n), shards in sorted(found.items())
    ]


def shards(root: Path, run: str) -> dict[str, Any]:
    """A sharded run's shards as one report, as ``engine report merge`` makes it
    (figures over the shards' total equity and all their trades), with every
    shard's candles and a line per shard."""
    from engine_core import EngineError
    from engine_core.report.merge import merge_reports

    folder(root, run.rpartition("/")[0] or ".")  # (checks the name)
    found = [r for r in runs(listing(root)["reports"]) if r["run"] == run]
    if not found:
        raise ReportError(f"no shard reports of {run!r} (<run>-KofN) under {root}")
    group = max(found, key=lambda r: len(r["shards"]))
    with tempfile.TemporaryDirectory(prefix="dashboard-") as tmp:
        try:
            merge_reports([folder(root, ident) for ident in group["shards"]], Path(tmp) / "merged")
        except EngineError as err:
            raise ReportError(f"{run}: the shards cannot be shown together: {err}") from None
        out = report(Path(tmp), "merged")
    out["id"] = run
    out["problems"] = [p for p in out["problems"] if not p.startswith("candles.csv")]
    out["candles"], out["bars_per_candle"] = {}, {}
    lines = []
    for ident in group["shards"]:
        one = report(root, ident)
        out["candles"].update(one["candles"])
        out["bars_per_candle"].update(one["bars_per_candle"])
        total = one["summary"].get("total") or {}
        lines.append(
            {"id": ident, "symbols": one["summary"].get("symbols") or [], **{k: total.get(k) for k in FIGURES}}
        )
    out["shards"] = lines
    out["missing"] = group["missing"]
    out["n"] = group["n"]
    return out


def folder(root: Path, ident: str) -> Path:
    """The folder ``ident`` names under ``root``; ReportError for one outside it or missing."""
    if not re.fullmatch(r"[\w.\-/ ]+", ident) or ".." in ident.split("/"):
        raise ReportError(f"not a report name: {ident!r}")
    path = (root / ident).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ReportError(f"not under the reports folder: {ident!r}")
    if not path.is_dir():
        raise ReportError(f"no report {ident!r} under {root}")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def report(root: Path, ident: str) -> dict[str, Any]:
    """One report: its summary, equity and drawdown curves (thinned to
    CURVE_POINTS, every extreme kept), and its trades."""
    path = folder(root, ident)
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReportError(f"{ident}/summary.json: {err}") from None
    equity: list[list[float]] = []
    drawdown: list[list[float]] = []
    problems = []
    try:
        rows = _rows(path / "equity.csv")
        dds = [float(r["drawdown"]) for r in rows]
        step = max(1, math.ceil(len(rows) / CURVE_POINTS))
        keep = set(range(0, len(rows), step)) | ({len(rows) - 1, dds.index(max(dds))} if rows else set())
        for i in sorted(keep):
            t = _epoch(rows[i]["time"])
            equity.append([t, float(rows[i]["equity"])])
            drawdown.append([t, -dds[i] * 100])
    except (OSError, ValueError, KeyError) as err:
        problems.append(f"equity.csv: {err}")
    trades: list[dict[str, str]] = []
    count = 0
    try:
        all_trades = _rows(path / "trades.csv")
        count = len(all_trades)
        trades = all_trades[:TRADES_SHOWN]
    except (OSError, ValueError) as err:
        problems.append(f"trades.csv: {err}")
    markers = []
    for trade in trades:
        try:
            markers.append(
                {
                    "time": _epoch(trade["entry_time"]),
                    "kind": "entry",
                    "side": trade["side"],
                    "symbol": trade["symbol"],
                    "price": float(trade["entry_price"]),
                }
            )
            markers.append(
                {
                    "time": _epoch(trade["exit_time"]),
                    "kind": "exit",
                    "side": trade["side"],
                    "symbol": trade["symbol"],
                    "price": float(trade["exit_price"]),
                    "pnl": trade["pnl"],
                }
            )
        except (KeyError, ValueError):
            continue
    candles: dict[str, list[list[float]]] = {}
    bars_per_candle: dict[str, int] = {}
    if (path / "candles.csv").is_file():  # (reports written before the engine kept candles have none)
        try:
            for r in _rows(path / "candles.csv"):
                candles.setdefault(r["symbol"], []).append(
                    [_epoch(r["time"]), *(float(r[k]) for k in ("open", "high", "low", "close"))]
                )
                bars_per_candle[r["symbol"]] = max(bars_per_candle.get(r["symbol"], 0), int(r["bars"]))
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"candles.csv: {err}")
            candles, bars_per_candle = {}, {}
    return {
        "id": ident,
        "summary": summary,
        "equity": equity,
        "drawdown": drawdown,
        "trades": trades,
        "trade_count": count,
        "markers": markers,
        "candles": candles,
        "bars_per_candle": bars_per_candle,
        "problems": problems,
    }


def study(root: Path, ident: str) -> dict[str, Any]:
    """A study's trials with their parameters and figures, and the command
    line that runs one of them (``best.toml`` with that trial's parameters)."""
    path = folder(root, ident)
    try:
        trials = _rows(path / "trials.csv")
    except (OSError, ValueError) as err:
        raise ReportError(f"{ident}/trials.csv: {err}") from None
    columns = list(trials[0]) if trials else []
    fixed = {
        "fold",
        "number",
        "state",
        "value",
        "seconds",
        "note",
        "bars",
        *FIGURES,
        "cagr",
        "exposure",
        "max_drawdown_bars",
        "max_drawdown_seconds",
        "avg_trade_pnl",
        "best_trade_pnl",
        "worst_trade_pnl",
        "final_equity",
        "returns",
        "orders",
        "fills",
    }
    # engine optimize writes [fold,] number, state, value, the parameters, then the figures:
    # the parameters are the columns after "value" up to the first figure
    start = columns.index("value") + 1 if "value" in columns else 0
    params: list[str] = []
    for c in columns[start:]:
        if c in fixed:
            break
        params.append(c)
    best = path / "best.toml"
    return {
        "id": ident,
        "columns": columns,
        "params": params,
        "trials": trials,
        "config": str(best) if best.is_file() else None,
    }


def trial_config(root: Path, ident: str, number: str) -> Path:
    """Write ``trial-<number>.toml`` beside the study's ``best.toml``: the same
    backtest with that trial's parameters, reporting into ``trial-<number>/``
    in the study's folder; return its path."""
    path = folder(root, ident)
    best = path / "best.toml"
    if not best.is_file():
        raise ReportError(f"{ident}: no best.toml to run a trial from")
    found = study(root, ident)
    trial = next((t for t in found["trials"] if t.get("number") == str(number)), None)
    if trial is None:
        raise ReportError(f"{ident}: no trial number {number!r}")
    lines = best.read_text(encoding="utf-8").splitlines()
    # its report goes to its own folder in the study's, never over the study's or another run's
    report_dir = f'dir = "trial-{int(number)}"'
    out, inside, written = [], False, set()
    in_report, report_seen = False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            if inside:
                out += [f"{k} = {_toml_value(trial[k])}" for k in found["params"] if k not in written]
            if in_report and not report_seen:
                out.append(report_dir)
                report_seen = True
            inside = stripped == "[strategy.params]"
            in_report = stripped == "[report]"
        if (inside or in_report) and "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            if inside and key in found["params"]:
                out.append(f"{key} = {_toml_value(trial[key])}")
                written.add(key)
                continue
            if in_report and key == "dir":
                out.append(report_dir)
                report_seen = True
                continue
        out.append(line)
    if inside:
        out += [f"{k} = {_toml_value(trial[k])}" for k in found["params"] if k not in written]
    if not report_seen:
        out += [report_dir] if in_report else ["", "[report]", report_dir]
    target = path / f"trial-{int(number)}.toml"
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    return target


def _toml_value(text: str) -> str:
    if re.fullmatch(r"-?\d+", text) or (_num(text) is not None and re.fullmatch(r"-?[\d.eE+-]+", text)):
        return text
    if text in ("True", "False"):
        return text.lower()
    return json.dumps(text)

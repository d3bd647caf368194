"""The files of a search: trials.csv, best.toml and walk_forward.csv.

``best.toml`` is the backtest config as written (values from the
environment stay ``${NAME}``, never their values), without ``[optimize]``,
with the best parameters in ``[strategy.params]``; its relative paths are
rewritten to be relative to the report dir it lands in, so ``engine run -c
best.toml`` runs it as is: the core's path keys (``strategy.script``, the
file of ``strategy.class = "file.py:Class"``, ``report.dir``,
``engine.state_dir``) and, in the plugin tables
(``[source]``, ``[broker]``, ``[[sinks]]``), every relative string that
names an existing file or directory (or a glob that matches one).
"""

from __future__ import annotations

import copy
import csv
import glob
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine_core import iso_utc
from engine_plugin_optimize.metrics import RECORDED
from engine_plugin_optimize.search import StudyResult, TrialRecord
from engine_plugin_optimize.settings import Job

CORE_PATH_KEYS = (("strategy", "script"), ("engine", "state_dir"))
PLUGIN_TABLES = ("source", "broker")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("-inf" if value < 0 else "inf")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def write_trials(path: Path, job: Job, records: Iterable[TrialRecord], folds: bool) -> Path:
    """trials.csv: every trial of every study, with parameters, figures, duration and notes."""
    names = list(job.settings.params)
    header = [*(["fold"] if folds else []), "number", "state", "value", *names, *RECORDED, "seconds", "note"]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for r in records:
            metrics = r.metrics or {}
            row = [
                *([r.fold] if folds else []),
                r.number,
                r.state,
                r.value,
                *(r.params.get(n) for n in names),
                *(metrics.get(m) for m in RECORDED),
                r.seconds,
                r.note,
            ]
            writer.writerow([_cell(v) for v in row])
    return path


def write_walk_forward(path: Path, job: Job, results: list[StudyResult]) -> Path:
    """walk_forward.csv: per fold, its windows, best parameters and figures in and out of sample."""
    metric = job.settings.metric
    header = [
        "fold",
        "in_sample_start",
        "in_sample_end",
        "out_of_sample_start",
        "out_of_sample_end",
        "best_trial",
        "params",
        f"in_sample_{metric}",
        f"out_of_sample_{metric}",
        "in_sample_trades",
        "out_of_sample_trades",
        "in_sample_pnl",
        "out_of_sample_pnl",
        "out_of_sample_error",
    ]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for res in results:
            if res.fold is None:
                continue
            best, test = res.best, res.test
            inside = (best.metrics or {}) if best else {}
            outside = (test.metrics or {}) if test else {}
            row = [
                res.fold.index,
                iso_utc(res.fold.train[0]),
                iso_utc(res.fold.train[1]),
                iso_utc(res.fold.test[0]),
                iso_utc(res.fold.test[1]),
                best.number if best else None,
                best.params if best else None,
                inside.get(metric),
                outside.get(metric),
                inside.get("trades"),
                outside.get("trades"),
                inside.get("pnl"),
                outside.get("pnl"),
                test.error if test else None,
            ]
            writer.writerow([_cell(v) for v in row])
    return path


def best_config(job: Job, params: dict[str, Any], out_dir: Path, comment: str) -> str:
    """The text of best.toml for ``params``, to be written into ``out_dir``."""
    import tomli_w

    raw = copy.deepcopy(job.raw_config)
    raw.pop("optimize", None)
    base = job.loaded.base_dir.resolve()
    out_dir = out_dir.resolve()

    def moved(value: str) -> str:
        return Path(os.path.relpath(base / value, out_dir)).as_posix()

    for table, key in CORE_PATH_KEYS:
        value = raw.get(table, {}).get(key)
        if isinstance(value, str) and _relative(value):
            raw[table][key] = moved(value)
    strategy_class = raw.get("strategy", {}).get("class")
    if isinstance(strategy_class, str):
        module, colon, name = strategy_class.partition(":")
        if module.endswith(".py") and _relative(module):
            raw["strategy"]["class"] = f"{moved(module)}{colon}{name}"
    raw.setdefault("report", {})["dir"] = moved(job.loaded.config.report.dir)
    plugin_tables = [raw[t] for t in PLUGIN_TABLES if isinstance(raw.get(t), dict)]
    plugin_tables += [t for t in raw.get("sinks", []) if isinstance(t, dict)]
    for table in plugin_tables:
        for key, value in table.items():
            if key != "type" and isinstance(value, str) and _relative(value) and _names_a_path(base, value):
                table[key] = moved(value)
    strategy = raw.setdefault("strategy", {})
    strategy["params"] = {**strategy.get("params", {}), **params}
    lines = "".join(f"# {line}\n" for line in comment.splitlines())
    return lines + tomli_w.dumps(raw)


def _relative(value: str) -> bool:
    return bool(value) and "${" not in value and "://" not in value and not Path(value).is_absolute()


def _names_a_path(base: Path, value: str) -> bool:
    target = base / value
    if target.exists():
        return True
    return any(ch in value for ch in "*?[") and bool(glob.glob(str(target)))


__all__ = ["best_config", "write_trials", "write_walk_forward"]

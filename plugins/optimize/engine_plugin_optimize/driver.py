"""``optimize()``: a whole search, from the config to the report files.

Everything a user can get wrong is checked before the first trial: the
``[optimize]`` table and the backtest config, the constraints, Ray and its
address, the data (read once, here), the walk-forward windows and the
study storage. Then the trials run and the files are written into the
backtest's report dir.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine_core import EngineError
from engine_core.config import load_config
from engine_core.plugins import Registry, get_registry
from engine_plugin_optimize.backends import check_address, import_ray, make_backend
from engine_plugin_optimize.history import History
from engine_plugin_optimize.metrics import shown
from engine_plugin_optimize.outputs import best_config, write_trials, write_walk_forward
from engine_plugin_optimize.search import (
    Progress,
    Search,
    StudyResult,
    TrialRecord,
    check_constraints,
    open_studies,
    safe_url,
)
from engine_plugin_optimize.search import plans as study_plans
from engine_plugin_optimize.settings import Job, load_job
from engine_plugin_optimize.trial import make_setup
from engine_plugin_optimize.walkforward import FoldTotals, fold_totals

STUDY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class OptimizeResult:
    job: Job
    results: list[StudyResult]
    best: TrialRecord | None  # the trial whose parameters are in best.toml
    storage: str
    totals: FoldTotals | None = None  # walk-forward only
    paths: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False


def optimize(
    config_path: str | Path,
    *,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    resume: bool = False,
    trials: int | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> OptimizeResult:
    """Run the search ``config_path`` describes and write its files; see the plugin README.

    Trials run in other processes (spawned locally, or Ray workers), which load
    the installed plugins themselves (``get_registry()``), whatever ``registry``
    this process uses. A script calling this needs the usual
    ``if __name__ == "__main__":`` guard, as with any spawned process pool.
    """
    if address is not None and backend != "ray":
        raise EngineError("--address names a Ray cluster: use it with --backend ray")
    if study is not None and not STUDY_NAME.match(study):
        raise EngineError(f"--study {study!r}: expected 1-64 letters, digits, '_', '.' or '-'")
    registry = registry or get_registry()
    job = load_job(config_path, registry)
    if study is not None:
        job = replace(job, settings=job.settings.model_copy(update={"study": study}))
    check_constraints(job)
    if backend == "ray":
        ray = import_ray()
        if address is not None and not ray.is_initialized():
            check_address(address)
    history = History.read(job.loaded)
    plans = study_plans(job, history)
    storage = storage or job.settings.storage or job.default_storage()
    studies = open_studies(job, storage, plans, resume)
    runner = make_backend(backend, make_setup(job.loaded, history), jobs, address)
    search = Search(job, runner, studies, plans, progress, trials)
    interrupted = False
    try:
        results = search.run()
    except KeyboardInterrupt:
        runner.close(cancel=True)
        results, interrupted = search.interrupted(), True
    except BaseException:
        runner.close(cancel=True)
        raise
    else:
        runner.close()
    result = OptimizeResult(job, results, _best(job, results), storage, interrupted=interrupted)
    if job.settings.walk_forward is not None:
        result.totals = fold_totals(results, job.settings.metric)
    write_outputs(result, registry)
    return result


def _best(job: Job, results: list[StudyResult]) -> TrialRecord | None:
    """The trial best.toml takes: the search's best, or the last fold's with walk-forward."""
    for res in reversed(results):
        if res.best is not None:
            return res.best
    return None


def write_outputs(result: OptimizeResult, registry: Registry) -> None:
    job = result.job
    out = job.report_dir
    out.mkdir(parents=True, exist_ok=True)
    wf = job.settings.walk_forward is not None
    records = [r for res in result.results for r in res.records]
    result.paths["trials"] = write_trials(out / "trials.csv", job, records, folds=wf)
    if wf:
        result.paths["walk_forward"] = write_walk_forward(out / "walk_forward.csv", job, result.results)
    best = result.best
    if best is not None:
        path = out / "best.toml"
        path.write_text(best_config(job, best.params, out, _comment(job, best, result)), encoding="utf-8")
        try:
            load_config(path, registry)
        except EngineError as err:
            raise EngineError(f"{path}: written, but it does not load: {err}") from err
        result.paths["best"] = path
    if job.loaded.config.report.html:
        from engine_plugin_optimize.page import render_page

        path = out / "optimize.html"
        path.write_text(render_page(job, result.results, best, safe_url(result.storage), result.totals))
        result.paths["html"] = path
    if best is None and not result.interrupted:
        failures = [r for r in records if r.state == "failed"]
        why = f"; the first failure: trial {failures[0].number}: {failures[0].note}" if failures else ""
        raise EngineError(f"no trial completed, so there is no best.toml (trials.csv lists them){why}")


def _comment(job: Job, best: TrialRecord, result: OptimizeResult) -> str:
    metric = job.settings.metric
    study = next((res.name for res in result.results if res.best is best), job.study_name)
    which = f"of the last walk-forward fold ({study}, in sample)" if best.fold else f"of study {study}"
    return (
        f"engine optimize: the best parameters {which}: trial {best.number}, "
        f"{metric} {shown(metric, best.figure(metric))}\n"
        f"filled into {job.loaded.path.resolve()}; relative paths are relative to this file.\n"
        "Run it with: engine run -c best.toml\n"
    )


__all__ = ["OptimizeResult", "optimize", "write_outputs"]

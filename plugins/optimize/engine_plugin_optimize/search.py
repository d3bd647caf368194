"""The search: Optuna proposes parameter sets, a backend runs them, Optuna learns.

The driver asks Optuna for as many parameter sets as the backend has slots,
submits each (after checking the constraints: a set that breaks one is told
to Optuna as pruned, with the reason, and never runs), and tells Optuna each
result as it comes back. Only the driver talks to the study's storage, so
SQLite serves a local search; several drivers (machines) can share one
study through PostgreSQL.

Trial states in the study and in ``trials.csv``:

========== ================= ==================================================
state      Optuna state      meaning
========== ================= ==================================================
complete   COMPLETE          ran; value is the metric (the worst possible when
                             the metric is undefined or trades < min_trades)
repeat     COMPLETE          the sampler proposed a parameter set that already
                             ran: not run again, told the same value, not ranked
failed     FAIL              the strategy or the engine failed; ``error`` says why
rejected   PRUNED            broke a constraint; never ran
interrupted FAIL             stopped by Ctrl-C; not counted, a resume runs more
running    RUNNING           running elsewhere (another driver), or abandoned
========== ================= ==================================================
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine_core import ConfigError, EngineError
from engine_plugin_optimize.backends import Backend
from engine_plugin_optimize.folds import Fold, walk_forward_folds
from engine_plugin_optimize.history import History
from engine_plugin_optimize.metrics import objective, rank_key, shown
from engine_plugin_optimize.samplers import make_sampler
from engine_plugin_optimize.settings import Job
from engine_plugin_optimize.trial import TrialOutcome, TrialSpec

REJECTED_IN_A_ROW = 1000  # proposals breaking a constraint before the search gives up
FEASIBILITY_SAMPLES = 2000  # random parameter sets tried to see that the constraints allow any


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the outputs show it."""

    fold: int | None
    number: int
    state: str
    params: dict[str, Any]
    value: float | None  # what Optuna was told
    metrics: dict[str, Any] | None
    seconds: float | None
    note: str | None  # error, rejection or ranking reason
    qualified: bool  # complete and ranked by its metric (not last)

    def figure(self, metric: str) -> float | None:
        value = (self.metrics or {}).get(metric)
        return None if value is None else float(value)


@dataclass
class StudyResult:
    """One study: the whole search, or one walk-forward fold's in-sample search."""

    name: str
    fold: Fold | None
    records: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None
    test: TrialOutcome | None = None  # the best parameters on the fold's out-of-sample window


class Progress(Protocol):
    def begin(self, label: str, total: int, done: int) -> None: ...

    def advance(self, done: int, best: str) -> None:
        """``done`` trials of the target have run; ``best`` reads the best figure so far."""
        ...

    def end(self) -> None: ...


class _NoProgress:
    def begin(self, label: str, total: int, done: int) -> None:
        pass

    def advance(self, done: int, best: str) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    """A study to run: its name, window and fold."""

    name: str
    fold: Fold | None

    @property
    def window(self) -> tuple[int | None, int | None]:
        return self.fold.train if self.fold else (None, None)

    @property
    def label(self) -> str:
        return f"fold {self.fold.index}" if self.fold else "search"


def plans(job: Job, history: History) -> list[Plan]:
    """The studies of a search (one, or one per fold), each window checked to hold bars."""
    wf = job.settings.walk_forward
    if wf is None:
        return [Plan(job.study_name, None)]
    first, last = history.span()
    folds = walk_forward_folds(first, last, wf.folds, wf.test_fraction, wf.anchored)
    symbols = job.loaded.config.engine.symbols
    for fold in folds:
        for kind, (start, end) in (("in-sample", fold.train), ("out-of-sample", fold.test)):
            counts = history.bars(start, end)
            for symbol in symbols:
                if counts.get(symbol, 0) < 2:
                    raise ConfigError(
                        f"{job.where}: optimize.walk_forward: fold {fold.index}'s {kind} window has "
                        f"{counts.get(symbol, 0)} bars of {symbol}; use fewer folds"
                    )
    return [Plan(f"{job.study_name}.fold{fold.index}", fold) for fold in folds]


def check_constraints(job: Job, samples: int = FEASIBILITY_SAMPLES) -> None:
    """ConfigError when no parameter set satisfies the constraints: none of the whole
    grid for a grid search, else none of ``samples`` random ones."""
    if not job.constraints:
        return
    if job.settings.sampler == "grid":
        if grid_points(job) == 0:
            raise ConfigError(
                f"{job.where}: optimize.constraints: no point of the grid ({_grid_size(job):,}) satisfies them"
            )
        return
    rng = random.Random(0)
    if not any(job.violation(_random_set(job, rng)) is None for _ in range(samples)):
        raise ConfigError(
            f"{job.where}: optimize.constraints: none of {samples:,} random parameter sets satisfies them"
        )


def grid_points(job: Job) -> int:
    """Points of the grid that satisfy the constraints."""
    return sum(1 for params in _grid_sets(job) if job.violation(params) is None)


def _grid_size(job: Job) -> int:
    return math.prod(len(values) for values in job.grid().values())


def _grid_sets(job: Job) -> Any:
    import itertools

    grid = job.grid()
    names = list(grid)
    return ({n: v for n, v in zip(names, combo)} for combo in itertools.product(*grid.values()))


def _random_set(job: Job, rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in job.settings.params.items():
        if spec.choices is not None:
            out[name] = rng.choice(spec.choices)
            continue
        assert spec.low is not None and spec.high is not None
        if spec.is_int:
            out[name] = rng.randrange(int(spec.low), int(spec.high) + 1, int(spec.step or 1))
        elif spec.log:
            out[name] = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
        else:
            out[name] = rng.uniform(spec.low, spec.high)
    return out


# ------------------------------------------------------------ studies


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _space(job: Job) -> str:
    """The search space as stored with a study, to refuse resuming a different one."""
    s = job.settings
    return json.dumps(
        {"params": {n: p.model_dump(exclude_defaults=True) for n, p in s.params.items()}, "metric": s.metric},
        sort_keys=True,
    )


def open_studies(job: Job, storage: str, plans: list[Plan], resume: bool) -> list[Any]:
    """Create (or, with ``resume``, load) each plan's study; one line on any mismatch."""
    optuna = _optuna()
    try:
        existing = {s.study_name: s for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    except Exception as err:  # noqa: BLE001 - SQLAlchemy, drivers, bad URLs: one line for all
        no_driver = storage.startswith("postgresql") and "import" in str(err).lower()
        from engine_core.plugins import install_hint

        driver = install_hint("engine-plugin-optimize", "postgresql")
        hint = f" (the PostgreSQL driver: {driver})" if no_driver else ""
        raise EngineError(
            f"--storage {safe_url(storage)}: cannot open the study storage: {_first_line(err)}{hint}"
        ) from err
    studies = []
    for plan in plans:
        summary = existing.get(plan.name)
        if summary is not None:
            if not resume and summary.n_trials > 0:
                raise EngineError(
                    f"study {plan.name!r} already has {summary.n_trials} trials in {safe_url(storage)}: "
                    "pass --resume to continue it, or --study NAME to start another"
                )
            stored = summary.user_attrs.get("space")
            if stored is not None and stored != _space(job):
                raise EngineError(
                    f"study {plan.name!r} in {safe_url(storage)} searched another space or metric; "
                    "pass --study NAME to start another"
                )
        offset = summary.n_trials if summary is not None else 0
        study = optuna.create_study(
            study_name=plan.name,
            storage=storage,
            direction=job.direction,
            sampler=make_sampler(job, offset),
            load_if_exists=True,
        )
        if study.direction.name.lower() != job.direction:
            raise EngineError(f"study {plan.name!r} in {safe_url(storage)} was made to {study.direction.name.lower()}")
        study.set_user_attr("space", _space(job))
        study.set_user_attr("config", str(job.where))
        studies.append(study)
    return studies


def safe_url(storage: str) -> str:
    """A storage URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(storage)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return storage


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def state_of(trial: Any) -> str:
    state = trial.state.name
    if state == "COMPLETE":
        return "repeat" if "repeat_of" in trial.user_attrs else "complete"
    if state == "PRUNED":
        return "rejected"
    if state == "FAIL":
        return "interrupted" if trial.user_attrs.get("interrupted") else "failed"
    return state.lower()


def records(study: Any, fold: int | None) -> list[TrialRecord]:
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        state = state_of(t)
        note = attrs.get("error") or attrs.get("rejected") or attrs.get("note")
        if "repeat_of" in attrs:
            note = f"the sampler repeated trial {attrs['repeat_of']}'s parameters: not run again"
        out.append(
            TrialRecord(
                fold,
                t.number,
                state,
                dict(t.params),
                t.value if state == "complete" else None,
                attrs.get("metrics"),
                attrs.get("seconds"),
                note,
                state == "complete" and "note" not in attrs,
            )
        )
    return out


def ranked(recs: list[TrialRecord], metric: str, direction: str) -> list[TrialRecord]:
    """Complete trials, best first (see :func:`~engine_plugin_optimize.metrics.rank_key`)."""
    complete = [r for r in recs if r.state == "complete"]
    return sorted(complete, key=lambda r: (*rank_key(r.figure(metric), r.qualified, direction), r.number))  # type: ignore[arg-type]


def _counted(study: Any) -> int:
    """Trials that count towards the target: those that ran to an end."""
    return sum(1 for t in study.get_trials(deepcopy=False) if state_of(t) in ("complete", "failed", "repeat"))


def _same(params: dict[str, Any]) -> str:
    """A parameter set as a key: two trials with equal keys run the same backtest."""
    return json.dumps(params, sort_keys=True)


# ------------------------------------------------------------ running


class Search:
    """Runs a job's studies on a backend; ``results`` grows as studies finish."""

    def __init__(
        self,
        job: Job,
        backend: Backend,
        studies: list[Any],
        plans: list[Plan],
        progress: Progress | None = None,
        trials: int | None = None,
    ) -> None:
        self.job = job
        self.backend = backend
        self.studies = studies
        self.plans = plans
        self.progress = progress or _NoProgress()
        self.trials = trials or job.settings.trials
        self.results: list[StudyResult] = []
        self._keys = 0
        self._in_flight: dict[int, Any] = {}  # key -> Optuna trial
        self._current: Any = None

    def run(self) -> list[StudyResult]:
        for plan, study in zip(self.plans, self.studies):
            self._current = study
            self._run_study(plan, study)
            result = self.result_of(plan, study)
            if plan.fold is not None and result.best is not None:
                start, end = plan.fold.test
                result.test = self._run_one(TrialSpec(self._key(), result.best.params, start, end))
            self.results.append(result)
        self._current = None
        return self.results

    def result_of(self, plan: Plan, study: Any) -> StudyResult:
        recs = records(study, plan.fold.index if plan.fold else None)
        best = ranked(recs, self.job.settings.metric, self.job.direction)
        return StudyResult(plan.name, plan.fold, recs, best[0] if best else None)

    def interrupted(self) -> list[StudyResult]:
        """After Ctrl-C: tell Optuna the trials in flight did not finish; every study so far."""
        study = self._current
        for trial in self._in_flight.values():
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted")
            study.tell(trial, state=_optuna().trial.TrialState.FAIL)
        self._in_flight.clear()
        if study is not None:
            plan = self.plans[self.studies.index(study)]
            self.results.append(self.result_of(plan, study))
        return self.results

    def _key(self) -> int:
        self._keys += 1
        return self._keys

    def _target(self) -> int:
        if self.job.settings.sampler == "grid":
            return min(self.trials, grid_points(self.job))
        return self.trials

    def _run_study(self, plan: Plan, study: Any) -> None:
        target = self._target()
        done = _counted(study)
        distributions = self.job.distributions()
        best = self._best_value(study)
        start, end = plan.window
        rejected = 0
        # parameter sets that ran (or run) in this study: a repeat is told their value, never run again
        ran: dict[str, Any] = {
            _same(t.params): t for t in study.get_trials(deepcopy=False) if state_of(t) in ("complete", "failed")
        }
        waiting: dict[int, list[Any]] = {}  # number of a trial in flight (an int in ran) -> its repeats
        self.progress.begin(plan.label, target, min(done, target))
        try:
            while done + len(self._in_flight) < target or self._in_flight:
                while len(self._in_flight) < self.backend.slots and done + len(self._in_flight) < target:
                    trial = study.ask(distributions)
                    reason = self.job.violation(trial.params)
                    if reason is not None:
                        trial.set_user_attr("rejected", reason)
                        study.tell(trial, state=_optuna().trial.TrialState.PRUNED)
                        rejected += 1
                        if rejected >= REJECTED_IN_A_ROW:
                            raise EngineError(
                                f"{self.job.where}: optimize.constraints: the sampler proposed {rejected} "
                                "parameter sets in a row that break them; widen the ranges or loosen them"
                            )
                        continue
                    rejected = 0
                    first = ran.get(_same(trial.params))
                    if first is not None:
                        trial.set_user_attr("repeat_of", first if isinstance(first, int) else first.number)
                        if isinstance(first, int):  # still running: told when it ends
                            waiting.setdefault(first, []).append(trial)
                        else:
                            self._tell_repeat(study, trial, first)
                        done += 1
                        continue
                    ran[_same(trial.params)] = trial.number
                    key = self._key()
                    self._in_flight[key] = trial
                    self.backend.submit(TrialSpec(key, dict(trial.params), start, end))
                if not self._in_flight:
                    break
                for outcome in self.backend.results():
                    trial = self._in_flight.pop(outcome.key)
                    value = self._tell(study, trial, outcome)
                    done += 1
                    ended = study.get_trials(deepcopy=False)[trial.number]
                    ran[_same(ended.params)] = ended
                    for repeat in waiting.pop(trial.number, []):
                        self._tell_repeat(study, repeat, ended)
                    if value is not None and (best is None or _better(value, best, self.job.direction)):
                        best = value
                    self.progress.advance(min(done, target), self._best_text(best))
        finally:
            self.progress.end()

    def _tell(self, study: Any, trial: Any, outcome: TrialOutcome) -> float | None:
        """Record a finished trial; its value when it ranks by its metric."""
        trial.set_user_attr("seconds", round(outcome.seconds, 4))
        if outcome.metrics is None:
            trial.set_user_attr("error", outcome.error or "failed")
            study.tell(trial, state=_optuna().trial.TrialState.FAIL)
            return None
        s = self.job.settings
        trial.set_user_attr("metrics", outcome.metrics)
        value, note = objective(outcome.metrics, s.metric, self.job.direction, s.min_trades)
        if note is not None:
            trial.set_user_attr("note", note)
        study.tell(trial, value)
        return None if note is not None else value

    def _tell_repeat(self, study: Any, trial: Any, first: Any) -> None:
        """A repeated parameter set: the first run's figures, so the sampler learns the same."""
        if first.state.name != "COMPLETE":
            trial.set_user_attr("error", f"repeats failed trial {first.number}")
            study.tell(trial, state=_optuna().trial.TrialState.FAIL)
            return
        trial.set_user_attr("metrics", first.user_attrs.get("metrics"))
        study.tell(trial, first.value)

    def _best_text(self, best: float | None) -> str:
        metric = self.job.settings.metric
        return "" if best is None else f"best {metric} {shown(metric, best)}"

    def _best_value(self, study: Any) -> float | None:
        best = ranked(records(study, None), self.job.settings.metric, self.job.direction)
        return best[0].figure(self.job.settings.metric) if best and best[0].qualified else None

    def _run_one(self, spec: TrialSpec) -> TrialOutcome:
        self.backend.submit(spec)
        while True:
            for outcome in self.backend.results():
                if outcome.key == spec.key:
                    return outcome


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


__all__ = [
    "Plan",
    "Search",
    "StudyResult",
    "TrialRecord",
    "check_constraints",
    "grid_points",
    "open_studies",
    "plans",
    "ranked",
    "records",
]

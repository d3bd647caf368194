"""The Optuna sampler a search asks: tpe | random | grid | cmaes (imports Optuna)."""

from __future__ import annotations

from typing import Any

from optuna.samplers import CmaEsSampler, GridSampler, RandomSampler, TPESampler

from engine_plugin_optimize.settings import Job


class GridSearch(GridSampler):
    """Optuna's grid sampler, without the ``study.stop()`` it calls once the grid is
    done: that only works inside ``study.optimize``, and the search, which asks and
    tells, counts the grid itself."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        pass


def make_sampler(job: Job, offset: int) -> Any:
    """The configured sampler; a seed moves on by ``offset`` (the trials the study
    already has), so a resumed study does not propose its first sets again."""
    s = job.settings
    seed = None if s.seed is None else s.seed + offset
    if s.sampler == "random":
        return RandomSampler(seed=seed)
    if s.sampler == "grid":
        return GridSearch(job.grid(), seed=seed)
    if s.sampler == "cmaes":
        return CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # constant_liar: trials still running count as bad, so parallel asks spread out
    return TPESampler(seed=seed, constant_liar=True)


__all__ = ["GridSearch", "make_sampler"]

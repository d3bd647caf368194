"""``engine optimize``: the command line over :func:`engine_plugin_optimize.driver.optimize`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

EXIT_INTERRUPTED = 130


@click.command("optimize")
# -c/--config as engine_core.cli.config_option spells it, with help of its own.
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config with an [optimize] table (the backtest's own, or one naming it with optimize.config).",
)
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1), help="Trials at once (default: every core; on Ray, every CPU)."
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where trials run: local processes, or Ray tasks.",
)
@click.option("--address", help="Ray cluster: ray://host:10001 or host:6379 (default: start a local one).")
@click.option("--storage", help="Optuna storage URL (default: SQLite next to the config; postgresql://... to share).")
@click.option("--study", "study", help="Study name (default: optimize.study, else the config's file name).")
@click.option("--resume", is_flag=True, help="Continue the study: run trials until it has optimize.trials.")
@click.option("--trials", type=click.IntRange(min=1), help="Trials to run (overrides optimize.trials).")
@click.option("--quiet", "-q", is_flag=True, help="No table of the top trials.")
def optimize_command(
    config_path: Path,
    jobs: int | None,
    backend: str,
    address: str | None,
    storage: str | None,
    study: str | None,
    resume: bool,
    trials: int | None,
    quiet: bool,
) -> None:
    """Search strategy parameters: each trial a full backtest, ranked by a summary figure.

    Writes trials.csv, best.toml (runnable as is), optimize.html and, with
    walk-forward, walk_forward.csv into the backtest's report dir.
    """
    from rich.console import Console

    from engine_plugin_optimize.driver import optimize
    from engine_plugin_optimize.terminal import print_top, print_walk_forward, progress_for

    console = Console()
    err_console = Console(stderr=True)
    result = optimize(
        config_path,
        jobs=jobs,
        backend=backend,
        address=address,
        storage=storage,
        study=study,
        resume=resume,
        trials=trials,
        progress=progress_for(err_console),
    )
    if not quiet:
        if result.totals is not None:
            print_walk_forward(result.job, result.results, result.totals, console)
        print_top(result.job, result.results[-1:] if result.totals is not None else result.results, console)
    files = ", ".join(sorted(p.name for p in result.paths.values()))
    click.echo(f"report: {result.job.report_dir} ({files})")
    if result.interrupted:
        click.echo("interrupted: the trials so far are in the report; --resume continues the study", err=True)
        sys.exit(EXIT_INTERRUPTED)

"""The ``engine`` command.

Exit codes: 0 when all went well; 2 for a user error (any EngineError: one
line on stderr, never a traceback); 3 when a run finished but at least one
symbol halted (its results are incomplete). A traceback means a bug in the
engine.
"""

from __future__ import annotations

import os

# numpy's BLAS starts a thread per core at import, which spins for a while:
# about 0.1 s of CPU in every ``engine`` process, though the engine never
# multiplies matrices. One thread, unless the user set it (before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import atexit
import gc
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from engine_core.errors import EngineError, error_text

EXIT_USER_ERROR = 2
EXIT_HALTED = 3


def _fail(err: EngineError) -> None:
    for line in str(err).splitlines() or [error_text(err)]:  # every problem of a config, one line each
        click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_USER_ERROR)


def _resolve_with_hint(group: click.Group, ctx: click.Context, name: str) -> None:
    """A command that a plugin of the project would add and that is not
    there fails naming the plugin and how to install it."""
    if not name or ctx.resilient_parsing or group.get_command(ctx, name) is not None:
        return
    from engine_core.plugins import get_registry, provider_hint

    names, at = [name], ctx
    while at.parent is not None:  # the subcommands above (``download``), not the program's name
        names.insert(0, at.info_name or "")
        at = at.parent
    path = " ".join(names)
    hint = provider_hint(get_registry(), "command", path)
    if hint:
        ctx.fail(f"No such command {name!r}{hint}.")


class _Group(click.Group):
    """The ``engine`` group: turns EngineError into one line, and adds the
    commands that plugins register (``register_commands``) on first use."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _resolve_with_hint(self, ctx, args[0] if args else "")
        return super().resolve_command(ctx, args)

    _plugins_added = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngineError as err:
            _fail(err)

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from engine_core.plugins import get_registry

        try:
            get_registry().pm.hook.register_commands(cli=self)
        except EngineError as err:
            _fail(err)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group)
@click.version_option(package_name="engine-trading-core")
def main() -> None:
    """Plugin-based trading engine: Lua strategies, backtests, live trading."""


F = TypeVar("F", bound=Callable[..., Any])


def config_option(help: str = "TOML config file.", multiple: bool = False) -> Callable[[F], F]:
    """``-c/--config``: one config file (``config_path``, required), or any
    number of them with ``multiple`` (``config_paths``). A plugin's command
    takes its config with the same option."""
    name = "config_paths" if multiple else "config_path"
    path = click.Path(dir_okay=False, path_type=Path)
    return click.option("-c", "--config", name, required=not multiple, multiple=multiple, type=path, help=help)


@main.command()
@config_option("TOML config file (repeat for several).", multiple=True)
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def validate(config_paths: tuple[Path, ...], paths: tuple[Path, ...]) -> None:
    """Check configs without running them: each plugin's keys, the strategy,
    the data files (exist, one per symbol, headers and first rows read), the
    report folder. Says what it did not check. Writes nothing, contacts no broker.

    Exit code 2 when any config has a problem (one line per problem on stderr)."""
    from engine_core.plugins import get_registry
    from engine_core.validate import validate as check

    configs = list(config_paths) + list(paths)
    if not configs:
        raise click.UsageError("give a config: engine validate -c CONFIG [-c CONFIG ...]")
    registry = get_registry()
    failed = False
    for path in configs:
        result = check(path, registry)
        for line in result.warnings:
            click.echo(f"warning: {line}", err=True)
        if not result.ok:
            failed = True
            for line in result.problems:
                click.echo(f"error: {line}", err=True)
            continue
        click.echo(f"{path}: ok ({result.summary})")
        click.echo(f"{path}: not checked: {'; '.join(result.unchecked)}")
    if failed:
        sys.exit(EXIT_USER_ERROR)


@main.command()
@config_option()
@click.option("--no-report", is_flag=True, help="Do not write the report files.")
@click.option("--quiet", "-q", is_flag=True, help="No summary table.")
@click.option(
    "--shard", metavar="K/N", help="Run only the symbols of shard K of N (N engines cover every symbol once)."
)
def run(config_path: Path, no_report: bool, quiet: bool, shard: str | None) -> None:
    """Run a config: a backtest over history, or live. Ctrl-C or SIGTERM stops
    it cleanly (the summary and report cover what ran).

    Exit code 3 when a symbol halted (a strategy error, a missing indicator...)."""
    # When the process ends, what it made stays out of the interpreter's last
    # collections (tens of milliseconds; whatever the run opened, journal,
    # sinks, report files, it has closed by then). Registered once.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    from engine_core.config import in_config, load_config
    from engine_core.errors import ConfigError
    from engine_core.plugins import get_registry
    from engine_core.report import summarize
    from engine_core.runner import Engine
    from engine_core.strategy_log import TERMINAL
    from engine_core.streams import guard_std_streams

    # A run never waits for a reader: a stdout or stderr nobody reads loses
    # lines, not trading time (engine_core.streams). Other commands, whose
    # output a pager may read at the user's pace, write as usual.
    guard_std_streams()
    from engine_core.validate import load_warnings, preflight, report_dir

    registry = get_registry()
    loaded = load_config(config_path, registry, shard=shard)
    problems = preflight(loaded, registry, report=not no_report)
    if problems:
        raise ConfigError("\n".join(problems))  # before the engine opens its journal, its broker or anything else
    for line in load_warnings(loaded):
        click.echo(f"warning: {line}", err=True)
    engine = Engine(loaded, registry)
    progress, finish = _progress_bar()
    engine.progress = progress
    stopped = _stop_on_sigterm(engine.stop_event)
    try:
        try:
            result = engine.run()
        except EngineError as err:  # a data file, a folder, a venue: named after the config it came from
            err.args = (in_config(config_path, err),)
            raise
        finally:
            finish()
            TERMINAL.finish()  # how many ctx.log lines the terminal left out at the end
        how = "SIGTERM" if stopped.signal else (engine.stopped_by or "Ctrl-C") if engine.stop_event.is_set() else None
        summary = engine.summary or summarize(result)
        if not no_report:
            from engine_core.report import write_report

            out = report_dir(engine.loaded)
            paths = write_report(result, summary, out, html=engine.loaded.config.report.html)
            files = ", ".join(sorted(p.name for p in paths.values()))
        if not quiet:
            from engine_core.report import print_summary

            console = Console(stderr=False)
            print_summary(summary, console)
            if not no_report:
                # one line, never broken by the console's width: a path and its files stay whole
                console.print(f"report: {out} ({files})", soft_wrap=True, markup=False, highlight=False)
    finally:
        stopped.restore()  # a SIGTERM while the report is written still lets it finish
    if how:
        click.echo(f"stopped by {how}: the summary and report cover the bars processed until then", err=True)
    for line in _sink_losses(result):
        click.echo(f"warning: {line}", err=True)
    halted = [s for s, r in result.symbols.items() if r.halted]
    for symbol in halted:
        click.echo(f"warning: {symbol} halted: {result.symbols[symbol].halted}", err=True)
    if halted:
        click.echo(
            f"error: {len(halted)} of {len(result.symbols)} symbols halted ({', '.join(halted)}); "
            f"exit code {EXIT_HALTED}",
            err=True,
        )
        sys.exit(EXIT_HALTED)


def _sink_losses(result: Any) -> list[str]:
    """One line per sink that lost events: its own count (``stats``), or the
    bus's (a full queue, a sink left behind); also in summary.json."""
    lines = []
    for stats in result.sink_stats:
        if stats.get("dropped"):
            why = f": {stats['why']}" if stats.get("why") else ""
            lines.append(f"sink {stats['type']}: {stats['dropped']:,} events not written{why}")
    for name, entry in result.source_stats.get("sinks", {}).items():
        if isinstance(entry, dict) and (entry.get("dropped") or entry.get("failed")):
            lines.append(entry.get("failed") or f"event sink {name}: {entry['dropped']:,} events dropped (queue full)")
    return lines


class _SigtermStop:
    """SIGTERM handled as Ctrl-C is: set the engine's stop event, so it stops
    feeding, drains, flushes and the summary and report follow. A second
    SIGTERM terminates at once (the default action)."""

    def __init__(self, stop_event: threading.Event) -> None:
        self.stop_event = stop_event
        self.signal: int | None = None
        self.previous: Any = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signal = signum
        self.stop_event.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


def _stop_on_sigterm(stop_event: threading.Event) -> _SigtermStop:
    handler = _SigtermStop(stop_event)
    if threading.current_thread() is threading.main_thread():
        handler.previous = signal.signal(signal.SIGTERM, handler)
    return handler


def _progress_bar() -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """A rich progress display on stderr when it is a terminal, else nothing."""
    err_console = Console(stderr=True)
    if not err_console.is_terminal:
        return None, lambda: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("backtest"),
        BarColumn(),
        TextColumn("{task.completed:,} bars"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = prog.add_task("run", total=None, rate="")
    started = time.perf_counter()
    prog.start()

    def update(bars: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f"{bars / elapsed:,.0f} bars/s" if elapsed > 0 else ""
        prog.update(task, completed=bars, rate=rate)

    return update, prog.stop


@main.group()
def report() -> None:
    """Work with run reports (the folders ``engine run`` writes)."""


@report.command("merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write (default: DIR less -KofN; refused if another report is there).",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary table.")
def report_merge(folders: tuple[Path, ...], out: Path | None, quiet: bool) -> None:
    """One report (summary across shards, trades, equity, report.html) from the
    report folders of the shards of a run (``engine run --shard K/N`` writes
    ``<report.dir>-KofN``)."""
    from engine_core.report import print_summary
    from engine_core.report.merge import default_output, merge_reports, refuse_other_report

    target = out
    if target is None:
        target = default_output(list(folders))
        refuse_other_report(target, list(folders))
    summary = merge_reports(list(folders), target)
    if not quiet:
        console = Console()
        print_summary(summary, console)
        console.print(f"report: {target} (merged from {len(folders)})", soft_wrap=True, markup=False, highlight=False)


class _PluginGroup(click.Group):
    """A core group that plugins add subcommands to (``download``): loads the
    plugins' commands before it is listed or a subcommand is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        main._add_plugin_commands()
        return super().list_commands(ctx)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _resolve_with_hint(self, ctx, args[0] if args else "")
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        main._add_plugin_commands()
        return super().get_command(ctx, cmd_name)


@main.group(cls=_PluginGroup)
def download() -> None:
    """Download history from a venue into CSV files that the csv source reads.

    Venue plugins add one subcommand each (``engine download binance``)."""


@main.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_plugins(as_json: bool) -> None:
    """Installed plugins: what each registers, from which distribution, and its status."""
    from engine_core.plugins import get_registry

    registry = get_registry()
    rows: list[dict[str, Any]] = []
    for reg in registry.registrations():
        p = reg.plugin
        rows.append(
            {
                "name": reg.name,
                "kind": reg.kind,
                "plugin": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "status": p.status,
                "error": p.error,
            }
        )
    registered = {r["plugin"] for r in rows}
    for p in registry.plugins:
        if p.name not in registered:
            kind = "observer" if p.status == "loaded" else "-"
            rows.append(
                {
                    "name": p.name,
                    "kind": kind,
                    "plugin": p.name,
                    "distribution": p.distribution,
                    "version": p.version,
                    "status": p.status,
                    "error": p.error,
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from engine_core.tables import plugins_table

    rows = [r for r in rows if r["kind"] != "indicator"] + _indicator_rows(rows)
    console = Console()
    console.print(plugins_table(rows, console))


def _indicator_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indicators are many: one row per distribution, with the count."""
    by_dist: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] == "indicator":
            entry = by_dist.setdefault(r["distribution"], dict(r, count=0))
            entry["count"] += 1
    return [dict(r, name=f"{r['count']} indicators") for r in by_dist.values()]


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def indicators(name: str | None, as_json: bool) -> None:
    """List indicators with their inputs, parameters and defaults (or one by NAME)."""
    from engine_core import indicators as ind

    specs = [ind.kind(name).spec] if name else ind.available()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "group": s.group,
                        "description": s.description,
                        "inputs": list(s.inputs),
                        "params": dict(s.params),
                        "outputs": list(s.outputs),
                        "streaming_o1": s.o1,
                        "aliases": dict(s.aliases),
                    }
                    for s in specs
                ],
                indent=2,
            )
        )
        return
    from engine_core.tables import indicator_detail, indicators_table

    console = Console()
    console.print(indicator_detail(specs[0]) if name else indicators_table(specs, console))


@main.command()
@config_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--shard", metavar="K/N", help="The journal of shard K of N (as run with --shard).")
def status(config_path: Path, as_json: bool, shard: str | None) -> None:
    """Each symbol's state, position, open orders and last event, read from the
    journal (no running engine needed)."""
    from engine_core.config import journal_path, read_engine_section
    from engine_core.errors import JournalError
    from engine_core.journal import Journal

    path = journal_path(config_path.parent, read_engine_section(config_path, shard))
    if not path.exists():
        raise JournalError(f"{path}: no journal (the engine has not run live with this config)")
    journal = Journal(path)
    try:
        rows = []
        failed = journal.events(kind="failed", last=1)
        last_seq = next((e["seq"] for e in journal.events(last=1)), None)
        last_connection = journal.events(kind="connection", last=1)
        connection = None
        if last_connection:
            c = last_connection[0]
            connection = {"source": c["source"], "state": c["state"], "ts": c["ts"], "detail": c["detail"]}
        for symbol, snap in journal.symbols().items():
            last = journal.events(symbol, last=1)
            open_orders = journal.open_orders(symbol)
            rows.append(
                {
                    "symbol": symbol,
                    "state": snap["state"],
                    "qty": snap["qty"],
                    "avg_price": snap["entry"]["price"] if snap["entry"] else None,
                    "open_orders": [o["client_id"] for o in open_orders],
                    # journaled, not sent yet: held back by the broker for the venue's rate limit
                    "not_sent": [o["client_id"] for o in open_orders if o["status"] == "intent"],
                    "halted": snap["halted"],
                    "last_event": None if not last else {"kind": last[0]["kind"], "ts": last[0]["ts"]},
                    "last_bar": snap["last_ts"],
                    "connection": connection,  # the live source's, the same for every symbol
                }
            )
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from engine_core.model import iso_utc
    from engine_core.tables import status_table

    console = Console()
    failure = f"the last run failed at {iso_utc(failed[0]['ts'])}: {failed[0]['error']}" if failed else None
    if not rows:  # a table of headers alone says nothing: say why there is no symbol
        why = failure or "the engine stopped before it recorded any symbol"
        console.print(f"journal {path}: no symbols yet: {why}", highlight=False, soft_wrap=True)
    else:
        console.print(status_table(rows, f"journal {path}", console))
        if failure and failed[0]["seq"] == last_seq:
            console.print(failure, highlight=False, soft_wrap=True)
    if connection is not None:  # whole, never cut to the terminal's width
        detail = f" ({connection['detail']})" if connection["detail"] else ""
        click.echo(f"source {connection['source']}: {connection['state']} since {iso_utc(connection['ts'])}{detail}")


def _add_recording_commands() -> None:
    from engine_core.recording.commands import replay, sessions

    main.add_command(sessions)
    main.add_command(replay)


_add_recording_commands()

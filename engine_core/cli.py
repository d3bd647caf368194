"""The ``engine`` command.

Any EngineError becomes one line on stderr and exit code 2; a traceback
means a bug in the engine.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from engine_core.errors import EngineError

EXIT_USER_ERROR = 2


def _fail(err: EngineError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(EXIT_USER_ERROR)


class _Group(click.Group):
    """The ``engine`` group: turns EngineError into one line, and adds the
    commands that plugins register (``register_commands``) on first use."""

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


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file.",
)


@main.command()
@config_option
def validate(config_path: Path) -> None:
    """Check a config (and the plugins and strategy it names) without running it."""
    from engine_core.plugins import get_registry
    from engine_core.runner import build_engine

    engine = build_engine(config_path, get_registry())
    engine.host.load()
    cfg = engine.loaded.config
    click.echo(
        f"{config_path}: ok ({cfg.engine.mode}, {len(cfg.engine.symbols)} symbols, "
        f"source {cfg.source.type}, strategy {engine.host.name} on {cfg.strategy.host}, broker {cfg.broker.type})"
    )


@main.command()
@config_option
@click.option("--no-report", is_flag=True, help="Do not write the report files.")
@click.option("--quiet", "-q", is_flag=True, help="No summary table.")
@click.option(
    "--shard", metavar="K/N", help="Run only the symbols of shard K of N (N engines cover every symbol once)."
)
def run(config_path: Path, no_report: bool, quiet: bool, shard: str | None) -> None:
    """Run a config: a backtest over history, or live."""
    from engine_core.report import print_summary, summarize, write_report
    from engine_core.runner import build_engine

    console = Console(stderr=False)
    progress, finish = _progress_bar()
    engine = build_engine(config_path, shard=shard, progress=progress)
    try:
        result = engine.run()
    finally:
        finish()
    summary = summarize(result)
    engine.registry.pm.hook.engine_stopped(summary=summary)
    if not no_report:
        out = (engine.loaded.base_dir / engine.loaded.config.report.dir).resolve()
        paths = write_report(result, summary, out, html=engine.loaded.config.report.html)
        files = ", ".join(sorted(p.name for p in paths.values()))
    if not quiet:
        print_summary(summary, console)
        if not no_report:
            console.print(f"report: {out} ({files})")
    halted = [s for s, r in result.symbols.items() if r.halted]
    for symbol in halted:
        click.echo(f"warning: {symbol} halted: {result.symbols[symbol].halted}", err=True)


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
    rows = [r for r in rows if r["kind"] != "indicator"] + _indicator_rows(rows)
    table = Table(title="engine plugins")
    for col in ("name", "kind", "distribution", "version", "status"):
        table.add_column(col)
    for r in rows:
        status = r["status"] if not r["error"] else f"{r['status']}: {r['error']}"
        table.add_row(r["name"], r["kind"], r["distribution"], r["version"], status)
    Console().print(table)


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
                    }
                    for s in specs
                ],
                indent=2,
            )
        )
        return
    table = Table(title="indicators")
    for col in ("name", "inputs", "parameters (defaults)", "outputs", "group", "description"):
        table.add_column(col)
    for s in specs:
        params = ", ".join(f"{k}={v}" for k, v in s.params.items())
        table.add_row(s.name, ",".join(s.inputs), params, ",".join(s.outputs), s.group, s.description)
    Console().print(table)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--shard", metavar="K/N", help="The journal of shard K of N (as run with --shard).")
def status(config_path: Path, as_json: bool, shard: str | None) -> None:
    """Each symbol's state, position, open orders and last event, read from the
    journal (no running engine needed)."""
    from engine_core.config import parse_shard, read_toml
    from engine_core.errors import ConfigError, JournalError
    from engine_core.journal import OPEN_STATUSES, Journal
    from engine_core.model import iso_utc

    raw = read_toml(config_path).get("engine", {})
    engine_id = raw.get("id", "engine")
    shard = shard or raw.get("shard")
    if shard:
        try:
            k, n = parse_shard(str(shard))
        except ValueError as err:
            raise ConfigError(f"--shard: {err}, got {shard!r}") from None
        engine_id = f"{engine_id}-{k}of{n}"
    path = config_path.parent / raw.get("state_dir", ".engine") / f"{engine_id}.sqlite"
    if not path.exists():
        raise JournalError(f"{path}: no journal (the engine has not run live with this config)")
    journal = Journal(path)
    try:
        rows = []
        for symbol, snap in journal.symbols().items():
            last = journal.events(symbol, last=1)
            rows.append(
                {
                    "symbol": symbol,
                    "state": snap["state"],
                    "qty": snap["qty"],
                    "avg_price": snap["entry"]["price"] if snap["entry"] else None,
                    "open_orders": [o["client_id"] for o in journal.orders(symbol, OPEN_STATUSES)],
                    "halted": snap["halted"],
                    "last_event": None if not last else {"kind": last[0]["kind"], "ts": last[0]["ts"]},
                    "last_bar": snap["last_ts"],
                }
            )
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"journal {path}")
    for col in ("symbol", "state", "position", "avg price", "open orders", "last event", "last bar", "halted"):
        table.add_column(col)
    for r in rows:
        ev = r["last_event"]
        table.add_row(
            r["symbol"],
            r["state"],
            r["qty"],
            r["avg_price"] or "-",
            ", ".join(r["open_orders"]) or "-",
            f"{ev['kind']} {iso_utc(ev['ts'])}" if ev else "-",
            iso_utc(r["last_bar"]),
            r["halted"] or "-",
        )
    Console().print(table)

"""``engine sessions`` and ``engine replay`` (added to the ``engine`` group by cli.py).

``engine replay`` exits 0 when the replay matched the recording
(``replay: identical (N events)``), 1 when it differs (the first
difference, both versions), 2 for a user error (one line).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from engine_core.errors import ConfigError

EXIT_DIFFERS = 1


def _config_option() -> Any:
    path = click.Path(dir_okay=False, path_type=Path)
    return click.option("-c", "--config", "config_path", type=path, help="The engine's config: its recordings.")


def _engine_root(config_path: Path) -> Path:
    from engine_core.config import read_engine_section
    from engine_core.recording.paths import recordings_dir

    return recordings_dir(config_path.parent, read_engine_section(config_path, None))


def _time(value: str | None, option: str) -> int | None:
    """An option's time: ISO 8601 (UTC unless it says otherwise) or epoch nanoseconds."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option}: expected a time like 2026-12-06T18:00:00 or epoch nanoseconds, got {value!r}"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1_000_000_000)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


@click.command()
@_config_option()
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sessions(config_path: Path | None, root: Path | None, as_json: bool) -> None:
    """List recorded sessions (one per engine and UTC day): the config's engine's,
    or every engine's under ROOT (default .engine/recordings)."""
    from engine_core.model import iso_utc
    from engine_core.recording.reader import describe_session, session_dirs

    if config_path is not None:
        days = session_dirs(_engine_root(config_path))
    else:
        base = root or Path(".engine") / "recordings"
        days = (
            [d for engine in sorted(base.iterdir()) if engine.is_dir() for d in session_dirs(engine)]
            if base.is_dir()
            else []
        )
    infos = [describe_session(d) for d in days]
    if as_json:
        rows = [
            {
                "path": str(i.path),
                "engine": i.engine_id,
                "symbols": i.symbols,
                "start": i.start,
                "end": i.end,
                "bars": i.bars,
                "orders": i.orders,
                "bytes": i.size,
                "segments": i.segments,
            }
            for i in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not infos:
        click.echo("no recorded sessions")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="recorded sessions")
    for col in ("session", "engine", "symbols", "start", "end", "bars", "orders", "size"):
        table.add_column(col, justify="right" if col in ("bars", "orders", "size") else "left")
    for i in infos:
        symbols = ", ".join(i.symbols[:3]) + (f" +{len(i.symbols) - 3}" if len(i.symbols) > 3 else "")
        table.add_row(
            str(i.path),
            i.engine_id,
            symbols,
            iso_utc(i.start),
            iso_utc(i.end),
            str(i.bars),
            str(i.orders),
            _size(i.size) + (f" ({i.note})" if i.note else ""),
        )
    Console().print(table)


def _params(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--params: expected NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw
    return out


@click.command()
@click.argument("session", required=False, type=click.Path(path_type=Path))
@_config_option()
@click.option("--from", "from_", metavar="T", help="Start at the last process start at or before T.")
@click.option("--to", metavar="T", help="Stop feeding the recording after T.")
@click.option("--strategy", type=click.Path(dir_okay=False, path_type=Path), help="What if: another script.")
@click.option("--params", multiple=True, metavar="NAME=VALUE", help="What if: other parameters (repeat).")
@click.option("--against-backtest", is_flag=True, help="Compare live with the backtest of the recorded bars.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --against-backtest: write the backtest's report here, with the comparison.",
)
def replay(
    session: Path | None,
    config_path: Path | None,
    from_: str | None,
    to: str | None,
    strategy: Path | None,
    params: tuple[str, ...],
    against_backtest: bool,
    report_dir: Path | None,
) -> None:
    """Replay a recorded live session (a day's folder or one segment file, or
    with -c the config's latest) and compare it with what happened live."""
    import sys

    from engine_core.plugins import get_registry
    from engine_core.recording.reader import RecordingError, segment_paths, session_dirs
    from engine_core.recording.replay import WhatIf, replay_session

    if session is not None and config_path is not None:
        raise ConfigError("engine replay: give a recording (SESSION) or -c config.toml, not both")
    if session is None and config_path is None:
        raise ConfigError("engine replay: give a recording (a session folder or a segment file) or -c config.toml")
    if session is None:
        assert config_path is not None
        days = session_dirs(_engine_root(config_path))
        if not days:
            raise RecordingError(f"{config_path}: no recorded sessions for this engine")
        session = days[-1]
    if strategy is not None and not strategy.is_file():
        raise ConfigError(f"--strategy: no such file {strategy}")
    if against_backtest:
        _against_backtest(segment_paths(session), report_dir)
        return
    what_if = WhatIf(strategy, _params(params))
    outcome = replay_session(
        segment_paths(session), get_registry(), what_if, from_=_time(from_, "--from"), to=_time(to, "--to")
    )
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)
    if what_if.active:
        changed = ", ".join(
            [f"strategy {strategy}"] * (strategy is not None) + [f"{k}={v}" for k, v in what_if.params.items()]
        )
        click.echo(
            f"replay (what if {changed}): {outcome.recorded_fills} fills as recorded, {outcome.simulated_fills} "
            "simulated by the paper broker's rules (orders the recording has no answer for)"
        )
        for k, summary in enumerate(outcome.summaries, 1):
            total = summary.get("total", {})
            click.echo(
                f"  run {k}: {total.get('orders', 0)} orders, {total.get('fills', 0)} fills, "
                f"PnL {total.get('pnl') or 0:.2f}"
            )
        return
    if outcome.divergence is not None:
        for line in outcome.divergence.lines():
            click.echo(line)
        sys.exit(EXIT_DIFFERS)
    click.echo(f"replay: identical ({outcome.events} events)")


def _against_backtest(paths: list[Path], report_dir: Path | None) -> None:
    from engine_core.plugins import get_registry
    from engine_core.recording.compare import against_backtest

    comparison = against_backtest(paths, get_registry())
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(comparison.reasons().items(), key=lambda r: -r[1]))
    click.echo(
        f"live against backtest: {comparison.same} of {comparison.decisions} decisions and fills the same"
        + (f"; differences: {reasons}" if reasons else "")
    )
    for difference in comparison.differences[:20]:
        click.echo(f"  {difference.line()}")
    if len(comparison.differences) > 20:
        click.echo(f"  ... {len(comparison.differences) - 20} more")
    if report_dir is not None:
        from engine_core.report import write_report

        summary = {**comparison.summary, "live_vs_backtest": comparison.section()}
        write_report(comparison.backtest, summary, report_dir)
        click.echo(f"report: {report_dir}")

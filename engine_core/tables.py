"""The CLI's tables, fitted to the terminal's width.

A table keeps every column whose words fit: rich wraps a cell at spaces and
gives each column at least its longest word, so while the table's minimum
width fits the console no word is cut. When it does not fit, the least
important columns go first (``--json`` always has everything). A word longer
than a whole column (a path in an error) is folded, never cut short.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from engine_core.indicators import IndicatorSpec
from engine_core.model import iso_utc


@dataclass(frozen=True)
class Column:
    header: str
    keep: int  # the higher, the longer the column stays as the console narrows
    justify: str = "left"


GAP = 2  # spaces between two columns


def fitted(
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    console: Console,
    total: Sequence[str] | None = None,
) -> Table:
    """A table of the columns that fit ``console``'s width, dropping the lowest ``keep`` first.

    Each column is at least as wide as its longest word (so words wrap whole);
    the width left over goes to the columns whose cells are longer than that.
    ``total``, if given, is a last row set apart in bold.
    """
    body = [list(r) for r in rows]
    rows = body + ([list(total)] if total is not None else [])
    texts = [[c.header, *(r[i] for r in rows)] for i, c in enumerate(columns)]
    longest = [max(cell_len(word) for text in column for word in text.split() or [""]) for column in texts]
    widest = [max(cell_len(text) for text in column) for column in texts]
    shown = list(range(len(columns)))
    while len(shown) > 1 and sum(longest[i] for i in shown) + GAP * (len(shown) - 1) > console.width:
        shown.remove(min(shown, key=lambda i: columns[i].keep))
    widths = {i: min(longest[i], console.width) for i in shown}
    spare = console.width - sum(widths.values()) - GAP * (len(shown) - 1)
    wants = {i: widest[i] - widths[i] for i in shown if widest[i] > widths[i]}
    while spare > 0 and wants:
        share = max(spare // len(wants), 1)
        for i in sorted(wants, key=lambda i: wants[i]):
            extra = min(share, wants[i], spare)
            widths[i] += extra
            spare -= extra
            wants[i] -= extra
            if not wants[i]:
                del wants[i]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # with the box's one-space divider: GAP
    )
    for i in shown:
        column = columns[i]
        table.add_column(column.header, justify=column.justify, overflow="fold", width=widths[i])  # type: ignore[arg-type]
    for row in body:
        table.add_row(*(row[i] for i in shown))
    if total is not None:
        table.add_section()
        table.add_row(*(total[i] for i in shown), style="bold")
    return table


def plugins_table(rows: Sequence[dict[str, Any]], console: Console) -> Table:
    """``engine list-plugins``: name, kind, distribution, version, status (and why it failed)."""
    columns = [Column("name", 100), Column("kind", 90), Column("distribution", 70), Column("version", 60)]
    columns.append(Column("status", 80))
    body = [
        [r["name"], r["kind"], r["distribution"], r["version"], r["status"] + (f": {r['error']}" if r["error"] else "")]
        for r in rows
    ]
    return fitted("engine plugins", columns, body, console)


def _params(spec: IndicatorSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.params.items()) or "-"


def _gives(spec: IndicatorSpec) -> str:
    """The description, and the outputs in order when there are several (what ``ctx.ind`` returns)."""
    return spec.description + (f" -> {', '.join(spec.outputs)}" if len(spec.outputs) > 1 else "")


def indicators_table(specs: Sequence[IndicatorSpec], console: Console) -> Table:
    """``engine indicators``: one row per indicator; group and inputs go first on a narrow console."""
    columns = [
        Column("name", 100),
        Column("parameters (defaults)", 90),
        Column("description -> outputs", 80),
        Column("inputs", 60),
        Column("group", 50),
    ]
    body = [[s.name, _params(s), _gives(s), ", ".join(s.inputs), s.group] for s in specs]
    title = "indicators (engine indicators NAME: one in full; --json: every field)"
    return fitted(title, columns, body, console)


def indicator_detail(spec: IndicatorSpec) -> RenderableType:
    """``engine indicators NAME``: one field per line, readable at any width."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    aka = {name: alias for alias, name in spec.aliases.items()}
    params = [f"{k}={v}" + (f" (also {aka[k]})" if k in aka else "") for k, v in spec.params.items()]
    for key, value in (
        ("name", spec.name),
        ("description", spec.description),
        ("group", spec.group),
        ("inputs", ", ".join(spec.inputs)),
        ("parameters", "\n".join(params) or "-"),
        ("outputs", ", ".join(spec.outputs)),
        ("streaming", "O(1) per bar" if spec.o1 else "recomputed over a bounded window"),
    ):
        table.add_row(key, Text(value))
    return table


def status_table(rows: Sequence[dict[str, Any]], title: str, console: Console) -> Table:
    """``engine status``: one row per symbol of the journal; times wrap between date and time."""
    columns = [
        Column("symbol", 100),
        Column("state", 90),
        Column("position @ avg price", 80, "right"),
        Column("halted", 75),
        Column("open orders", 70),
        Column("last bar", 60),
        Column("last event", 40),
    ]
    body = []
    for r in rows:
        ev = r["last_event"]
        body.append(
            [
                r["symbol"],
                r["state"],
                f"{r['qty']} @ {r['avg_price']}" if r["avg_price"] else str(r["qty"]),
                r["halted"] or "-",
                ", ".join(o + (" (not sent yet)" if o in r.get("not_sent", ()) else "") for o in r["open_orders"])
                or "-",
                _spaced(iso_utc(r["last_bar"])),
                f"{ev['kind']} {_spaced(iso_utc(ev['ts']))}" if ev else "-",
            ]
        )
    return fitted(title, columns, body, console)


def _spaced(iso: str) -> str:
    return iso.replace("T", " ", 1)


__all__ = ["Column", "fitted", "indicator_detail", "indicators_table", "plugins_table", "status_table"]

"""One engine from its journal, read-only, for a dashboard without MQTT: the
same figures as ``engine status``, read again every second.

The journal is opened read-only (SQLite ``mode=ro``), never created, migrated
or written: a running engine keeps writing it meanwhile. A journal that is
missing, locked or not an engine's shows as such on the page, and the reader
tries again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from engine_core import OrderStatus, iso_utc
from engine_plugin_dashboard.fleet import Fleet

log = logging.getLogger("engine_plugin_dashboard")

POLL = 1.0  # seconds between reads
EVENTS_READ = 200  # the last events of the journal shown per read
_OPEN = tuple(sorted(s.value for s in OrderStatus if s.is_open))


class JournalUnreadable(Exception):
    """The state word for the page and the one line for the terminal."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state


def read(path: Path) -> dict[str, Any]:
    """Each symbol's snapshot, open orders and last events."""
    if not path.is_file():
        raise JournalUnreadable("missing", f"{path}: no journal (has the engine run live with this config?)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error as err:
        raise JournalUnreadable("unreadable", f"{path}: {err}") from None
    try:
        symbols = {s: json.loads(d) for s, d in db.execute("SELECT symbol, data FROM symbols ORDER BY symbol")}
        orders = db.execute(
            "SELECT client_id, symbol, side, qty, status, filled_qty FROM orders "
            f"WHERE status IN ({','.join('?' * len(_OPEN))})",
            _OPEN,
        ).fetchall()
        events = db.execute(
            "SELECT seq, ts, symbol, kind, data FROM events ORDER BY seq DESC LIMIT ?", (EVENTS_READ,)
        ).fetchall()
    except sqlite3.OperationalError as err:
        state = "locked" if "locked" in str(err) else "unreadable"
        raise JournalUnreadable(state, f"{path}: {err}") from None
    except (sqlite3.DatabaseError, ValueError) as err:
        raise JournalUnreadable("unreadable", f"{path}: not an engine journal ({err})") from None
    finally:
        db.close()
    return {"symbols": symbols, "orders": orders, "events": list(reversed(events))}


def apply(fleet: Fleet, engine: str, data: dict[str, Any]) -> None:
    """The journal's figures into the fleet, as if the engine had published them."""
    view = fleet.engine(engine)
    view.status = {"online": None, "reason": "read from the journal", "mode": "journal", "control": False}
    pending = {
        o[1]: {"client_id": o[0], "side": o[2], "qty": o[3], "status": o[4], "filled": o[5]} for o in data["orders"]
    }
    for symbol, snap in data["symbols"].items():
        entry = snap.get("entry") or {}
        last = snap.get("last_ts")
        status = {
            "state": snap.get("state"),
            "position": str(snap.get("qty", "0")),
            "avg_price": entry.get("price"),
            "last_bar": None if last is None else {"ts": last, "time": iso_utc(last)},
            "pending_order": pending.get(symbol),
            "halted": snap.get("halted"),
            "paused": False,
        }
        sym = view.symbol(symbol)
        if sym.status != status:
            sym.set_status(status)
            fleet.touched(engine, symbol)
    for seq, ts, symbol, kind, raw in data["events"]:
        if not view.fresh(seq):
            continue
        body = json.loads(raw)
        if kind == "connection":
            view.feed = {"state": body.get("state"), "detail": body.get("detail"), "time": iso_utc(ts) if ts else None}
            fleet.touched(engine)
        elif symbol is not None:
            sym = view.symbol(symbol)
            text = f"{kind} " + " ".join(f"{k}={v}" for k, v in body.items() if v not in (None, ""))
            item = {"seq": seq, "time": iso_utc(ts) if ts else None, "event": kind, "text": text}
            fleet.listed(engine, symbol, item)


async def follow(path: Path, fleet: Fleet) -> None:
    """Read the journal every POLL seconds until cancelled."""
    engine = path.stem
    last_problem = None
    while True:
        try:
            data = await asyncio.to_thread(read, path)
        except JournalUnreadable as err:
            fleet.set_link(err.state, str(err))
            if str(err) != last_problem:
                log.warning("dashboard: journal %s: %s", err.state, err)
                last_problem = str(err)
        else:
            if last_problem is not None or fleet.link["state"] != "journal":
                log.warning("dashboard: reading the journal %s (read-only)", path)
            last_problem = None
            fleet.set_link("journal", str(path))
            apply(fleet, engine, data)
        await asyncio.sleep(POLL)

"""The recording format: what a live run writes of everything that enters it.

A recording is a folder per engine id beside the journal,
``<state_dir>/recordings/<engine id>/<YYYY-MM-DD>/``, one folder per UTC day
(a *session*: what ``engine sessions`` lists and ``engine replay`` runs).
Each process start, and each UTC midnight it lives through, opens a new
*segment* in that day's folder, ``<NNN>-<first record's ns>.arrow``: an
Arrow IPC stream (zstd-compressed record batches, one batch per flush). A
stream is only ever appended to, so a crash loses at most the batch being
written, and a reader takes every whole batch before it (``reader.py``).

Every record is one row of ``SCHEMA``, in the order it happened:

==========  ============================================================
kind        what
==========  ============================================================
start       a process start: ``data`` the header (``HEADER_FIELDS``),
            ``blob`` the journal as it was before recovery (SQLite image)
roll        a new UTC day in the same process (``data`` the header)
script      a strategy version: ``data`` {"hash", "path"}, ``blob`` its text
            (once per hash and segment); with ``symbol``, a hot reload after
            the bar ``ts``: ``data`` {"reload", "hash"} of the version read,
            "rejected" when it did not compile, or {"reload", "unread"}:
            the file could not be read, and why
bar         a live bar as put in its symbol's inbox (``ts`` and prices)
warmup      warm-up history (``blob``: ts int64 then o/h/l/c/v float64)
update      a broker update as put in its symbol's inbox (``data``)
command     a control command as put in its symbol's inbox (``data``)
stop        the symbol's worker was told to stop
connection  the source's connection state (``data``: state, detail)
call        a venue broker's answer to the engine (``data``: method, key,
            result or error), or a source's ``entries_allowed``
event       an event the engine emitted: ``data`` its line in the event log
end         the run ended cleanly (a segment without it ended in a crash)
==========  ============================================================

The inbox records of one symbol are in the order its worker took them;
``arrival`` is the wall clock when each entered. The event log is the
``describe`` line of every event the engine emitted but connection events
(their time is the wall clock's), per symbol, in order.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from engine_core.model import Bar, BarChunk, Fill, Order, OrderType, Side, TimeInForce
from engine_core.orders import OpenOrder, OrderUpdate, UpdateKind

# what this engine writes: 2 adds rejected reloads (a "script" row with
# "rejected" or "unread"), which a reader of 1 would take for a reload
VERSION = 2
READABLE = (1, 2)  # versions this engine reads (1 is 2 without rejected reloads)
VERSION_KEY = b"engine-recording-version"

SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("symbol", pa.string()),
        ("arrival", pa.int64()),
        ("ts", pa.int64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("data", pa.string()),
        ("blob", pa.binary()),
    ],
    metadata={VERSION_KEY: str(VERSION).encode()},
)
COLUMNS = tuple(SCHEMA.names)
HEADER_FIELDS = (
    "version",
    "engine_id",
    "symbols",
    "config_path",
    "config",
    "source",
    "broker",
    "broker_simulated",
    "lot_step",
    "brackets",
    "sessions",
    "script_hash",
    "pid",
)

# A record as the writer queues it and the reader yields it: the columns in order.
Row = tuple[Any, ...]


# ------------------------------------------------------------ values <-> records


def bar_row(bar: Bar, arrival: int) -> Row:
    return ("bar", bar.symbol, arrival, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, None, None)


def row_bar(row: Row) -> Bar:
    _, symbol, _, ts, o, h, lo, c, v, _, _ = row
    assert symbol is not None and ts is not None
    return Bar(symbol, ts, o, h, lo, c, v)  # type: ignore[arg-type]


def chunk_blob(chunk: BarChunk) -> bytes:
    cols = np.stack([chunk.open, chunk.high, chunk.low, chunk.close, chunk.volume]).astype(np.float64)
    return np.asarray(chunk.ts, dtype=np.int64).tobytes() + cols.tobytes()


def blob_chunk(symbol: str, blob: bytes) -> BarChunk:
    n = len(blob) // (8 * 6)
    ts = np.frombuffer(blob, dtype=np.int64, count=n).copy()
    cols = np.frombuffer(blob, dtype=np.float64, offset=8 * n).reshape(5, n).copy()
    return BarChunk(symbol, ts, cols[0], cols[1], cols[2], cols[3], cols[4])


def fill_json(fill: Fill) -> list[Any]:
    return [
        fill.client_id,
        fill.symbol,
        fill.side._value_,
        str(fill.qty),
        str(fill.price),
        str(fill.commission),
        fill.ts,
        fill.trade_id,
        str(fill.fee_qty),
    ]


def json_fill(data: list[Any]) -> Fill:
    cid, symbol, side, qty, price, commission, ts, trade_id, fee_qty = data
    return Fill(
        cid, symbol, Side(side), Decimal(qty), Decimal(price), Decimal(commission), ts, trade_id, Decimal(fee_qty)
    )


def open_order_json(found: OpenOrder) -> list[Any]:
    """An order working at the venue (``Broker.open_orders``), every field."""
    o = found.order
    prices = [None if p is None else str(p) for p in (o.price, o.stop_price, o.take_profit_price)]
    head = [o.client_id, o.symbol, o.side.value, str(o.qty), o.ts, o.reason, o.type.value, o.tif.value]
    return [*head, *prices, found.venue_id, str(found.filled_qty), found.parent]


def json_open_order(data: list[Any]) -> OpenOrder:
    cid, symbol, side, qty, ts, reason, kind, tif, *prices, venue_id, filled, parent = data
    price, stop, take = (None if p is None else Decimal(p) for p in prices)
    terms = (cid, symbol, Side(side), Decimal(qty), ts, reason, OrderType(kind), price, TimeInForce(tif), stop, take)
    return OpenOrder(Order(*terms), venue_id, Decimal(filled), parent)


# ``json.dumps`` with any argument builds an encoder per call: made once (an update is recorded per message)
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


def update_json(u: OrderUpdate) -> str:
    return _COMPACT(
        {
            "kind": u.kind._value_,
            "client_id": u.client_id,
            "ts": u.ts,
            "fill": None if u.fill is None else fill_json(u.fill),
            "venue_id": u.venue_id,
            "reason": u.reason,
            "leg": u.leg,
        }
    )


def json_update(symbol: str, text: str) -> OrderUpdate:
    d = json.loads(text)
    fill = None if d["fill"] is None else json_fill(d["fill"])
    return OrderUpdate(
        UpdateKind(d["kind"]), d["client_id"], symbol, d["ts"], fill, d["venue_id"], d["reason"], d["leg"]
    )

"""What a restart, ``engine status`` and a simulated broker read back from
the journal (``journal.py`` writes it): the orders, the events, each
symbol's snapshot and a simulated broker's records, as plain dicts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from engine_core.journal_schema import ORDER_COLUMNS
from engine_core.model import fill_key
from engine_core.orders import OPEN_STATUSES, OrderStatus

_OPEN = tuple(s.value for s in OPEN_STATUSES)


class JournalReads:
    """The journal's reads, over ``_read`` (the journal's: what is written
    so far applied first)."""

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def get(self, key: str) -> Any:
        rows = self._read("SELECT data FROM broker WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        """A simulated broker's state rows whose key starts with ``prefix``."""
        rows = self._read(
            "SELECT key, data FROM broker WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\uffff")
        )
        return [(k, json.loads(d)) for k, d in rows]

    def symbols(self) -> dict[str, dict[str, Any]]:
        return {s: json.loads(d) for s, d in self._read("SELECT symbol, data FROM symbols ORDER BY symbol")}

    def orders(self, symbol: str | None = None, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
        where, args = [], []
        if symbol is not None:
            where.append("symbol=?")
            args.append(symbol)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            dict(zip(ORDER_COLUMNS, row)) for row in self._read(sql + " ORDER BY created_ts, client_id", tuple(args))
        ]

    def client_ids(self) -> list[tuple[str, str]]:
        """``(symbol, client id)`` of every order journaled (what a restart's
        next ids follow), without the rest of each row."""
        return [(symbol, cid) for symbol, cid in self._read("SELECT symbol, client_id FROM orders")]

    def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return self.orders(symbol, _OPEN)

    def unsettled(self, symbol: str) -> tuple[list[dict[str, Any]], set[str]]:
        """What a restart takes up for ``symbol``, from one read of its fills:
        the orders to reconcile with the broker (those still open, and those
        whose journaled fills do not add up to their status: a fill reported
        but not booked when the engine stopped), and the keys of the fills
        booked (``Fill.key``), so that none is booked twice."""
        booked: dict[str, Decimal] = {}
        keys: set[str] = set()
        for e in self.events(symbol, kind="fill"):
            cid = e["client_id"]
            booked[cid] = booked.get(cid, Decimal(0)) + Decimal(e.get("qty", "0"))
            keys.add(fill_key(cid, e.get("trade_id", "")))
        out = []
        for row in self.orders(symbol):
            got = booked.get(row["client_id"], Decimal(0))
            filled = Decimal(row["filled_qty"])
            status = OrderStatus(row["status"])
            if status.is_open or got != filled or (status is OrderStatus.FILLED and got < Decimal(row["qty"])):
                out.append(row)
        return out, keys

    def events(
        self, symbol: str | None = None, kind: str | None = None, last: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT seq, ts, symbol, kind, data FROM events"
        where, args = [], []
        if symbol is not None:
            where.append("symbol=?")
            args.append(symbol)
        if kind is not None:
            where.append("kind=?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if last is not None:
            sql = f"SELECT * FROM ({sql.replace(' ORDER BY seq', ' ORDER BY seq DESC')} LIMIT {int(last)}) ORDER BY seq"
        return [
            {"seq": seq, "ts": ts, "symbol": sym, "kind": kind, **json.loads(data)}
            for seq, ts, sym, kind, data in self._read(sql, tuple(args))
        ]

"""What the journal's file holds: its tables, the statements that write
them, and the migrations from older versions (``journal.py`` writes and
reads it). ``PRAGMA user_version`` is ``SCHEMA_VERSION``; ``APP_ID`` marks the
file as an engine journal."""

from __future__ import annotations

SCHEMA_VERSION = 2
APP_ID = 0x454E474E  # "ENGN": marks the file as this engine's journal

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER,
    symbol TEXT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_symbol ON events(symbol, seq);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    created_ts INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL,
    type TEXT NOT NULL DEFAULT 'market',
    price TEXT,
    tif TEXT NOT NULL DEFAULT 'gtc',
    venue_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS orders_open ON orders(symbol, status);
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS broker (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
"""

# An order's status and a fill each write two tables: one statement each
# (this connection's TEMP views, whose triggers write the order's row and the
# event), so one call into SQLite, not four with BEGIN and COMMIT (each call
# lets other threads take the interpreter, and the writer, holding the
# journal's lock, waits to get it back). TEMP: not in the file.
STATEMENTS = """
CREATE TEMP VIEW order_status(client_id, symbol, side, qty, reason, status, ts, type, price, tif, venue_id, data)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER order_status INSTEAD OF INSERT ON order_status BEGIN
    INSERT INTO orders(client_id, symbol, side, qty, reason, status, created_ts, updated_ts, type, price, tif, venue_id)
    VALUES (NEW.client_id, NEW.symbol, NEW.side, NEW.qty, NEW.reason, NEW.status, NEW.ts, NEW.ts, NEW.type,
            NEW.price, NEW.tif, NEW.venue_id)
    ON CONFLICT(client_id) DO UPDATE SET status=excluded.status, updated_ts=excluded.updated_ts,
    venue_id=CASE WHEN excluded.venue_id != '' THEN excluded.venue_id ELSE orders.venue_id END;
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.ts, NEW.symbol, NEW.status, NEW.data);
END;
CREATE TEMP VIEW order_fill(client_id, symbol, ts, filled_qty, status, data)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER order_fill INSTEAD OF INSERT ON order_fill BEGIN
    UPDATE orders SET filled_qty=NEW.filled_qty, status=NEW.status, updated_ts=NEW.ts WHERE client_id=NEW.client_id;
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.ts, NEW.symbol, 'fill', NEW.data);
END;
CREATE TEMP VIEW ops(op, a, b, c, d, e, f, g, h, i, j, k, l)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER op_status INSTEAD OF INSERT ON ops WHEN NEW.op = 1 BEGIN
    INSERT INTO order_status
    VALUES (NEW.a, NEW.b, NEW.c, NEW.d, NEW.e, NEW.f, NEW.g, NEW.h, NEW.i, NEW.j, NEW.k, NEW.l);
END;
CREATE TEMP TRIGGER op_fill INSTEAD OF INSERT ON ops WHEN NEW.op = 2 BEGIN
    INSERT INTO order_fill VALUES (NEW.a, NEW.b, NEW.c, NEW.d, NEW.e, NEW.f);
END;
CREATE TEMP TRIGGER op_event INSTEAD OF INSERT ON ops WHEN NEW.op = 3 BEGIN
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.a, NEW.b, NEW.c, NEW.d);
END;
CREATE TEMP TRIGGER op_symbol INSTEAD OF INSERT ON ops WHEN NEW.op = 4 BEGIN
    INSERT INTO symbols(symbol, data) VALUES (NEW.a, NEW.b) ON CONFLICT(symbol) DO UPDATE SET data=excluded.data;
END;
CREATE TEMP TRIGGER op_broker INSTEAD OF INSERT ON ops WHEN NEW.op = 5 BEGIN
    INSERT INTO broker(key, data) VALUES (NEW.a, NEW.b) ON CONFLICT(key) DO UPDATE SET data=excluded.data;
END;
"""
# A round of the writer is one statement, its rows (each an op below and its
# arguments, in the order they were written) one JSON array: one call into
# SQLite, which the writer makes without the interpreter's lock (one per
# statement, each taking the lock back, made the writer wait for a burst's
# thread to let go of it, up to the interpreter's switch interval, each time).
APPLY = "INSERT INTO ops SELECT " + ", ".join(f"value ->> {k}" for k in range(13)) + " FROM json_each(?) ORDER BY key"
STATUS, FILL, EVENT, SYMBOL, BROKER = 1, 2, 3, 4, 5

MIGRATIONS = {
    # version 1 -> 2: order types and venue ids; "acknowledged" is now "accepted"
    1: (
        "ALTER TABLE orders ADD COLUMN type TEXT NOT NULL DEFAULT 'market'",
        "ALTER TABLE orders ADD COLUMN price TEXT",
        "ALTER TABLE orders ADD COLUMN tif TEXT NOT NULL DEFAULT 'gtc'",
        "ALTER TABLE orders ADD COLUMN venue_id TEXT NOT NULL DEFAULT ''",
        "UPDATE orders SET status='accepted' WHERE status='acknowledged'",
    ),
}

ORDER_COLUMNS = (
    "client_id",
    "symbol",
    "side",
    "qty",
    "reason",
    "status",
    "filled_qty",
    "created_ts",
    "updated_ts",
    "type",
    "price",
    "tif",
    "venue_id",
)

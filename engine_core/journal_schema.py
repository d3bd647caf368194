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

# A round of the writer is one statement, its rows (each an op below and its
# arguments, in the order they were written) one JSON array: one call into
# SQLite, which the writer makes without the interpreter's lock (one per
# statement, each taking the lock back, made the writer wait for a burst's
# thread to let go of it, up to the interpreter's switch interval, each time).
# Each row goes to this connection's TEMP view ``ops`` as its op and its JSON
# text, and the op's trigger takes the arguments it needs out of the text
# (``->>`` parses the text each time: a snapshot is parsed twice, not once per
# column of the widest op; an order's status and a fill write their two tables
# in one trigger, not through a view of their own: 20 -> 13 us a status row,
# 11 -> 7.5 a snapshot's). TEMP: not in the file.
STATEMENTS = """
CREATE TEMP VIEW ops(op, r) AS SELECT NULL, NULL;
CREATE TEMP TRIGGER op_status INSTEAD OF INSERT ON ops WHEN NEW.op = 1 BEGIN
    INSERT INTO orders(client_id, symbol, side, qty, reason, status, created_ts, updated_ts, type, price, tif, venue_id)
    VALUES (NEW.r ->> 1, NEW.r ->> 2, NEW.r ->> 3, NEW.r ->> 4, NEW.r ->> 5, NEW.r ->> 6, NEW.r ->> 7, NEW.r ->> 7,
            NEW.r ->> 8, NEW.r ->> 9, NEW.r ->> 10, NEW.r ->> 11)
    ON CONFLICT(client_id) DO UPDATE SET status=excluded.status, updated_ts=excluded.updated_ts,
    venue_id=CASE WHEN excluded.venue_id != '' THEN excluded.venue_id ELSE orders.venue_id END;
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.r ->> 7, NEW.r ->> 2, NEW.r ->> 6, NEW.r ->> 12);
END;
CREATE TEMP TRIGGER op_fill INSTEAD OF INSERT ON ops WHEN NEW.op = 2 BEGIN
    UPDATE orders SET filled_qty=NEW.r ->> 4, status=NEW.r ->> 5, updated_ts=NEW.r ->> 3 WHERE client_id=NEW.r ->> 1;
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.r ->> 3, NEW.r ->> 2, 'fill', NEW.r ->> 6);
END;
CREATE TEMP TRIGGER op_event INSTEAD OF INSERT ON ops WHEN NEW.op = 3 BEGIN
    INSERT INTO events(ts, symbol, kind, data) VALUES (NEW.r ->> 1, NEW.r ->> 2, NEW.r ->> 3, NEW.r ->> 4);
END;
CREATE TEMP TRIGGER op_symbol INSTEAD OF INSERT ON ops WHEN NEW.op = 4 BEGIN
    INSERT INTO symbols(symbol, data) VALUES (NEW.r ->> 1, NEW.r ->> 2)
    ON CONFLICT(symbol) DO UPDATE SET data=excluded.data;
END;
CREATE TEMP TRIGGER op_broker INSTEAD OF INSERT ON ops WHEN NEW.op = 5 BEGIN
    INSERT INTO broker(key, data) VALUES (NEW.r ->> 1, NEW.r ->> 2) ON CONFLICT(key) DO UPDATE SET data=excluded.data;
END;
"""
APPLY = "INSERT INTO ops SELECT value ->> 0, value FROM json_each(?) ORDER BY key"
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

import asyncio

import numpy as np
from engine_plugin_binance.testing import FakeBinance, LiveReader
from engine_plugin_binance.wire import MS

from engine_core.testing import wait_until_async

M = 60_000


def times(bars):
    return [b.ts // MS for b in bars]


async def test_warmup_gives_the_last_closed_bars_oldest_first(fake, source_for):
    fake.add_history("BTCUSDT", 1500)
    src = source_for(warmup=1200)
    chunk = await src.warmup("BTCUSDT", 500)
    rows = fake.klines["BTCUSDT"]
    assert len(chunk) == 1200
    assert [int(t) // MS for t in chunk.ts] == [r[0] for r in rows[-1200:]]
    assert np.all(np.diff(chunk.ts) == M * MS)
    assert float(chunk.close[-1]) == float(rows[-1][4])
    assert fake.requests["GET /api/v3/klines"] == 2  # paged backwards, 1000 at most a page
    await src.aclose()


async def test_warmup_defaults_to_the_engine_window(fake, source_for):
    fake.add_history("BTCUSDT", 50)
    src = source_for()
    chunk = await src.warmup("BTCUSDT", 30)
    assert len(chunk) == 30
    await src.aclose()


async def test_closed_klines_stream_in_as_bars_and_open_updates_are_ignored(fake, source_for):
    fake.add_history("BTCUSDT", 10)
    fake.add_history("ETHUSDT", 10)
    src = source_for(symbols=("BTCUSDT", "ETHUSDT"))
    await src.warmup("BTCUSDT", 10)
    await src.warmup("ETHUSDT", 10)
    async with LiveReader(src) as r:
        await wait_until_async(lambda: fake.connected_streams() == 1, what="stream connection")
        sent = [fake.stream_bar("BTCUSDT"), fake.stream_bar("ETHUSDT"), fake.stream_bar("BTCUSDT")]
        await wait_until_async(lambda: len(r.bars) == 3, what="three bars")
    assert [(b.symbol, b.ts // MS) for b in r.bars] == [
        ("BTCUSDT", sent[0][0]),
        ("ETHUSDT", sent[1][0]),
        ("BTCUSDT", sent[2][0]),
    ]
    b = r.bars[0]
    assert (b.open, b.high, b.low, b.close, b.volume) == tuple(float(x) for x in sent[0][1:6])
    assert "connected" in r.states


async def test_a_bar_closed_between_the_warm_up_and_the_first_connection_comes_at_once(fake, source_for):
    fake.add_history("BTCUSDT", 10)
    src = source_for()
    await src.warmup("BTCUSDT", 10)
    missed = fake.next_bar("BTCUSDT")  # closed before the stream is up: it will never stream it
    async with LiveReader(src) as r:
        await wait_until_async(lambda: len(r.bars) == 1, what="the bar from REST")
        await wait_until_async(lambda: fake.connected_streams() == 1, what="stream connection")
        nxt = fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 2, what="the next bar from the stream")
    assert times(r.bars) == [missed[0], nxt[0]]
    assert src.stats()["binance"]["dropped"] == 0


async def test_an_abrupt_disconnect_mid_stream_is_backfilled_with_no_bar_missing_or_doubled(fake, source_for):
    fake.add_history("BTCUSDT", 20)
    src = source_for()
    src.backoff.base = 0.05
    await src.warmup("BTCUSDT", 20)
    first = fake.klines["BTCUSDT"][-1][0]
    async with LiveReader(src) as r:
        await wait_until_async(lambda: r.states.count("connected") == 2, what="the connection and its first backfill")
        for _ in range(3):
            fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 3, what="bars before the cut")
        for _ in range(4):
            fake.next_bar("BTCUSDT")  # bars the stream never sent: only REST has them
        fake.cut_streams()  # no close frame
        await wait_until_async(lambda: fake.stream_connections == 2 and fake.connected_streams() == 1, what="reconnect")
        await wait_until_async(lambda: len(r.bars) == 7, what="backfilled bars")
        for _ in range(2):
            fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 9, what="bars after the reconnect")
    assert times(r.bars) == [first + i * M for i in range(1, 10)]
    assert "reconnecting" in r.states and "backfilling" in r.states
    assert src.counts["backfilled"] == 4 and src.counts["reconnects"] == 1 and src.counts["bars"] == 9


async def test_a_bar_skipping_ahead_on_the_stream_is_backfilled_before_it(fake, source_for):
    fake.add_history("BTCUSDT", 5)
    src = source_for()
    await src.warmup("BTCUSDT", 5)
    first = fake.klines["BTCUSDT"][-1][0]
    async with LiveReader(src) as r:
        await wait_until_async(lambda: fake.connected_streams() == 1, what="stream connection")
        fake.next_bar("BTCUSDT")
        fake.next_bar("BTCUSDT")  # the stream loses two bars
        fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 3, what="gap filled")
    assert times(r.bars) == [first + i * M for i in (1, 2, 3)]


async def test_a_stale_stream_is_reconnected(fake, source_for):
    fake.add_history("BTCUSDT", 5)
    src = source_for(stale_after=0.3)
    src.backoff.base = 0.05
    await src.warmup("BTCUSDT", 5)
    async with LiveReader(src) as r:
        await wait_until_async(lambda: fake.stream_connections >= 2, what="a second connection after silence")
        assert "stale" in r.states
        fake.next_bar("BTCUSDT")  # missed while stale
        await wait_until_async(lambda: fake.connected_streams() == 1, what="connected")
        fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 2, what="bars after the stale period")
    assert src.counts["stale"] >= 1
    assert times(r.bars) == [fake.klines["BTCUSDT"][-2][0], fake.klines["BTCUSDT"][-1][0]]


async def test_bad_frames_are_counted_logged_once_and_dropped(fake, source_for, caplog):
    fake.add_history("BTCUSDT", 5)
    src = source_for()
    await src.warmup("BTCUSDT", 5)
    async with LiveReader(src) as r:
        await wait_until_async(lambda: r.states.count("connected") == 2, what="the connection and its first backfill")
        fake.send_raw("{not json")
        fake.send_raw("{not json either")
        fake.send_raw('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT"}}')
        fake.send_raw('{"result":null,"id":1}')
        row = fake.next_bar("XRPUSDT", 0.5)
        fake.send_raw(FakeBinance.kline_frame("XRPUSDT", row))
        good = fake.stream_bar("BTCUSDT")
        fake.send_raw(FakeBinance.kline_frame("BTCUSDT", good))  # a duplicate
        old = fake.klines["BTCUSDT"][-3]
        fake.send_raw(FakeBinance.kline_frame("BTCUSDT", old))  # out of order
        nxt = fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 2, what="the good bars")
        await asyncio.sleep(0.05)
    assert times(r.bars) == [good[0], nxt[0]]
    stats = src.stats()["binance"]
    assert stats["dropped_by_kind"] == {
        "malformed JSON": 2,
        "unknown message": 2,
        "kline of an unsubscribed symbol": 1,
        "duplicate bar": 1,
        "out-of-order bar": 1,
    }
    assert sum("malformed JSON" in m for m in caplog.messages) == 1


async def test_a_429_waits_for_retry_after_and_a_418_stops_with_a_clear_error(fake, source_for):
    import pytest
    from engine_plugin_binance.rest import BinanceBanned

    fake.add_history("BTCUSDT", 10)
    src = source_for()
    fake.fail("/api/v3/klines", 429, retry_after=1)
    chunk = await src.warmup("BTCUSDT", 10)
    assert len(chunk) == 10
    assert src._rest.limiter.waits == 1  # paused for Retry-After, then retried
    fake.fail("/api/v3/klines", 418, retry_after=120)
    with pytest.raises(BinanceBanned, match="banned this IP .*418.* 120s"):
        await src.warmup("BTCUSDT", 10)
    await src.aclose()


async def test_the_source_slows_down_before_the_weight_limit(fake, source_for):
    fake.add_history("BTCUSDT", 10)
    src = source_for()
    await src.warmup("BTCUSDT", 10)
    src._rest.limiter.observe(src._rest.limiter.budget)  # the venue says the budget is spent
    assert src._rest.limiter.delay(2) > 0
    await src.aclose()


async def test_the_source_reconnects_ahead_of_the_24_hour_cut_and_on_server_shutdown(fake, source_for):
    fake.add_history("BTCUSDT", 5)
    src = source_for()
    src.MAX_CONNECTION_AGE = 0.0  # every message is past the age: reconnect after each
    await src.warmup("BTCUSDT", 5)
    first = fake.klines["BTCUSDT"][-1][0]
    async with LiveReader(src) as r:
        # Each connection reports connected twice: on connect and after its backfill. A bar streamed
        # before a backfill has read REST would be both fetched and streamed (a duplicate): wait for it.
        await wait_until_async(
            lambda: fake.connected_streams() == 1 and r.states.count("connected") == 2,
            what="the first connection and its backfill",
        )
        fake.stream_bar("BTCUSDT", closed_update=False)
        await wait_until_async(
            lambda: fake.stream_connections == 2 and fake.connected_streams() == 1, what="age reconnect"
        )
        src.MAX_CONNECTION_AGE = 3600.0
        fake.next_bar("BTCUSDT")  # while it reconnected
        fake.send_raw('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}')
        await wait_until_async(
            lambda: fake.stream_connections == 3 and fake.connected_streams() == 1, what="shutdown reconnect"
        )
        await wait_until_async(lambda: r.states.count("connected") == 6, what="the third connection's backfill")
        fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: len(r.bars) == 3, what="every bar")
    assert times(r.bars) == [first + i * M for i in (1, 2, 3)]
    assert src.problems.total == 0


async def test_the_minute_in_progress_at_a_backfill_comes_once_with_the_venues_final_ohlcv(fake, source_for):
    """This machine's clock runs 90 s ahead of the venue's (it moved after the
    source synced): the backfill after a reconnect sees the kline still in
    progress and leaves it to the stream, which closes it with its final values."""
    end = fake.now_ms() - 90_000 - 10 * M
    fake.add_history("BTCUSDT", 20, end_ms=end - end % M)
    src = source_for()
    src.backoff.base = 0.05
    await src.warmup("BTCUSDT", 20)
    async with LiveReader(src) as r:
        await wait_until_async(lambda: r.states.count("connected") == 2, what="the connection and its first backfill")
        venue = fake.skew_clock(90.0, hold=True)
        minute = venue - venue % M
        missed = []
        while fake.klines["BTCUSDT"][-1][0] + M < minute:
            missed.append(fake.next_bar("BTCUSDT")[0])  # closed while the stream was down
        partial = fake.open_bar("BTCUSDT", 150.0)
        assert partial[0] == minute
        fake.cut_streams()
        await wait_until_async(lambda: r.states.count("connected") == 4, what="the reconnection and its backfill")
        final = fake.close_bar("BTCUSDT", 160.0)
        after = fake.stream_bar("BTCUSDT")
        await wait_until_async(lambda: r.bars and r.bars[-1].ts // MS == after[0], what="the bar after it")
    at_minute = [b for b in r.bars if b.ts // MS == minute]
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in at_minute] == [tuple(float(x) for x in final[1:6])]
    assert times(r.bars) == [*missed, minute, after[0]]
    assert src.problems.total == 0

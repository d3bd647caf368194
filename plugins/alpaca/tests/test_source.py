"""The ``alpaca`` source against the local fake Alpaca: handshake, bars, errors,
reconnect with backfill, warm-up, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_plugin_alpaca.source import AlpacaSource
from engine_plugin_alpaca.testing import MINUTE, Reader, minute_bars
from engine_plugin_alpaca.wire import parse_time

from engine_core import ConnectionState, DataError
from engine_core.testing import wait_until_async

OPEN = parse_time("2024-01-02T14:30:00Z")
CLOSE = parse_time("2024-01-02T21:00:00Z")
NEXT_OPEN = parse_time("2024-01-03T14:30:00Z")


def make_source(config, symbols=("AAPL",)) -> tuple[AlpacaSource, list[tuple[ConnectionState, str]]]:
    source = AlpacaSource(config, symbols=list(symbols), base_dir=Path("."))
    states: list[tuple[ConnectionState, str]] = []
    source.bind_connection(lambda state, detail: states.append((state, detail)))
    return source, states


async def test_subscribes_and_streams_bars(server, source_config):
    source, states = make_source(source_config(), ["AAPL", "MSFT"])
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.subscribed("AAPL", "MSFT"))
        await wait_until_async(lambda: (ConnectionState.CONNECTED, "market open until 2024-01-02T21:00:00Z") in states)
        bars = minute_bars("AAPL", OPEN, 3) + minute_bars("MSFT", OPEN, 2, 300.0)
        server.push_bars(bars)
        got = await stream.take(5)
        assert sorted(got, key=lambda b: (b.symbol, b.ts)) == sorted(bars, key=lambda b: (b.symbol, b.ts))
    finally:
        await stream.close()
        await source.aclose()
    assert ("WS", "/v2/iex", {}) in server.requests


async def test_feed_picks_the_stream_path(server, source_config):
    source, _ = make_source(source_config(feed="sip"))
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.md_clients() == 1)
    finally:
        await stream.close()
        await source.aclose()
    assert ("WS", "/v2/sip", {}) in server.requests


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda s: setattr(s, "stream_auth_ok", False), "402 auth failed: check key_id and secret_key"),
        (lambda s: setattr(s, "connection_limit", 0), "406 connection limit exceeded: another program"),
        (lambda s: setattr(s, "symbol_limit", 1), "405 symbol limit exceeded: your data plan allows fewer symbols"),
    ],
    ids=["auth-failed", "connection-limit", "symbol-limit"],
)
async def test_fatal_stream_errors_stop_with_one_line(server, source_config, setup, expected):
    setup(server)
    source, _ = make_source(source_config(), ["AAPL", "MSFT"])
    stream = Reader(source.live())
    try:
        with pytest.raises(DataError) as info:
            await stream.take(1)
    finally:
        await stream.close()
        await source.aclose()
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert source.counts["reconnects"] == 0  # not a retry loop


async def test_wrong_keys_on_rest_are_one_line(server, source_config):
    source, _ = make_source(source_config(secret_key="wrong"))
    with pytest.raises(
        DataError, match=r"/v2/clock: HTTP 401 40110000: request is not authorized: check key_id and secret_key"
    ):
        await source.warmup("AAPL", 10)
    await source.aclose()


async def test_abrupt_disconnect_backfills_the_gap_exactly_once(server, source_config):
    server.page_size = 2  # the backfill pages through next_page_token
    source, states = make_source(source_config(), ["AAPL", "MSFT"])
    aapl = minute_bars("AAPL", OPEN, 14)
    msft = minute_bars("MSFT", OPEN, 14, 300.0)
    server.set_clock(OPEN + 20 * MINUTE, True, NEXT_OPEN, CLOSE)
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.subscribed("AAPL", "MSFT"))
        server.push_bars(aapl[:4] + msft[:4])
        first = await stream.take(8)
        server.drop_streams()  # no close frame
        server.add_history(aapl[4:9] + msft[4:9])  # happened while disconnected
        await wait_until_async(lambda: server.md_connections == 2)
        await wait_until_async(lambda: states[-1][0] is ConnectionState.CONNECTED)
        server.push_bars(aapl[8:14] + msft[8:14])  # bar 8 both streamed and fetched
        rest = await stream.take(20)
    finally:
        await stream.close()
        await source.aclose()
    got = first + rest
    for symbol, bars in (("AAPL", aapl), ("MSFT", msft)):
        mine = [b for b in got if b.symbol == symbol]
        assert [b.ts for b in mine] == [b.ts for b in bars]  # none missing, none twice, in order
        assert mine == bars
    seen = [s for s, _ in states]
    assert ConnectionState.RECONNECTING in seen and ConnectionState.BACKFILLING in seen
    assert source.counts["backfilled_bars"] == 10  # bars 4-8 of each symbol came from REST
    assert source.problems.counts["duplicate bar"] == 2  # bar 8 streamed again after it was fetched
    pages = [q for m, p, q in server.requests if p == "/v2/stocks/bars"]
    assert any("page_token" in q for q in pages)


async def test_malformed_messages_are_counted_and_dropped(server, source_config):
    source, _ = make_source(source_config())
    bars = minute_bars("AAPL", OPEN, 3)
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.subscribed("AAPL"))
        server.push_bars(bars[:1])
        server.push_frame("this is not json")
        server.push_frame('[{"T":"b","S":"AAPL","t":"2024-01-02T14:31:00Z","o":"x"}]')
        server.push_frame('[{"T":"zz","S":"AAPL"}]')
        server.push_frame('{"no": "type"}')
        server.push_frame('[{"T":"b","S":"TSLA","t":"2024-01-02T14:31:00Z","o":1,"h":1,"l":1,"c":1,"v":1}]')
        server.push_bars(bars[:1])  # a duplicate
        server.push_bars(bars[1:])
        got = await stream.take(3)
    finally:
        await stream.close()
        await source.aclose()
    assert got == bars
    dropped = source.stats()["alpaca"]["dropped_by_kind"]
    assert dropped == {
        "malformed JSON": 1,
        "bad bar": 1,
        "unknown message type": 1,
        "message without T": 1,
        "bar of an unsubscribed symbol": 1,
        "duplicate bar": 1,
    }


async def test_stale_stream_reconnects_while_open(server, source_config):
    source, states = make_source(source_config(stale_after=0.3))
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.md_connections >= 2)
        assert ConnectionState.STALE in [s for s, _ in states]
    finally:
        await stream.close()
        await source.aclose()


async def test_market_closed_then_open(server, source_config):
    server.set_clock(CLOSE + 10 * MINUTE, False, NEXT_OPEN, parse_time("2024-01-03T21:00:00Z"))
    source, states = make_source(source_config(stale_after=0.3))
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: (ConnectionState.CLOSED, "market closed; opens 2024-01-03T14:30:00Z") in states)
        connections = server.md_connections
        server.push_bars(minute_bars("AAPL", CLOSE + 5 * MINUTE, 2))  # post-market: not a regular-session bar
        server.set_clock(
            NEXT_OPEN + MINUTE, True, parse_time("2024-01-04T14:30:00Z"), parse_time("2024-01-03T21:00:00Z")
        )
        await wait_until_async(
            lambda: states[-1] == (ConnectionState.CONNECTED, "market open until 2024-01-03T21:00:00Z")
        )
        assert server.md_connections == connections  # a quiet closed market is not stale
        bars = minute_bars("AAPL", NEXT_OPEN, 2)
        server.push_bars(bars)
        assert await stream.take(2) == bars
    finally:
        await stream.close()
        await source.aclose()
    assert source.counts["outside_session"] == 2


async def test_extended_sessions_deliver_pre_and_post_market(server, source_config):
    source, _ = make_source(source_config(sessions="extended"))
    bars = minute_bars("AAPL", CLOSE, 2)  # 16:00 and 16:01 New York
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.subscribed("AAPL"))
        server.push_bars(bars)
        assert await stream.take(2) == bars
    finally:
        await stream.close()
        await source.aclose()


async def test_warmup_takes_the_last_session_bars_across_the_night(server, source_config):
    server.page_size = 7
    day1 = minute_bars("AAPL", CLOSE - 10 * MINUTE, 10)  # the last 10 of day 1
    post = minute_bars("AAPL", CLOSE, 5)  # post-market, not regular
    day2 = minute_bars("AAPL", NEXT_OPEN, 12)
    server.add_history(day1 + post + day2)
    server.set_clock(
        NEXT_OPEN + 12 * MINUTE + 30_000_000_000,
        True,
        parse_time("2024-01-04T14:30:00Z"),
        parse_time("2024-01-03T21:00:00Z"),
    )
    source, _ = make_source(source_config())
    chunk = await source.warmup("AAPL", 15)
    await source.aclose()
    assert chunk is not None
    assert [int(t) for t in chunk.ts] == [b.ts for b in day1[-3:] + day2]
    assert source.sequencer.last("AAPL") == day2[-1].ts


async def test_warmup_key_overrides_the_engine_window(server, source_config):
    server.add_history(minute_bars("AAPL", OPEN, 30))
    server.set_clock(OPEN + 30 * MINUTE, True, NEXT_OPEN, CLOSE)
    source, _ = make_source(source_config(warmup=4))
    chunk = await source.warmup("AAPL", 500)
    await source.aclose()
    assert chunk is not None and len(chunk) == 4


async def test_first_live_bars_after_warmup_fill_the_gap(server, source_config):
    history = minute_bars("AAPL", OPEN, 20)
    server.add_history(history[:10])
    server.set_clock(OPEN + 10 * MINUTE, True, NEXT_OPEN, CLOSE)
    source, _ = make_source(source_config())
    chunk = await source.warmup("AAPL", 10)
    assert chunk is not None and len(chunk) == 10
    server.add_history(history[10:15])  # before the stream connects
    server.set_clock(OPEN + 15 * MINUTE, True, NEXT_OPEN, CLOSE)
    stream = Reader(source.live())
    try:
        await wait_until_async(lambda: server.subscribed("AAPL"))
        server.push_bars(history[15:])
        got = await stream.take(10)
    finally:
        await stream.close()
        await source.aclose()
    assert got == history[10:]


async def test_entries_only_while_the_session_stays_open(server, source_config):
    source, _ = make_source(source_config())
    await source.read_clock()
    await source.aclose()
    assert source.entries_allowed("AAPL", OPEN)
    assert source.entries_allowed("AAPL", CLOSE - 2 * MINUTE)
    assert not source.entries_allowed("AAPL", CLOSE - MINUTE)  # its order would go out at the close
    assert not source.entries_allowed("AAPL", CLOSE + 60 * MINUTE)
    assert not source.entries_allowed("AAPL", OPEN - MINUTE)


async def test_the_minute_in_progress_at_a_backfill_comes_once_with_the_venues_final_ohlcv(
    server, source_config, monkeypatch
):
    """This machine's clock jumps 90 s ahead of the venue's after the source read
    the venue's clock: the backfill after a reconnect sees the minute still in
    progress and leaves it to the stream, which sends it with its final values."""
    import time

    from engine_core import Bar

    in_progress = OPEN + 20 * MINUTE
    server.set_clock(in_progress + 30 * 10**9, True, NEXT_OPEN, CLOSE)
    server.add_history(minute_bars("AAPL", OPEN, 20))
    server.open_bar(Bar("AAPL", in_progress, 101.0, 101.2, 100.9, 101.1, 40))
    final = Bar("AAPL", in_progress, 101.0, 101.6, 100.5, 101.5, 95)
    after = Bar("AAPL", in_progress + MINUTE, 101.5, 101.7, 101.4, 101.6, 50)
    source, states = make_source(source_config(clock_poll=60.0))
    await source.warmup("AAPL", 20)
    stream = Reader(source.live())

    def backfills() -> int:
        return [s for s, _ in states].count(ConnectionState.BACKFILLING)

    try:
        await wait_until_async(lambda: backfills() == 1 and states[-1][0] is ConnectionState.CONNECTED)
        wall, wall_ns = time.time, time.time_ns
        monkeypatch.setattr(time, "time", lambda: wall() + 90.0)
        monkeypatch.setattr(time, "time_ns", lambda: wall_ns() + 90 * 10**9)
        server.drop_streams()
        await wait_until_async(lambda: backfills() == 2 and states[-1][0] is ConnectionState.CONNECTED)
        server.close_bar(final)
        server.push_bars([after])
        got = await stream.take(2)
    finally:
        await stream.close()
        await source.aclose()
    assert got == [final, after]
    assert source.problems.total == 0

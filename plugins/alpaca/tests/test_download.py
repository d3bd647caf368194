"""``engine download alpaca`` against the local fake Alpaca: paging, resume, CSV."""

from __future__ import annotations

from click.testing import CliRunner
from engine_plugin_alpaca.testing import KEY_ID, SECRET, minute_bars
from engine_plugin_alpaca.wire import parse_time

from engine_core.cli import main

OPEN = parse_time("2024-01-02T14:30:00Z")


def run(server, out, end="2024-01-02T15:00:00Z", **env):
    environment = {"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET, **env}
    return CliRunner().invoke(
        main,
        [
            "download",
            "alpaca",
            "--symbol",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            end,
            "-o",
            str(out),
            "--data-url",
            server.http_url,
            "--no-progress",
        ],
        env=environment,
    )


def test_pages_into_csv_and_resumes(server, tmp_path):
    server.page_size = 4  # every request pages through next_page_token
    bars = minute_bars("AAPL", OPEN, 40)
    server.add_history(bars[:20])
    result = run(server, tmp_path)
    assert result.exit_code == 0, result.output
    path = tmp_path / "AAPL-1Min.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "datetime,open,high,low,close,volume"
    assert lines[1] == "2024-01-02T14:30:00Z,100.0,100.05,99.95,100.01,100"
    assert len(lines) == 21
    assert any("page_token" in q for _, p, q in server.requests if p == "/v2/stocks/bars")
    # interrupted mid-line, then resumed over a longer range: no row twice
    path.write_text(path.read_text()[:-10])
    server.add_history(bars[20:])
    result = run(server, tmp_path, end="2024-01-02T16:00:00Z")
    assert result.exit_code == 0, result.output
    times = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    assert len(times) == 40 and len(set(times)) == 40 and times == sorted(times)
    assert times[-1] == "2024-01-02T15:09:00Z"


def test_missing_keys_and_bad_input_are_one_line(server, tmp_path):
    result = CliRunner().invoke(
        main,
        ["download", "alpaca", "--symbol", "AAPL", "--start", "2024-01-02", "-o", str(tmp_path)],
        env={"APCA_API_KEY_ID": "", "APCA_API_SECRET_KEY": ""},
    )
    assert result.exit_code == 2
    assert "set APCA_API_KEY_ID and APCA_API_SECRET_KEY" in result.output
    result = run(server, tmp_path, end="yesterday")
    assert result.exit_code == 2 and "--end: expected an ISO date or datetime" in result.output
    result = run(server, tmp_path, APCA_API_SECRET_KEY="wrong")
    assert result.exit_code == 2 and "alpaca download AAPL" in result.output and "403" in result.output


def test_a_failed_download_leaves_no_file_behind(server, tmp_path):
    server.add_history(minute_bars("AAPL", OPEN, 20))
    result = run(server, tmp_path, APCA_API_SECRET_KEY="wrong")
    assert result.exit_code == 2 and "403" in result.output
    assert list(tmp_path.iterdir()) == []  # neither a header-only CSV nor a temporary file


def test_a_range_without_bars_writes_no_file_and_says_so(server, tmp_path):
    result = run(server, tmp_path)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []
    assert "AAPL: no bars from 2024-01-02T00:00:00Z to 2024-01-02T15:00:00Z (no file written)" in result.output

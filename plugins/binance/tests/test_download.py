from click.testing import CliRunner
from engine_plugin_binance.wire import MS

from engine_core.cli import main
from engine_core.live import CSV_HEADER, format_ts

M = 60_000


def run(fake, tmp_path, start, end, *extra):
    args = ["download", "binance", "--symbol", "BTCUSDT", "--interval", "1m", "--start", start, "--end", end]
    args += ["-o", str(tmp_path), "--rest-url", fake.http_url, "--no-progress", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_download_pages_klines_into_a_csv_and_resumes_without_duplicates(fake, tmp_path):
    start = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    fake.add_history("BTCUSDT", 2500, end_ms=start + 2500 * M)
    result = run(fake, tmp_path, "2024-01-01", "2024-01-01T00:30:00")
    assert result.exit_code == 0, result.output
    path = tmp_path / "BTCUSDT-1m.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == CSV_HEADER and len(lines) == 31
    row = fake.klines["BTCUSDT"][0]
    assert lines[1] == f"2024-01-01T00:00:00Z,{row[1]},{row[2]},{row[3]},{row[4]},{row[5]}"
    with open(path, "a") as f:
        f.write("2024-01-01T00:30:00Z,1")  # a write cut short
    result = run(fake, tmp_path, "2024-01-01", "2024-01-03")
    assert result.exit_code == 0, result.output
    assert "resumed after 2024-01-01T00:29:00Z" in result.output
    times = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    assert times == [format_ts((start + i * M) * MS) for i in range(2500)]
    # 30 rows in one page; then 2470 in pages of 1000 and an empty page that ends it
    assert fake.requests["GET /api/v3/klines"] == 1 + 4


def test_bad_dates_are_one_line_errors(fake, tmp_path):
    result = CliRunner().invoke(main, ["download", "binance", "--symbol", "BTCUSDT", "--start", "2024-13-01"])
    assert result.exit_code == 2
    assert "--start '2024-13-01': not an ISO date" in result.output


def test_a_failed_download_leaves_no_file_behind(fake, tmp_path):
    fake.add_history("BTCUSDT", 100, end_ms=1_704_067_200_000 + 100 * M)
    fake.fail("/api/v3/klines", 418, retry_after=60)
    result = CliRunner().invoke(
        main,
        ["download", "binance", "--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-01T01:00:00"]
        + ["-o", str(tmp_path), "--rest-url", fake.http_url, "--no-progress"],
    )
    assert result.exit_code != 0 and "418" in result.output
    assert list(tmp_path.iterdir()) == []  # neither a header-only CSV nor a temporary file


def test_a_range_without_klines_writes_no_file_and_says_so(fake, tmp_path):
    fake.add_history("BTCUSDT", 10, end_ms=1_704_067_200_000)
    result = run(fake, tmp_path, "2024-02-01", "2024-02-02")
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []
    assert "BTCUSDT: no bars from 2024-02-01T00:00:00Z to 2024-02-02T00:00:00Z (no file written)" in result.output

"""A stdout and stderr nobody reads never stop a run: ``engine run`` with
both on a pipe that no one reads (4 KB, or the system's default size) logs
every event and bar to stderr through a log sink, finishes, exits 0 and
writes its report; the lines the pipe could not take are counted in the
report."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from engine_core.streams import GuardedStream
from engine_core.testing import python_strategy, run_engine, start_engine, write_config
from engine_core.testing.processes import RUN_TIMEOUT

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux


@pytest.mark.parametrize("pipe_size", [4096, None])
def test_a_run_whose_output_nobody_reads_ends_with_its_report(tmp_path: Path, pipe_size: int | None) -> None:
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["AAA", "BBB"]},
            "source": {"type": "simulated", "bars": 20_000},
            "strategy": python_strategy(
                tmp_path,
                watch="return 'enter' if ctx.index % 50 == 0 else None",
                in_trade="return 'exit' if ctx.index % 50 == 25 else None",
            ),
            "sinks": [{"type": "log", "bars": True}],
            "report": {"dir": "out"},
        },
    )
    read_end, write_end = os.pipe()
    try:
        if pipe_size is not None:
            fcntl.fcntl(write_end, F_SETPIPE_SZ, pipe_size)
        proc = start_engine("run", "-c", str(config), cwd=tmp_path, stdout=write_end, stderr=write_end)
        os.close(write_end)
        try:
            code = proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"engine run still writing to a pipe nobody reads after {RUN_TIMEOUT:g} s")
    finally:
        os.close(read_end)
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["total"]["halted"] == {} and summary["total"]["fills"] > 0
    [log] = summary["sinks"]
    assert log["type"] == "log" and log["why"] == "stderr was not being read"
    assert log["lines"] > 40_000 and 0 < log["dropped"] < log["lines"]
    assert (tmp_path / "out" / "trades.csv").exists()


def test_a_log_file_that_is_a_pipe_nobody_reads_does_not_stop_the_run(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # someone has it open, and never reads
    try:
        config = write_config(
            tmp_path / "c.toml",
            {
                "engine": {"symbols": ["AAA"]},
                "source": {"type": "simulated", "bars": 20_000},
                "strategy": python_strategy(tmp_path, watch="return None"),
                "sinks": [{"type": "log", "bars": True, "path": "events.fifo"}],
                "report": {"dir": "out"},
            },
        )
        done = run_engine("run", "-q", "-c", str(config), cwd=tmp_path)
    finally:
        os.close(held)
    assert done.returncode == 0, done.stderr
    [log] = json.loads((tmp_path / "out" / "summary.json").read_text())["sinks"]
    assert log["why"] == f"{fifo} was not being read" and 0 < log["dropped"] < log["lines"] == 20_000
    assert f"warning: sink log: {log['dropped']:,} events not written: {fifo} was not being read" in done.stderr


def test_a_log_path_of_dev_stderr_is_valid_and_writes_to_the_runs_stderr(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["AAA"]},
            "source": {"type": "simulated", "bars": 200},
            "strategy": python_strategy(tmp_path, watch="return 'enter'"),
            "sinks": [{"type": "log", "level": "trades", "path": "/dev/stderr"}],
            "report": {"dir": "out"},
        },
    )
    checked = run_engine("validate", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = run_engine("run", "-q", "-c", str(config), cwd=tmp_path)  # its stderr: a pipe this test reads
    assert done.returncode == 0, done.stderr
    assert " AAA fill buy 1 @ " in done.stderr


def test_a_log_fifo_that_no_one_opens_to_read_does_not_stop_the_run(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)  # opened by no reader, ever: a plain open() would wait for one
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["AAA"]},
            "source": {"type": "simulated", "bars": 2_000},
            "strategy": python_strategy(tmp_path, watch="return None"),
            "sinks": [{"type": "log", "bars": True, "path": "events.fifo"}],
            "report": {"dir": "out"},
        },
    )
    done = run_engine("run", "-q", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [log] = json.loads((tmp_path / "out" / "summary.json").read_text())["sinks"]
    assert log == {"type": "log", "lines": 2_000, "dropped": 2_000, "why": f"{fifo} was not being read"}


def test_a_guarded_stream_read_by_someone_loses_nothing_and_one_nobody_reads_counts_what_it_leaves_out():
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    received = bytearray()

    def read_all() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    with os.fdopen(write_end, "w") as raw:
        stream = GuardedStream(raw)
        lines = [f"line {i} {'x' * (i % 300)}\n" for i in range(5000)]
        for line in lines:
            assert stream.write(line) == len(line)
        assert stream.dropped == 0
    reader.join()
    os.close(read_end)
    assert received.decode() == "".join(lines)

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    with os.fdopen(write_end, "w") as raw:
        stream = GuardedStream(raw, patience=0.01)
        results = [stream.write("y" * 100 + "\n") for _ in range(200)]
    os.close(read_end)
    assert results[0] == 101 and results[-1] == 0  # the pipe took what it could, the rest was left out
    assert stream.dropped == results.count(0) > 150

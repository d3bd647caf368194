"""``engine optimize`` whose stderr nobody reads ends with its results: the
trial processes, whose strategies log (``ctx.log`` goes to stderr), write
through the same guard as ``engine run``."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from engine_core.testing import start_engine
from engine_core.testing.processes import RUN_TIMEOUT

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux

LOUD = """
class Loud:
    def watch(self, ctx):
        ctx.log("a line on every bar, to a stderr nobody reads: " + "x" * 60)
        return "enter"

    def close_watch(self, ctx):
        return None

    def in_trade(self, ctx):
        return "exit"
"""


def test_an_optimize_whose_stderr_nobody_reads_ends_with_its_results(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(LOUD)
    config = tmp_path / "search.toml"
    config.write_text(
        '[engine]\nsymbols = ["AAA"]\n[source]\ntype = "simulated"\nbars = 300\n'
        '[strategy]\nhost = "python"\nclass = "loud.py:Loud"\n[strategy.params]\nfast = 1\n'
        '[report]\ndir = "out"\n'
        '[optimize]\nmetric = "pnl"\ntrials = 2\nsampler = "random"\nseed = 1\n'
        "[optimize.params]\nfast = { low = 1, high = 9 }\n"
    )
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)  # the first trial's log lines fill it
        proc = start_engine(
            "optimize", "-c", str(config), "--jobs", "1", cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=write_end
        )
        os.close(write_end)
        try:
            code = proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"engine optimize still waiting on a stderr nobody reads after {RUN_TIMEOUT:g} s")
    finally:
        os.close(read_end)
    assert code == 0
    trials = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert len(trials) == 3 and all(",complete," in row for row in trials[1:]), trials

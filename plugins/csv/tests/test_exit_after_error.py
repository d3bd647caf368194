"""A row error ends the process cleanly: the one-line error, exit code 2, and
no native abort while the interpreter shuts down.

pyarrow's CSV reader runs on its own threads; one of them may drop the
reader's last reference a moment after ``read_csv`` returned. When that
reference was a Python object (an ``io.BytesIO``), releasing it needs the
GIL, and a thread asking for the GIL while the interpreter exits is killed
inside a C++ destructor: "terminate called without an active exception",
SIGABRT, in about 1 process in 20 to 80 on a loaded 2-core machine. Each child below
reads a file with ``inf`` in a price column, reports the error and exits
right away, which is when that happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEADER = "datetime,open,high,low,close,volume\n"
RUNS = 32

CHILDREN = r"""
import gc, json, os, sys
from pathlib import Path

from engine_plugin_csv import CsvConfig, CsvSource
from engine_core.errors import DataError

base, runs = Path(sys.argv[1]), int(sys.argv[2])
gc.freeze()  # the children's shutdown then skips the parent's objects: a few times faster
codes, running = [], set()
for _ in range(runs):
    if len(running) == 2:
        pid, status = os.wait()
        running.discard(pid)
        codes.append(os.waitstatus_to_exitcode(status))
    pid = os.fork()
    if pid == 0:
        source = CsvSource(CsvConfig(path="BTCUSDT.csv"), symbols=["BTCUSDT"], base_dir=base)
        try:
            list(source.history())
        except DataError as err:
            source.close()
            # to a file: a write to a pipe lets the other threads run first and hides the race
            (base / f"error-{os.getpid()}.txt").write_text(f"error: {err}\n")
            sys.exit(2)  # a normal interpreter shutdown, as the engine command does
        sys.exit(0)
    running.add(pid)
while running:
    pid, status = os.wait()
    running.discard(pid)
    codes.append(os.waitstatus_to_exitcode(status))
print(json.dumps(codes))
"""


def test_inf_price_error_exits_cleanly_every_time(tmp_path: Path) -> None:
    rows = [f"2024-01-{1 + m // 1440:02d} {m // 60 % 24:02d}:{m % 60:02d}:00,10,12,9,11,5\n" for m in range(3000)]
    rows[1499] = rows[1499].replace(",11,5", ",inf,5")
    path = tmp_path / "BTCUSDT.csv"
    path.write_text(HEADER + "".join(rows))
    proc = subprocess.run(
        [sys.executable, "-c", CHILDREN, str(tmp_path), str(RUNS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0
    codes = json.loads(proc.stdout)
    assert codes == [2] * RUNS, f"exit codes {codes} (-6: SIGABRT)"
    messages = [p.read_text() for p in tmp_path.glob("error-*.txt")]
    assert messages == [f"error: {path}:1501: close is inf: prices and volumes must be finite\n"] * RUNS

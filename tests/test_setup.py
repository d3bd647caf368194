"""What `make test` needs besides Python: one list (scripts/test-deps) that
`make test` and `.ci/run` both install from, and a clear first line when it
cannot be installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test-deps"


def run(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=path) if path is not None else None
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_the_list_holds_what_the_tests_run():
    listed = run("list")
    assert listed.returncode == 0 and listed.stdout.split() == ["mosquitto", "chromium", "npm"]
    why = run("why").stdout.splitlines()
    assert why[0] == "mosquitto (command mosquitto): the mqtt plugin's tests (a real MQTT broker)"


def test_what_cannot_be_installed_is_said_on_one_line(tmp_path: Path):
    # a machine without mosquitto, chromium, npm and apt-get: only what the script itself runs
    for tool in ("bash", "awk", "id", "sudo"):
        found = shutil.which(tool)
        if found:
            (tmp_path / tool).symlink_to(found)
    assert run("missing", path=str(tmp_path)).stdout.split() == ["mosquitto", "chromium", "npm"]
    proc = run("install", path=str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "the tests need mosquitto chromium npm (Debian: sudo apt-get install mosquitto chromium npm; scripts/test-deps why), "
        "and this script could not install them: install them, then run make test again"
    ]


def test_make_test_and_ci_install_from_that_list_first():
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == "scripts/test-deps install"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "$(scripts/test-deps missing)" in ci and "mosquitto" not in ci.replace("(mosquitto, chromium, npm)", "")

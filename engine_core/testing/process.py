"""The ``engine`` command as a user runs it, from a test: a subprocess that
loads the installed plugins (a test session turns autoload off for itself),
and waiting, with a deadline, for what it or a running engine does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine_core.plugins import AUTOLOAD_ENV

TIMEOUT = 60.0  # seconds: generous, so that a loaded machine is not a failure


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test session's autoload switch, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if k != AUTOLOAD_ENV} | extra


def run_engine(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``engine ARGS`` to the end; its exit code and text output."""
    command = [sys.executable, "-m", "engine_core", *args]
    return subprocess.run(command, capture_output=True, text=True, env=user_env(**env), cwd=cwd, timeout=2 * TIMEOUT)


def start_engine(*args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen[str]:
    """``engine ARGS`` started, its output piped as text."""
    command = [sys.executable, "-m", "engine_core", *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env(**env), cwd=cwd
    )


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = TIMEOUT, proc: subprocess.Popen[str] | None = None
) -> None:
    """Poll ``condition`` until it holds; AssertionError naming ``what`` after
    ``timeout`` seconds, or with its error output if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"engine ended while waiting for {what}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

"""An ``engine`` command in a child process, as a user runs it, and what a
test reads of it while it runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine_core.plugins import AUTOLOAD_ENV

RUN_TIMEOUT = 120.0  # seconds an engine command may take to the end: generous, machines are shared


def engine_env(**extra: str) -> dict[str, str]:
    """This process's environment with plugin autoloading back on (tests turn
    it off for themselves), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != AUTOLOAD_ENV}
    env.update(extra)
    return env


def run_engine(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m engine_core ARGS`` to the end (``engine_env()`` unless
    ``env`` is given): its exit code and text output."""
    command = [sys.executable, "-m", "engine_core", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env or engine_env(), cwd=cwd, timeout=RUN_TIMEOUT
    )


def start_engine(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """``python -m engine_core ARGS`` started with ``engine_env()`` unless
    ``env`` is given; ``popen`` goes to :class:`subprocess.Popen` (cwd, and
    pipes: by default stdout and stderr are piped as text)."""
    if "stdout" not in popen and "stderr" not in popen:
        popen |= {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen([sys.executable, "-m", "engine_core", *args], env=env or engine_env(), **popen)


def exited(proc: subprocess.Popen[Any]) -> Callable[[], str | None]:
    """A ``stop_if`` for :func:`~engine_core.testing.wait_until`: the process
    ended (with what it wrote to a piped stderr)."""

    def check() -> str | None:
        if proc.poll() is None:
            return None
        err = proc.communicate()[1] if proc.stderr is not None else None
        return f"the engine process ended (code {proc.returncode})" + (f": {str(err).strip()}" if err else "")

    return check


def journal_value(path: Path, sql: str, default: Any = None) -> Any:
    """The first column of the first row ``sql`` reads from a running engine's
    journal, opened read-only as another process would; ``default`` while the
    journal, its schema or the row does not exist yet."""
    if not path.exists():
        return default
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql).fetchone()
    except sqlite3.OperationalError:  # the schema is being created
        return default
    finally:
        db.close()
    return default if row is None else row[0]

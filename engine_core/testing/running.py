"""A live engine on a thread of its own, for a test that drives it from
outside (bars from a fake venue, fills, control commands) and then stops it."""

from __future__ import annotations

import faulthandler
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from engine_core.testing.waiting import TIMEOUT, wait_until

if TYPE_CHECKING:
    from engine_core.results import RunResult
    from engine_core.runner import Engine

_T = TypeVar("_T", bound="EngineThread")


class EngineThread:
    """``engine.run()`` on a thread: ``start`` (or ``with``), ``wait`` for what
    the test expects, then ``stop`` (as Ctrl-C does) or ``join`` a run that
    ends by itself; both return the run's result, or raise what it raised."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="engine-under-test", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.engine.run()
        except BaseException as err:  # handed to the test by join
            self.error = err

    def start(self: _T) -> _T:
        self.thread.start()
        return self

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(check=exc[0] is None)

    def ended(self) -> str | None:
        """Why waiting is pointless: the run is over (a ``stop_if``)."""
        return None if self.thread.is_alive() else f"the engine stopped ({self.error!r})"

    def wait(self, condition: Callable[[], Any], what: str = "the condition", timeout: float = TIMEOUT) -> None:
        """``wait_until``, failing at once if the run ends meanwhile."""
        wait_until(condition, what, timeout, stop_if=self.ended)

    def join(self, timeout: float = 60.0, *, check: bool = True) -> RunResult | None:
        """Wait for the run to end; raise what it raised (unless ``check`` is false)."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            faulthandler.dump_traceback(sys.stderr)  # where it hangs
            raise AssertionError(f"the engine did not finish within {timeout:g} s")
        if check and self.error is not None:
            raise self.error
        return self.result

    def stop(self, timeout: float = 60.0, *, check: bool = True) -> RunResult | None:
        """Stop the run as Ctrl-C does and wait for it to end."""
        self.engine.stop_event.set()
        return self.join(timeout, check=check)

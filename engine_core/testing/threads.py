"""An engine run on a thread of its own, for tests that act while it runs."""

from __future__ import annotations

import faulthandler
import sys
import threading
from typing import Any


class EngineThread:
    """``engine.run()`` started on a daemon thread; ``join`` waits for its
    result (re-raising what it raised), ``stop`` asks it to stop first."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.engine.run()
        except BaseException as err:  # noqa: BLE001 - handed to the test by join
            self.error = err

    def join(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive():
            faulthandler.dump_traceback(sys.stderr)  # where it hangs
        assert not self.thread.is_alive(), f"the engine did not finish in {timeout:g} s"
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self, timeout: float = 60) -> Any:
        self.engine.stop_event.set()
        return self.join(timeout)

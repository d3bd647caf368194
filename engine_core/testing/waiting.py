"""Waiting on a condition in tests, never sleeping and hoping: poll until it
holds, with a generous timeout (tests share busy machines), and fail naming
what was awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 60.0  # seconds: generous, tests share busy machines
_POLL = 0.01


def _timed_out(what: str, timeout: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_until(
    condition: Callable[[], Any],
    what: str = "the condition",
    timeout: float = TIMEOUT,
    *,
    stop_if: Callable[[], str | None] | None = None,
) -> None:
    """Block until ``condition()`` is true. ``stop_if()`` returning a reason
    (the engine under test has ended, say) fails at once instead of waiting out
    the timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        reason = stop_if() if stop_if is not None else None
        if reason:
            raise AssertionError(f"{reason} while waiting for {what}")
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        time.sleep(_POLL)


async def wait_until_async(condition: Callable[[], Any], what: str = "the condition", timeout: float = TIMEOUT) -> None:
    """``wait_until`` on a running event loop: the loop keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(_POLL)

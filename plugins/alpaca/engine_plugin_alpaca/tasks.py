"""Asyncio task helpers shared by the source and the broker."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_all(tasks: list[asyncio.Task[Any]], timeout: float = 10.0) -> None:
    """Cancel tasks and wait until they are done, cancelling again if one
    swallowed it (``asyncio.wait_for`` can, before Python 3.12)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = [t for t in tasks if not t.done()]
        if not pending or asyncio.get_running_loop().time() > deadline:
            return
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=0.2)

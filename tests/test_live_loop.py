"""engine_core.live.loop: the venue brokers' loop thread, and cancel_all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from engine_core.errors import BrokerError, BrokerTimeout, error_text
from engine_core.live.loop import LoopThread, cancel_all
from engine_core.testing import wait_until


def test_runs_coroutines_on_its_own_thread_and_stops():
    io = LoopThread("test-io")
    assert not io.running
    with pytest.raises(RuntimeError, match="test-io: not started"):
        io.run(asyncio.sleep(0))
    io.start()

    async def where() -> str:
        return threading.current_thread().name

    assert io.running and io.run(where(), 30) == "test-io"

    async def from_inside() -> None:
        io.run(asyncio.sleep(0))  # would wait on its own loop forever

    with pytest.raises(RuntimeError, match="run from its own thread"):
        io.run(from_inside(), 30)
    loop = io.loop
    io.stop()
    assert not io.running and loop is not None and loop.is_closed()
    io.stop()  # twice is harmless


def test_a_timed_out_run_goes_on_unless_cancelled():
    io = LoopThread("test-io")
    io.start()
    try:
        release = threading.Event()
        finished: list[str] = []

        async def slow(tag: str) -> None:
            while not release.is_set():
                await asyncio.sleep(0.01)
            finished.append(tag)

        with pytest.raises(concurrent.futures.TimeoutError):
            io.run(slow("kept"), 0.05)
        with pytest.raises(concurrent.futures.TimeoutError):
            io.run(slow("cancelled"), 0.05, cancel=True)
        release.set()
        wait_until(lambda: finished, "the task that went on")
        assert finished == ["kept"]
    finally:
        io.stop()


async def test_cancel_all_cancels_again_a_task_that_swallowed_it():
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(True)  # as asyncio.wait_for may before Python 3.12
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await cancel_all([task], timeout=30)
    assert task.cancelled() and swallowed == [True]


def test_a_brokers_call_that_times_out_names_the_broker_the_call_and_the_wait():
    io = LoopThread("test-io")
    with pytest.raises(BrokerError, match=r"^venue broker: sleep: not connected \(connect\(\) first\)$"):
        io.call("venue broker", asyncio.sleep(0), 1)
    io.start()
    try:

        async def _submit() -> None:
            await asyncio.sleep(30)

        with pytest.raises(BrokerTimeout) as caught:
            io.call("venue broker", _submit(), 0.05)
        assert str(caught.value) == "venue broker: submit: no answer within 0.05 s"
        assert error_text(caught.value) == str(caught.value)

        async def calls_back() -> None:
            io.call("venue broker", asyncio.sleep(0), 1)

        with pytest.raises(BrokerError, match=r"^venue broker: sleep: called from its own loop thread$"):
            io.run(calls_back(), 30)
    finally:
        io.stop()

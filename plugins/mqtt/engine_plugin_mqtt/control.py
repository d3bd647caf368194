"""The control channel: commands from ``<prefix>/<engine id>/control/<command>``
handed to the engine (engine_core.control), and the answer to each.

A command is acted on only when it parses and names a symbol this engine
runs; anything else is answered with an error and nothing is done. A
request_id seen recently is answered again from memory, not acted on twice
(QoS 1 may deliver a command more than once).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from engine_core import Command, ControlError, deliver, error_text
from engine_plugin_mqtt import wire

ANSWER_TIMEOUT = 10.0  # seconds a worker has to act on a command
REMEMBERED = 1000  # request ids whose answers are kept


class ControlChannel:
    def __init__(self, engine_id: str) -> None:
        self.engine_id = engine_id
        self.engine: Any = None  # engine_core.runner.Engine, once running
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.commands = 0
        self.refused = 0

    async def answer(self, name: str, payload: bytes, origin: str = "") -> dict[str, Any]:
        """Act on one command message (``origin``: where it came from, for
        the engine's messages); the reply to publish."""
        self.commands += 1
        reply: dict[str, Any] = {
            "schema": wire.SCHEMA,
            "engine": self.engine_id,
            "command": name,
            "request_id": wire.request_id_of(payload),
            "symbol": None,
            "ok": False,
            "results": {},
            "errors": {},
            "error": None,
        }
        try:
            symbol, request_id = wire.parse_command(payload)
            reply["symbol"], reply["request_id"] = symbol, request_id
            command = Command(name, symbol, request_id, origin)
        except wire.Malformed as err:
            return self._refuse(reply, f"malformed command: {err}")
        except ControlError as err:
            return self._refuse(reply, str(err))
        if request_id is not None and request_id in self._answers:
            return dict(self._answers[request_id], repeated=True)
        if self.engine is None:
            return self._refuse(reply, "the engine is not running yet")
        loop = asyncio.get_running_loop()
        try:
            # in a backtest a worker's inbox may be full for a moment: never block this loop
            futures = await loop.run_in_executor(None, deliver, self.engine, command)
        except ControlError as err:
            return self._refuse(reply, str(err))
        for target, future in futures.items():
            answered = asyncio.wrap_future(future)
            await asyncio.wait([answered], timeout=ANSWER_TIMEOUT)
            if not answered.done():
                answered.cancel()
                reply["errors"][target] = f"no answer within {ANSWER_TIMEOUT:g} s"
                continue
            try:
                reply["results"][target] = answered.result()
            except ControlError as err:
                reply["errors"][target] = str(err)
            except Exception as err:  # noqa: BLE001 - a worker's bug (a TimeoutError too), reported, never raised here
                reply["errors"][target] = f"internal error: {error_text(err)}"
        reply["ok"] = not reply["errors"]
        if reply["errors"]:
            reply["error"] = "; ".join(f"{s}: {e}" for s, e in reply["errors"].items())
        if request_id is not None:
            self._answers[request_id] = reply
            while len(self._answers) > REMEMBERED:
                self._answers.popitem(last=False)
        return reply

    def _refuse(self, reply: dict[str, Any], why: str) -> dict[str, Any]:
        self.refused += 1
        reply["error"] = why
        return reply

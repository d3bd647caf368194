"""Registers the Lua strategy host as ``lua``."""

from __future__ import annotations

from typing import Any

from engine_core.hookspecs import hookimpl
from engine_core.lua.host import LuaHost


@hookimpl
def register_strategy_hosts(register: Any) -> None:
    register("lua", LuaHost)

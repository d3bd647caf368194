"""The dashboard beside a live engine: a ``[dashboard]`` table in the
engine's config makes ``engine run`` serve the page on a thread of its own,
for as long as the engine runs.

The page watches the engine through what it publishes: its mqtt sink's
broker and prefix when it has one (so the fleet under that prefix shows,
and control works when the sink has ``control = true``), else its journal,
read-only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from engine_core import ConfigError, PluginConfig, Service
from engine_core.config import journal_path
from engine_core.live import LoopThread
from engine_plugin_dashboard import security

log = logging.getLogger("engine_plugin_dashboard")

STOP_WAIT = 10.0  # seconds the engine waits for the server to stop


class DashboardConfig(PluginConfig):
    """``[dashboard]``: the options of ``engine dashboard`` that make sense beside one engine."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8765, ge=0, le=65535)  # 0: any free port (the printed address says which)
    token: str | None = None  # default: ENGINE_DASHBOARD_TOKEN, else a random one
    reports: str = "reports"  # relative to the config file
    prefix: str | None = None  # default: the engine's mqtt sink's

    @field_validator("token")
    @classmethod
    def _token(cls, token: str | None) -> str | None:
        if token is not None and len(token) < security.MIN_TOKEN:
            raise ValueError(f"the token must have at least {security.MIN_TOKEN} characters")
        return token

    @model_validator(mode="after")
    def _network(self) -> DashboardConfig:
        try:
            security.resolve_token(self.host, self.token)
        except ConfigError as err:
            why = str(err).removeprefix("dashboard: ").replace("--host", "host").replace("--token", "token")
            raise ValueError(why) from None
        return self


class DashboardService(Service):
    Config = DashboardConfig

    def __init__(self, config: DashboardConfig, *, name: str, loaded: Any) -> None:
        super().__init__(config, name=name, loaded=loaded)
        self._loop = LoopThread("dashboard")
        self._runner: Any = None
        self.url: str | None = None

    def _settings(self, engine: Any) -> Any:
        from engine_plugin_dashboard.fleet import Fleet
        from engine_plugin_dashboard.server import Settings

        cfg: DashboardConfig = self.config
        loaded = self.loaded
        settings = Settings(
            token=security.resolve_token(cfg.host, cfg.token), reports=loaded.base_dir / Path(cfg.reports)
        )
        sink = _mqtt_sink(loaded)
        if sink is not None:
            from engine_plugin_mqtt.config import MqttConnection

            from engine_plugin_dashboard.live import MqttLink

            keys = {k: getattr(sink, k) for k in MqttConnection.model_fields if k != "client_id"}
            settings.fleet = Fleet("mqtt")
            prefix = (cfg.prefix or sink.prefix).strip("/")
            settings.mqtt = MqttLink(MqttConnection(**keys), prefix, settings.fleet, base_dir=loaded.base_dir)
        elif getattr(engine, "journal", None) is not None:
            settings.fleet = Fleet("journal")
            settings.journal = journal_path(loaded.base_dir, loaded.config.engine)
        return settings

    def start(self, engine: Any) -> None:
        from engine_plugin_dashboard.command import announce, log_to_terminal
        from engine_plugin_dashboard.server import address, start_site

        cfg: DashboardConfig = self.config
        settings = self._settings(engine)
        log_to_terminal()
        self._loop.start()
        try:
            self._runner, port = self._loop.run(
                start_site(settings, cfg.host, cfg.port, where=f"{self.loaded.path}: {self.name}.port")
            )
        except BaseException:
            self._loop.stop()
            raise
        announce(settings)
        self.url = address(cfg.host, port, settings.token)
        print(f"dashboard: open {self.url}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        from engine_plugin_dashboard.server import stop_site

        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                self._loop.run(stop_site(runner), STOP_WAIT, cancel=True)
        finally:
            self._loop.stop()


def _mqtt_sink(loaded: Any) -> Any:
    """The config of the engine's first mqtt sink (None without one)."""
    try:
        from engine_plugin_mqtt.config import MqttSinkConfig
    except ImportError:  # pragma: no cover - a dependency of this plugin
        return None
    return next((c for _, c in loaded.sinks if isinstance(c, MqttSinkConfig)), None)

"""``engine dashboard``: the command line over :mod:`engine_plugin_dashboard.server`."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from engine_core import ConfigError

DEFAULT_PORT = 8765


def parse_mqtt(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (1883 when not given); ConfigError naming the option."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not port:
        return (host or text), 1883
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--mqtt: expected HOST[:PORT] with a port from 1 to 65535, got {text!r}")
    return host, int(port)


@click.command("dashboard")
@click.option(
    "--reports",
    "reports_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder of backtest reports and optimisation studies.",
)
@click.option("--mqtt", metavar="HOST[:PORT]", help="The broker the engines publish to (their mqtt sink's).")
@click.option("--prefix", default="engine", show_default=True, help="The mqtt sink's topic prefix.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Without --mqtt: one engine's journal (<state_dir>/<engine id>.sqlite), read-only.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option("--token", help="The access token (default: ENGINE_DASHBOARD_TOKEN, else a random one).")
def dashboard_command(
    reports_dir: Path,
    mqtt: str | None,
    prefix: str,
    journal: Path | None,
    host: str,
    port: int,
    token: str | None,
) -> None:
    """A live dashboard of the engines and a browser of the reports, in a web page.

    Prints the page's address with its access token in it; open it in a
    browser. Control (pause, resume, flatten, reload) goes through the
    engines' MQTT control channel.
    """
    from engine_plugin_dashboard import security
    from engine_plugin_dashboard.fleet import Fleet
    from engine_plugin_dashboard.server import Settings

    secret = security.resolve_token(host, token)
    settings = Settings(token=secret, reports=reports_dir)
    if mqtt is not None:
        from engine_plugin_mqtt.config import MqttConnection

        from engine_plugin_dashboard.live import MqttLink

        broker_host, broker_port = parse_mqtt(mqtt)
        settings.fleet = Fleet("mqtt")
        settings.mqtt = MqttLink(MqttConnection(host=broker_host, port=broker_port), prefix.strip("/"), settings.fleet)
    elif journal is not None:
        settings.fleet = Fleet("journal")
        settings.journal = journal
    log_to_terminal()
    try:
        asyncio.run(_serve(settings, host, port))
    except KeyboardInterrupt:
        pass


def log_to_terminal() -> None:
    logger = logging.getLogger("engine_plugin_dashboard")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


async def _serve(settings: object, host: str, port: int) -> None:
    from engine_plugin_dashboard.server import Settings, address, start_site, stop_site

    assert isinstance(settings, Settings)
    runner, bound = await start_site(settings, host, port, where="dashboard: --port", handle_signals=True)
    announce(settings)
    click.echo(f"dashboard: open {address(host, bound, settings.token)}", err=False)
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await stop_site(runner)


def announce(settings: object) -> None:
    """The lines on the terminal before the address: charts off, where the reports are."""
    from engine_plugin_dashboard.server import Settings, vendor_file

    assert isinstance(settings, Settings)
    if vendor_file("lightweight-charts.js") is None:
        click.echo(
            "dashboard: charts are off: lightweight-charts is not installed "
            "(run `npm ci` in plugins/dashboard, or `make install`)",
            err=True,
        )
    click.echo(f"dashboard: reports from {settings.reports.resolve()}", err=True)

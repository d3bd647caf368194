"""The engine's web front: ``engine dashboard`` serves a live view of the
engines publishing on MQTT (or one engine's journal, read-only), their
control, and a browser of backtest reports and optimisation studies. See the
plugin's README."""

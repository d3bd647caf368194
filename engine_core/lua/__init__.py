"""The Lua strategy host (registered as ``lua``): sandboxed lua54 scripts,
hot-reloaded when their file changes. See ``strategies/README.md`` for the
strategy API."""

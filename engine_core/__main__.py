"""``python -m engine_core`` is the ``engine`` command."""

from engine_core.cli import main

main()

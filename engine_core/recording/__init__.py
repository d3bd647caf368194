"""Recording live runs and replaying them (``engine sessions``, ``engine replay``).

``format.py`` the file format and its version, ``writer.py`` the recorder
(taps on the live path and its writer thread), ``reader.py`` reading
segments and sessions, ``replay.py`` the replay and its comparison,
``commands.py`` the CLI.
"""

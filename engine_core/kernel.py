"""The order path's modules, compiled to C by mypyc when the package is built
(``setup.py``), and the check that what runs is what the source says.

The modules below are the one implementation of the per-bar and per-order
steps; the build compiles them from this source, and nothing else exists
beside it. A compiled module is a native extension next to its ``.py``, which
Python imports first: after an edit of the source (a checkout installed with
``pip install -e``), that extension would run the old code. So the build
writes what each source was (``kernel_sources.txt``: module, size, CRC-32),
and ``import engine_core`` compares: when any compiled module's source
changed since, or the record is missing, every module of the group is
imported from its source (their compiled code calls into each other, so it
is all or nothing) and one line on stderr says so and how to build them
again. ``ENGINE_INTERPRETED=1`` imports them from source too, silently:
for a profiler or debugger that sees only Python frames.
"""

from __future__ import annotations

import os
import sys

# Compiled together (mypyc's group: calls between them are C calls). Their
# classes are native: no instance ``__dict__``, and a module function called
# from its own module is not looked up again, so a test replaces behaviour
# through an object the call goes through, not a module attribute.
MODULES = (
    "engine_core.builtin.paper_book",
    "engine_core.candles",
    "engine_core.decisions",
    "engine_core.execution",
    "engine_core.exits",
    "engine_core.ledger",
    "engine_core.lua.context",
    "engine_core.lua.host",
    "engine_core.lua.script",
    "engine_core.matching",
    "engine_core.orders",
    "engine_core.outbox",
    "engine_core.statemachine",
    "engine_core.stops",
    "engine_core.storage",
    "engine_core.symbol_control",
    "engine_core.tracked",
    "engine_core.transitions",
    "engine_core.updates",
    "engine_core.view",
    "engine_core.worker",
)
RECORD = "kernel_sources.txt"  # written by the build beside this file
INTERPRETED_ENV = "ENGINE_INTERPRETED"
_ROOT = os.path.dirname(os.path.abspath(__file__))
interpreted: str | None = None  # why this process runs the group from source (set by ``check``)


def source_path(module: str, root: str = _ROOT) -> str:
    return os.path.join(root, *module.split(".")[1:]) + ".py"


def fingerprint(path: str) -> str:
    """What the record keeps of a source: its size and CRC-32 (an edit, not an attack, is what it catches)."""
    import zlib

    with open(path, "rb") as f:
        data = f.read()
    return f"{len(data)} {zlib.crc32(data):08x}"


def record_text(root: str = _ROOT) -> str:
    """The record the build writes: one line per module, ``module size crc``."""
    return "".join(f"{m} {fingerprint(source_path(m, root))}\n" for m in MODULES)


def _files(modules: list[str] | tuple[str, ...], root: str) -> str:
    """The modules' source files as a user reads them (``engine_core/ledger.py, ...``)."""
    return ", ".join(os.path.relpath(source_path(m, root), os.path.dirname(root)) for m in modules)


def compiled(root: str = _ROOT) -> list[str]:
    """The modules of the group that have a compiled extension beside their source."""
    from importlib.machinery import EXTENSION_SUFFIXES

    out = []
    for module in MODULES:
        base = source_path(module, root)[: -len(".py")]
        if any(os.path.exists(base + suffix) for suffix in EXTENSION_SUFFIXES):
            out.append(module)
    return out


def strays(root: str = _ROOT) -> list[str]:
    """Modules with a compiled extension that are not in the group (left by a
    build from before a module left it): they would shadow their source."""
    from importlib.machinery import EXTENSION_SUFFIXES

    out = []
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if f != "__pycache__"]
        inside = os.path.relpath(folder, root)
        package = "engine_core" if inside == "." else "engine_core." + inside.replace(os.sep, ".")
        for name in files:
            suffix = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
            module = f"{package}.{name[: -len(suffix)]}" if suffix is not None else None
            if module is not None and module not in MODULES:
                out.append(module)
    return sorted(out)


def changed(root: str = _ROOT) -> list[str]:
    """The modules whose source differs from what the compiled group was built
    from (all of them when the record is missing)."""
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8") as f:
            built = dict(line.split(" ", 1) for line in f.read().splitlines() if line)
    except FileNotFoundError:
        return list(MODULES)
    return [m for m in MODULES if built.get(m) != fingerprint(source_path(m, root))]


class _FromSource:
    """A finder that imports ``names`` from their ``.py``."""

    def __init__(self, root: str, names: tuple[str, ...] | list[str]) -> None:
        self.root, self.names = root, frozenset(names)

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in self.names:
            return None
        from importlib.util import spec_from_file_location

        return spec_from_file_location(name, source_path(name, self.root))


def check(root: str = _ROOT) -> str | None:
    """Run once by ``import engine_core``: import the group from source when
    asked to, or when its compiled code is not the source's. Returns why, or
    None when the compiled modules (or no compiled modules) are used as they are."""
    stray = strays(root)
    if stray:
        sys.stderr.write(
            f"engine: compiled modules left from an earlier build, not run (their source is): {_files(stray, root)}; "
            "`make install` deletes them\n"
        )
        sys.meta_path.insert(0, _FromSource(root, stray))  # type: ignore[arg-type]
    built = compiled(root)
    if not built:
        return None  # built without the compiler: the sources are all there is
    if os.environ.get(INTERPRETED_ENV, "") not in ("", "0"):
        reason = f"{INTERPRETED_ENV} is set"
    else:
        stale = changed(root) if len(built) == len(MODULES) else [m for m in MODULES if m not in built]
        if not stale:
            return None
        reason = (
            f"changed since they were compiled: {_files(stale, root)}"
            if len(built) == len(MODULES)
            else f"not compiled with the others: {_files(stale, root)}"
        )
        sys.stderr.write(
            f"engine: the order path's modules run interpreted (slower), {reason}; "
            "build them again with `make install` or `pip install -e .`\n"
        )
    sys.meta_path.insert(0, _FromSource(root, MODULES))  # type: ignore[arg-type]
    return reason


def describe() -> str:
    """How this process runs the order path, for a benchmark's figures."""
    if interpreted is not None:
        return f"the order path interpreted ({interpreted})"
    if compiled():
        return f"the order path compiled (mypyc, {len(MODULES)} modules)"
    return "the order path interpreted (the core was built without compiling it)"


if __name__ == "__main__":  # for the Makefile
    if sys.argv[1:] == ["--current"]:  # exit 0 when the group is compiled from its sources as they are
        sys.exit(0 if compiled() == list(MODULES) and not changed() and not strays() else 1)
    print(" ".join(os.path.relpath(source_path(m)) for m in MODULES))  # what to rebuild after, and lint strictly

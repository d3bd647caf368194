"""The public API for plugin authors: ``from engine_core import ...``."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import engine_core
from engine_core import errors

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

# Subpackages with a public API of their own (each keeps an __all__).
PUBLIC_SUBPACKAGES = ("engine_core.live", "engine_core.testing")

# Classes of the engine's own machinery that a plugin driving whole runs
# (engine optimize) imports from their modules; they are not part of the
# contract a source, broker, sink, host or indicator implements.
ENGINE_INTERNALS = {
    ("engine_core.runner", "Engine"),
    ("engine_core.config", "LoadedConfig"),
    ("engine_core.config", "StrategySection"),
    ("engine_core.plugins", "Registry"),
    ("engine_core.tables", "Column"),  # engine optimize prints its results as the CLI's own tables
    # the venue plugins' tests record their sessions and replay them (engine replay's machinery)
    ("engine_core.recording.reader", "RecordingError"),
    ("engine_core.recording.replay", "WhatIf"),
}


def plugin_imports() -> set[tuple[str, str, str]]:
    """(module, name, where) for every ``from engine_core.x import name`` under plugins/."""
    found = set()
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine_core."):
                for alias in node.names:
                    found.add((node.module, alias.name, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_name_in_all_resolves_to_the_object_its_module_holds():
    assert engine_core.__all__ == sorted(set(engine_core.__all__))
    for name in engine_core.__all__:
        home = importlib.import_module(engine_core._HOME_OF[name])
        assert getattr(engine_core, name) is getattr(home, name), name
        assert name in dir(engine_core)


def test_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'NoSuchThing'"):
        engine_core.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError, match="NoSuchThing"):
        exec("from engine_core import NoSuchThing", {})


def test_type_checkers_see_the_same_names_from_the_same_modules():
    """The imports under ``if TYPE_CHECKING:`` say what the lazy table says."""
    tree = ast.parse(Path(engine_core.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = {
        name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module != "typing"
        for alias in node.names
        for name in (importlib.import_module(node.module).__all__ if alias.name == "*" else [alias.name])
    }
    assert imported == engine_core._HOME_OF


def test_the_whole_error_tree_is_public():
    defined = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.EngineError)}
    assert defined <= set(errors.__all__) <= set(engine_core.__all__)


def test_every_contract_class_the_plugins_import_is_public():
    """A base class, value, enum or error that a shipped plugin imports from a
    core module must be reachable as ``engine_core.<name>``."""
    missing = []
    for module, name, where in sorted(plugin_imports()):
        if module.startswith(PUBLIC_SUBPACKAGES) or (module, name) in ENGINE_INTERNALS:
            continue
        obj = getattr(importlib.import_module(module), name)
        contract = inspect.isclass(obj) or obj is engine_core.hookimpl
        if contract and name not in engine_core.__all__:
            missing.append(f"{module}.{name} ({where})")
    assert not missing, "add to engine_core's public API (or ENGINE_INTERNALS, saying why): " + ", ".join(missing)


def test_plugins_import_the_public_names_that_exist():
    """What a plugin imports from ``engine_core`` itself exists there."""
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "engine_core":
                for alias in node.names:
                    assert alias.name in engine_core.__all__ or importlib.util.find_spec(f"engine_core.{alias.name}"), (
                        f"{path.relative_to(ROOT)}:{node.lineno}: engine_core has no {alias.name}"
                    )


@pytest.mark.parametrize("package", PUBLIC_SUBPACKAGES)
def test_public_subpackages_resolve_their_all(package):
    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{package}.{name}"


def test_import_engine_core_loads_no_heavy_module():
    """``import engine_core`` runs before every command and submodule import:
    the public names are imported on first use, not with the package."""
    code = (
        "import sys, engine_core\n"
        "heavy = ('numpy', 'pydantic', 'pluggy', 'engine_core.model', 'engine_core.sources')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_plugin_guide_lists_every_public_name():
    guide = (ROOT / "PLUGINS.md").read_text(encoding="utf-8")
    missing = [name for name in engine_core.__all__ if f"`{name}`" not in guide]
    assert not missing, f"PLUGINS.md does not name: {', '.join(missing)}"


# Plugin modules still importing engine_core's submodules: none (the venue
# brokers moved with the shared order tracker, issue 20). A file added here
# keeps a gap visible until it is closed.
IMPORTS_PENDING: set[str] = set()
# engine optimize drives whole runs: it imports the engine's machinery (config
# loading, the registry, the runner, the report), which is no plugin contract;
# engine dashboard is the engine's own front: it finds an engine's journal as
# the config places it, sends the control channel's commands, and merges a
# sharded run's reports as engine report merge does.
DRIVES_THE_ENGINE = {"optimize", "dashboard"}


def test_plugins_import_only_the_public_names():
    """A plugin (what a new one copies) imports from ``engine_core`` and its
    public subpackages, never from the core's modules."""
    public = {"engine_core", *PUBLIC_SUBPACKAGES}
    offenders: dict[str, list[str]] = {}
    for package in sorted(PLUGINS.glob("*/engine_plugin_*")):
        if package.parent.name in DRIVES_THE_ENGINE:
            continue
        for path in sorted(package.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine_core"):
                    if node.module not in public:
                        where = str(path.relative_to(ROOT))
                        offenders.setdefault(where, []).append(f"{node.module} (line {node.lineno})")
    unexpected = {k: v for k, v in offenders.items() if k not in IMPORTS_PENDING}
    assert not unexpected, f"import these from engine_core (or engine_core.live / .testing): {unexpected}"
    fixed = IMPORTS_PENDING - set(offenders)
    assert not fixed, f"these now import only public names: drop them from IMPORTS_PENDING: {sorted(fixed)}"

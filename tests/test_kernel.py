"""The order path's compiled modules (engine_core/kernel.py): what runs is
what the source says. A compiled module whose source changed since it was
built is never run; the group is imported from source then, and stderr says
why and how to build it again."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from engine_core import kernel

ROOT = Path(kernel.__file__).parent


def fake_group(tmp_path: Path, *, compiled: tuple[str, ...] = kernel.MODULES, record: bool = True) -> str:
    """A package folder like engine_core's: each module's source, an (empty)
    extension beside the ones in ``compiled``, and the build's record."""
    root = tmp_path / "engine_core"
    for module in kernel.MODULES:
        source = Path(kernel.source_path(module, str(root)))
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"NAME = {module!r}\n")
        if module in compiled:
            source.with_suffix(EXTENSION_SUFFIXES[0]).write_bytes(b"")
    if record:
        (root / kernel.RECORD).write_text(kernel.record_text(str(root)))
    return str(root)


@pytest.fixture
def meta_path(monkeypatch):
    """sys.meta_path as it was, whatever a check under test puts in front."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv(kernel.INTERPRETED_ENV, raising=False)
    return sys.meta_path


def test_a_group_built_from_its_sources_is_used_as_it_is(tmp_path, meta_path, capsys):
    root = fake_group(tmp_path)
    before = list(meta_path)
    assert kernel.changed(root) == []
    assert kernel.check(root) is None
    assert meta_path == before and capsys.readouterr().err == ""


def test_a_source_edited_after_the_build_runs_the_whole_group_from_source(tmp_path, meta_path, capsys):
    root = fake_group(tmp_path)
    ledger = Path(kernel.source_path("engine_core.ledger", root))
    ledger.write_text(ledger.read_text() + "# edited\n")
    assert kernel.changed(root) == ["engine_core.ledger"]
    reason = kernel.check(root)
    assert reason == "changed since they were compiled: engine_core/ledger.py"
    err = capsys.readouterr().err
    assert err.startswith("engine: the order path's modules run interpreted (slower), changed since they were")
    assert "engine_core/ledger.py" in err and "make install" in err
    finder = meta_path[0]
    for module in (
        "engine_core.ledger",
        "engine_core.worker",
        "engine_core.lua.host",
    ):  # every one, not only the edited
        spec = finder.find_spec(module)  # type: ignore[union-attr]
        assert spec.origin == kernel.source_path(module, root)
    assert finder.find_spec("engine_core.runner") is None  # type: ignore[union-attr]


def test_a_group_without_the_builds_record_is_not_trusted(tmp_path, meta_path, capsys):
    root = fake_group(tmp_path, record=False)
    assert kernel.changed(root) == list(kernel.MODULES)
    assert kernel.check(root) is not None
    assert "engine_core/worker.py" in capsys.readouterr().err


def test_a_group_compiled_in_part_runs_from_source(tmp_path, meta_path, capsys):
    root = fake_group(tmp_path, compiled=tuple(m for m in kernel.MODULES if m != "engine_core.orders"))
    assert kernel.check(root) == "not compiled with the others: engine_core/orders.py"
    assert "not compiled with the others" in capsys.readouterr().err


def test_no_compiled_module_no_check(tmp_path, meta_path, capsys):
    root = fake_group(tmp_path, compiled=(), record=False)
    assert kernel.check(root) is None
    assert capsys.readouterr().err == ""


def test_asked_for_the_sources_the_group_runs_from_them_without_a_word(tmp_path, meta_path, monkeypatch, capsys):
    root = fake_group(tmp_path)
    monkeypatch.setenv(kernel.INTERPRETED_ENV, "1")
    assert kernel.check(root) == "ENGINE_INTERPRETED is set"
    assert capsys.readouterr().err == ""
    assert meta_path[0].find_spec("engine_core.stops").origin == kernel.source_path("engine_core.stops", root)  # type: ignore[union-attr]


def imported_from(env: dict[str, str]) -> tuple[list[str], str, str]:
    """Where a fresh process imports the group's modules from, how it describes that, and its stderr."""
    code = "import importlib; from engine_core import kernel\n"
    code += "print('\\n'.join(importlib.import_module(m).__file__ for m in kernel.MODULES))\n"
    code += "print(kernel.describe())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    *files, described = out.stdout.splitlines()
    return files, described, out.stderr


def test_this_checkout_runs_its_compiled_order_path_and_can_run_it_from_source():
    """The build compiled every module of the group (make's install, as CI's),
    from the sources as they are; ENGINE_INTERPRETED=1 runs the same sources
    interpreted."""
    env = {k: v for k, v in os.environ.items() if k != kernel.INTERPRETED_ENV}
    assert kernel.compiled() == list(kernel.MODULES), "build the core again: make install"
    assert kernel.changed() == [], "a compiled module's source changed since the build: make install"
    current = subprocess.run([sys.executable, kernel.__file__, "--current"], env=env)  # what make asks
    assert current.returncode == 0
    files, described, err = imported_from(env)
    assert err == "" and all(f.endswith(EXTENSION_SUFFIXES[0]) for f in files), files
    assert described == f"the order path compiled (mypyc, {len(kernel.MODULES)} modules)"
    files, described, err = imported_from({**env, kernel.INTERPRETED_ENV: "1"})
    assert err == "" and files == [kernel.source_path(m) for m in kernel.MODULES]
    assert described == "the order path interpreted (ENGINE_INTERPRETED is set)"


def test_a_compiled_module_outside_the_group_is_not_run(tmp_path, meta_path, capsys):
    """A module that left the group keeps the extension an earlier build put
    beside it: its source runs, and stderr names the file to delete."""
    root = fake_group(tmp_path)
    sandbox = Path(root, "lua", "sandbox.py")
    sandbox.write_text("NAME = 'sandbox'\n")
    sandbox.with_suffix(EXTENSION_SUFFIXES[0]).write_bytes(b"")
    assert kernel.strays(root) == ["engine_core.lua.sandbox"]
    assert kernel.check(root) is None  # the group itself is as built
    err = capsys.readouterr().err
    assert "engine_core/lua/sandbox.py" in err and "not run" in err
    assert meta_path[0].find_spec("engine_core.lua.sandbox").origin == str(sandbox)  # type: ignore[union-attr]
    assert meta_path[0].find_spec("engine_core.ledger") is None  # type: ignore[union-attr]

"""Every hook spec is documented in the plugin guide and implemented by some test.

Static on purpose: a spec added to engine_core/hookspecs.py without a
section in PLUGINS.md (headed with its name and arguments) or without a
``@hookimpl`` of it in a test file fails here, whichever tests run.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from engine_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "PLUGINS.md"
SECTION = re.compile(r"^#{2,4} `(\w+)\(([^)]*)\)`\s*$", re.MULTILINE)


def specs() -> dict[str, list[str]]:
    """Each hook spec's name and arguments."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in vars(hookspecs).items()
        if callable(fn) and hasattr(fn, marker)
    }


def guide_sections() -> dict[str, list[str]]:
    text = GUIDE.read_text(encoding="utf-8")
    return {m[1]: [a.strip() for a in m[2].split(",") if a.strip()] for m in SECTION.finditer(text)}


def _is_hookimpl(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "hookimpl") or (
        isinstance(target, ast.Attribute) and target.attr == "hookimpl"
    )


def implemented_in_tests() -> dict[str, list[str]]:
    """Hook name -> the test files that define an ``@hookimpl`` of it."""
    files = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    found: dict[str, list[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                _is_hookimpl(d) for d in node.decorator_list
            ):
                found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_specs_are_found():
    names = specs()
    assert {"register_data_sources", "register_commands", "engine_started", "engine_log"} <= names.keys()
    assert names["engine_started"] == ["config", "engine"]


def test_every_spec_has_a_section_in_the_plugin_guide_with_its_arguments():
    sections = guide_sections()
    missing = sorted(set(specs()) - set(sections))
    assert not missing, f"{GUIDE.name} has no section headed `name(args)` for: {', '.join(missing)}"
    for name, args in specs().items():
        assert sections[name] == args, f"{GUIDE.name}: `{name}({', '.join(sections[name])})`, the spec takes {args}"


def test_the_guide_documents_no_hook_that_does_not_exist():
    hooks = {name for name in guide_sections() if name.startswith(("register_", "engine_"))}
    assert hooks <= set(specs()), sorted(hooks - set(specs()))


def test_every_spec_is_implemented_by_some_test():
    implemented = implemented_in_tests()
    missing = sorted(name for name in specs() if name not in implemented)
    assert not missing, f"no test registers a @hookimpl of: {', '.join(missing)}"

"""The run report: headline figures, report files and the terminal summary.

Each of the three is imported when first asked for: a run with
``--no-report`` does not import the report files' modules (HTML page, SVG
plots, CSV writers), nor does ``-q`` the terminal table's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_core.report.files import write_report
    from engine_core.report.metrics import summarize
    from engine_core.report.terminal import print_summary

__all__ = ["print_summary", "summarize", "write_report"]

_MODULE_OF = {"print_summary": "terminal", "summarize": "metrics", "write_report": "files"}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value

"""The build of engine-trading-core: the project's metadata is pyproject.toml;
this adds the order path's modules (``MODULES`` in engine_core/kernel.py)
compiled to C by mypyc, and the record of the sources they were compiled
from (engine_core/kernel_sources.txt), which ``import engine_core`` checks."""

import sys
from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "engine_core"))  # kernel.py alone, without importing the package
import kernel  # noqa: E402

(HERE / "engine_core" / kernel.RECORD).write_text(kernel.record_text(str(HERE / "engine_core")))
paths = [str(Path(kernel.source_path(m, "engine_core"))) for m in kernel.MODULES]
setup(ext_modules=mypycify(paths, opt_level="3", group_name="engine_core_kernel"))

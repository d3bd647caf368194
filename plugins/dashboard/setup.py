"""The build copies the front-end libraries that npm installed (package.json:
``npm ci`` in this folder) into the package, so that a wheel serves them
without node_modules. An editable install serves them from node_modules."""

from pathlib import Path
from shutil import copyfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
VENDOR = {"lightweight-charts.js": "lightweight-charts/dist/lightweight-charts.standalone.production.js"}


class BuildWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "engine_plugin_dashboard" / "static" / "vendor"
        for name, source in VENDOR.items():
            path = HERE / "node_modules" / source
            if not path.is_file():
                raise SystemExit(f"engine-plugin-dashboard: {path} is missing: run `npm ci` in {HERE} first")
            target.mkdir(parents=True, exist_ok=True)
            copyfile(path, target / name)


setup(cmdclass={"build_py": BuildWithAssets})

# The two commands a newcomer runs: `make run` and `make test`.
# Both create .venv if missing and install the core and every plugin under
# plugins/ in editable mode first. `make test` first installs the Debian
# packages the tests run (scripts/test-deps: mosquitto, chromium, npm) with apt-get
# when it can, else says what is missing and stops.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed
# Optional extras a plugin is installed with, so that their tests run too:
# EXTRAS_<plugin dir> = extra[,extra]. Ray (optimize's cluster backend) is one.
EXTRAS_optimize := ray
# The dashboard's browser tests need Playwright (its `test` extra; the browser is Debian's chromium).
EXTRAS_dashboard := test
# The dashboard's front-end libraries come from npm at install time (plugins/dashboard/package.json).
NPM_STAMP := plugins/dashboard/node_modules/.package-lock.json
plugin_spec = './$(1:/=)$(if $(EXTRAS_$(notdir $(1:/=))),[$(EXTRAS_$(notdir $(1:/=)))])'
# What the benchmarks in bench/ need beyond the tests: every plugin's `bench`
# extra (binance's: orjson, the reference its decoding is measured against).
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_PLUGINS := $(sort $(dir $(shell grep -l '^bench *=' plugins/*/pyproject.toml)))
# An editable install leaves the engine's own modules uncompiled (pip compiles
# only what it copies): with PYTHONDONTWRITEBYTECODE set, every `engine` process
# would compile them again (about 0.1 s of each start). Compiled once here, and
# again before the benchmarks; a module edited since is compiled in memory, as before.
COMPILE = $(BIN)/python -m compileall -q engine_core $(dir $(wildcard plugins/*/engine_plugin_*/__init__.py))

# The order path's modules, compiled to C by the core's own build (setup.py, mypyc;
# engine_core/kernel.py lists them): built again when one of them or the build
# changes, so that `make run`, `make test` and the benchmarks run what the source says.
KERNEL := $(shell $(PYTHON) engine_core/kernel.py)
KERNEL_STAMP := $(VENV)/.kernel-built

.PHONY: install install-bench run test test-deps lint bench clean

$(STAMP): Makefile pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	find engine_core -name '*.so' -delete
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' $(foreach d,$(PLUGIN_DIRS),-e $(call plugin_spec,$(d)))
	$(COMPILE)
	touch $(STAMP)

# (built again only when the compiled group is not its sources as they are: a checkout's new
# timestamps alone rebuild nothing, nor does the install just made)
$(KERNEL_STAMP): $(STAMP) $(KERNEL) setup.py
	$(BIN)/python engine_core/kernel.py --current || { find engine_core -name '*.so' -delete && \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . ; }
	touch $(KERNEL_STAMP)

$(NPM_STAMP): plugins/dashboard/package.json plugins/dashboard/package-lock.json
	cd plugins/dashboard && npm ci --no-audit --no-fund --loglevel=error

install: $(KERNEL_STAMP) $(NPM_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(if $(BENCH_PLUGINS),$(BIN)/python -m pip install --quiet --disable-pip-version-check $(foreach d,$(BENCH_PLUGINS),-e './$(d:/=)[bench]'))
	touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP) $(KERNEL_STAMP)

run: $(KERNEL_STAMP)
	$(BIN)/engine run -c examples/sma_cross.toml

test: test-deps lint $(NPM_STAMP)
	$(BIN)/python -m pytest

test-deps:
	@scripts/test-deps install

# mypy checks the core and each plugin's package (plugins/<name>/engine_plugin_<name>/) in one run;
# then the compiled modules again with --warn-unreachable: code mypy deems unreachable is where
# it narrowed an attribute that a call changes, and mypyc's compiled code checks what mypy inferred.
lint: $(KERNEL_STAMP)
	$(BIN)/ruff check engine_core plugins tests bench
	$(BIN)/mypy engine_core $(dir $(wildcard plugins/*/engine_plugin_*/__init__.py))
	$(BIN)/mypy --warn-unreachable --follow-imports=silent $(KERNEL)

bench: $(BENCH_STAMP) $(KERNEL_STAMP)
	$(COMPILE)
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reports build *.egg-info *.so engine_core/*.so engine_core/*/*.so engine_core/kernel_sources.txt

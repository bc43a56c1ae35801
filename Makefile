# Two commands for a fresh machine (see README):
#   make demo   set up .venv and run the main job on the embedded shapes model
#   make test   set up .venv, lint, type-check, run the whole test suite and build the docs (warnings are errors)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup browser demo test bench clean

$(BIN)/diffexplain: pyproject.toml packages/diffexplain-shapes/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from this machine's local CPU build, so nothing pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	# the core with its test tools, and the shapes testbed (pipelines, world, demo) from this repository
	$(BIN)/pip install --quiet -e '.[test,docs,shapes]' -e packages/diffexplain-shapes
	touch $@

setup: $(BIN)/diffexplain

# headless Chromium for the browser tests: Debian's packages where apt can install them (root);
# elsewhere those tests skip and say why
browser:
	@if [ ! -x /usr/bin/chromedriver ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
		>/dev/null 2>&1 || echo "chromium could not be installed: the browser tests will skip"; fi

demo: setup
	$(BIN)/diffexplain demo --out out/demo

test: setup browser
	$(BIN)/ruff check src packages training benchmarks tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --quiet

bench: setup
	$(BIN)/python -m benchmarks.shapes_fidelity

clean:
	rm -rf $(VENV) out

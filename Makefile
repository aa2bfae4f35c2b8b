# bursa: every target creates .venv/ on first use, so each works on a fresh clone.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYX := $(wildcard pyx/*.pyx pyx/*.pxd)
# Builds from concurrent shells share the tree: serialise them.
LOCK := flock .build.lock

.PHONY: all run test lint bench build debug clean annotate sim typecheck unit fuzz mm-demo

all: build

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# Build requirements first: the editable install below compiles the extensions in this venv.
	$(VPY) -m pip install -q 'setuptools==84.2.1' 'wheel==0.48.0' 'Cython==3.3.1' 'numpy==2.4.6'
	$(LOCK) $(VPY) -m pip install -q --no-build-isolation -e '.[dev]'
	touch $(STAMP)

build: $(STAMP) .build.stamp

.build.stamp: $(PYX) setup.py
	$(LOCK) $(VPY) setup.py -q build_ext --inplace
	touch .build.stamp

# Debug build (bounds checks, asserts, -O1 -g) into build/debug/, importable with
# PYTHONPATH=build/debug; the test suite runs the long random stream through it.
debug: $(STAMP) build/debug/.stamp

build/debug/.stamp: $(PYX) setup.py
	mkdir -p build/debug/pyx
	cp pyx/__init__.py build/debug/pyx/
	$(LOCK) env BURSA_DEBUG=1 $(VPY) setup.py -q build_ext --build-lib build/debug --build-temp build/debug-tmp
	touch build/debug/.stamp

run: build
	$(VPY) -m bursa run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

typecheck: lint

unit: build debug
	$(VPY) -m pytest -q -x -n 2 tests

test: lint build debug
	$(VPY) -m pytest -q -n 2 tests

# Writes bench/results/<date>/ (JSON, report.md, plots); BENCH_ARGS=--quick for a fast run.
BENCH_ARGS ?=
bench: build
	$(VPY) -m bench.run_all $(BENCH_ARGS)

sim: build
	$(VPY) -m bursa.cli sim-campaign --seeds 10000

annotate: $(STAMP)
	BURSA_ANNOTATE=1 $(LOCK) $(VPY) setup.py -q build_ext --inplace
	@echo "open pyx/*.html"

clean:
	rm -rf build .build.stamp pyx/*.c pyx/*.so pyx/*.html *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Longer coverage-guided fuzzing of the gateway's decoders (the test suite runs 100,000 inputs).
FUZZ_RUNS ?= 5000000
fuzz: build
	PYTHONPATH=. $(VPY) -m tests.gateway.fuzz_decoders -runs=$(FUZZ_RUNS)

# The example market maker through the real door: a core, a gateway, the market maker, a taker.
mm-demo: build
	PYTHONPATH=. $(VPY) -m examples.market_maker --demo --duration 5

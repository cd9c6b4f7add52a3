# Two commands do all the set-up: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CACHE  := $(CURDIR)/.cache

# Tiny models run fastest on one thread; offline always; caches inside the project.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export W2S_CACHE_DIR ?= $(CACHE)/w2s-transfer
export TORCH_EXTENSIONS_DIR ?= $(CACHE)/torch_extensions
export PREFECT_HOME ?= $(CACHE)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= WARNING
export TOKENIZERS_PARALLELISM := false
# pip installs without bytecode (--no-compile below); Python writes a module's bytecode when it is
# first imported. Where PYTHONDONTWRITEBYTECODE is set, nothing would ever be written and every
# process would compile torch, transformers and deepspeed again (~7 s of CPU per worker here).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install lint test test-fast demo bench clean

# One pip command resolves everything at once, torch pinned in it (here pip takes the CPU wheel
# from disk). --no-compile: bytecode is written on first import for the few thousand modules a
# run uses, instead of pip compiling all ~23,000 modules (~60 s of CPU, half of the install's).
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check --no-input -q --progress-bar off \
               --no-compile

# The install steps, in order: system packages, the venv, the Python packages.
# The stamp is newer than pyproject.toml after an install, so a second `make test` skips them.
$(STAMP): pyproject.toml
	@# The method jail (docs/security.md) is built by bubblewrap; as root with apt, install it.
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 \
	         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; } \
	  || echo "bubblewrap not installed: methods are jailed with util-linux as root, else not at all"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0 -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The rules that check themselves: ruff (pyproject.toml [tool.ruff]) and the import contracts
# of the dependency direction (pyproject.toml [tool.importlinter], docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check --quiet .
	@out=$$($(BIN)/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; \
	echo "$$out" | grep '^Contracts:' 

# Two pytest workers (pytest-xdist): most tests wait on one single-threaded subprocess, so two at
# a time keep both cores busy. A file's tests stay on one worker, and tests/security/ too
# (tests/conftest.py groups them). TEST_WORKERS=0 runs them in this process.
# --max-worker-restart=0: a worker that dies (the OOM killer, a segfault) ends the run with its
# test named; replaced, its pending tests were never handed out again and xdist (3.8, loadgroup)
# waited forever (seen on CI and here, 2026-12-03).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -rs \
          $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup \
          --max-worker-restart=0)
NO_TESTS := if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 1; fi; exit $$rc

test: lint
	@$(PYTEST) $(PYTEST_ARGS); rc=$$?; $(NO_TESTS)

# The tests not marked slow (a quick check while working; `make test` runs them all).
test-fast: lint
	@$(PYTEST) -m "not slow" $(PYTEST_ARGS); rc=$$?; $(NO_TESTS)

demo: $(STAMP)
	$(BIN)/w2s-transfer demo --out reports/demo

bench: $(STAMP)
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/stats_efficiency.py

clean:
	rm -rf $(VENV) $(CACHE) reports .pytest_cache

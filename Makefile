# The verbs a newcomer guesses. Everything runs from the project venv (.venv), which `make venv`
# creates from pyproject.toml; every other target depends on it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= .jobq
LISTEN ?= 127.0.0.1:7070

.PHONY: venv run test check lint fmt types imports proto proto-check unit integration kueue e2e bench kube-testenv clean

$(BIN)/jobqd: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/jobqd

## run: start jobqd (embedded admission, data in ./.jobq) and one local jobq-node; Ctrl-C stops both
run: venv
	$(BIN)/python tools/run_local.py --listen $(LISTEN) --data-dir $(DATA)

## test: everything CI checks — lint, types, import contracts, proto drift, the whole test suite
test: venv lint types imports proto-check
	$(BIN)/python -m pytest tests -q $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: venv
	$(BIN)/mypy jobqd client/jobq

imports: venv
	$(BIN)/lint-imports

proto: venv
	$(BIN)/python tools/gen_protos.py

proto-check: venv
	$(BIN)/python tools/gen_protos.py --check

unit: venv
	$(BIN)/python -m pytest tests/unit -q

integration: venv
	$(BIN)/python -m pytest tests/integration -q

e2e: venv
	$(BIN)/python -m pytest tests/e2e -q

kueue: venv kube-testenv
	JOBQ_REQUIRE_KUEUE=1 $(BIN)/python -m pytest tests/kueue -q

## kube-testenv: build (or reuse the cached) kube-apiserver + Kueue from the Go module proxy
kube-testenv:
	tools/kube-testenv/build.sh

## bench: the benchmark table (see docs/performance.md; bench/run.py --help lists each one)
bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

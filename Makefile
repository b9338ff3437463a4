# OSED Semantic — two commands: `make run` (demo) and `make test` (suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check format venv clean eval

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# CPU torch 2.13.0 first (any other torch spec would pull a multi-GB CUDA build), then the project.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## Load, label and validate the bundled demo building, store it under ./var, serve the API.
run: $(STAMP)
	$(BIN)/osed serve --demo

## The whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Format check, lint and type checks (ruff + mypy).
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: labeling (docs/benchmarks.md), grid simulation (docs/gridsim.md), OpenADR scale,
## paging the review table (docs/paging.md), the standards' own checks (docs/standards.md), 200 clients against osed serve (docs/load.md).
eval: $(STAMP)
	$(BIN)/python -m eval.report ../shared/datasets/dev > docs/benchmarks.md
	$(BIN)/python -m eval.paging --points 10000 > docs/paging.md
	$(BIN)/python -m eval.gridsim --buildings 1000 > docs/gridsim.md
	$(BIN)/python -m eval.openadr_scale --vens 200 > docs/openadr-scale.md
	$(BIN)/python -m eval.standards ../shared/datasets/dev > docs/standards.md
	$(BIN)/python -m eval.load --clients 200 --seconds 60 > docs/load.md
	$(BIN)/python -m eval.load --clients 200 --seconds 60 --timeout 5 >> docs/load.md
	$(BIN)/python -m eval.load --clients 200 --seconds 60 --decisions 0 >> docs/load.md

clean:
	rm -rf $(VENV) var

# Flowyard developer entry points. `make test` and `make run` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run demo lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.http_client

DATA_DIR ?= .flowyard

run: $(STAMP)
	for file in examples/*.yaml; do $(BIN)/flowyard import "$$file" --data-dir $(DATA_DIR) || exit 1; done
	$(BIN)/flowyard serve --data-dir $(DATA_DIR)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/testbed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(BIN)/testbed

install: $(BIN)/testbed

demo: install
	$(BIN)/testbed demo

lint: install
	$(BIN)/ruff check testbed functions tests benchmarks
	$(BIN)/mypy testbed

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/pipeline.py --scale small

clean:
	rm -rf $(VENV) testbed-demo

# The two commands a newcomer needs: `make serve` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
comma := ,

.PHONY: install serve test test-unit lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes. torch is pinned to the CPU build (torch==2.13.0).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/siyu bootstrap
	$(BIN)/siyu serve

test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install --quiet -e '.[dev,clv]'
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,) $(foreach a,$(subst $(comma), ,$(AREA)),--only $(a)) $(if $(DATASET),--dataset $(DATASET),)

clean:
	rm -rf $(VENV) data mlruns/mlflow.db mlruns/artifacts reports

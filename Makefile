# The one entry point. `make run` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck check migrate revision openapi openapi-check migrations-check bench lock

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/retention run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

migrations-check: install
	$(BIN)/python -m pytest -q tests/test_migrations.py

openapi: install
	$(BIN)/python -m services.api.openapi write

openapi-check: install
	$(BIN)/python -m services.api.openapi check

check: lint typecheck migrations-check openapi-check

migrate: install
	$(BIN)/retention migrate

revision: install
	$(BIN)/alembic revision --autogenerate -m "$(m)"

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.alert_latency --workers 2
	$(BIN)/python -m bench.backtest
	$(BIN)/python -m bench.rescore
	$(BIN)/python -m bench.import
	$(BIN)/python -m bench.reports

# Re-pin every transitive dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/retention-lock && $(PYTHON) -m venv /tmp/retention-lock
	/tmp/retention-lock/bin/pip install --quiet --upgrade "pip==26.3"
	/tmp/retention-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/retention-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

# The one entry point. `make run` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck check migrate revision openapi openapi-check migrations-check fuzz bench lock audit

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

fuzz: install
	$(BIN)/python -m tests.fuzz

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
	$(BIN)/python -m bench.scale

# Known vulnerabilities in the pinned dependencies (constraints.txt), looked up by exact version
# in PyPI's advisory data (AUDIT_SERVICE=osv for OSV). Fails when any is found (listed). When the
# service cannot be reached or does not know the versions, NOTHING was checked: that fails too,
# unless AUDIT_IF_UNREACHABLE=warn, which only says so (for machines without that access).
AUDIT_SERVICE ?= pypi
AUDIT_IF_UNREACHABLE ?= fail
AUDIT_UNREACHABLE := could not be audited|ConnectionError|NameResolutionError|blocking this service

audit: install
	@log=$$(mktemp); \
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict \
		--vulnerability-service $(AUDIT_SERVICE) --progress-spinner off >$$log 2>&1; status=$$?; \
	if [ $$status -ne 0 ] && grep -qE "$(AUDIT_UNREACHABLE)" $$log; then \
		grep -E "$(AUDIT_UNREACHABLE)" $$log | tail -n 1; \
		echo "make audit: NOT CHECKED: the vulnerability service ($(AUDIT_SERVICE)) could not be used from this machine, so no dependency was audited." >&2; \
		if [ "$(AUDIT_IF_UNREACHABLE)" = warn ]; then status=0; else status=2; fi; \
	else \
		grep -v -e "fully hash their pinned" -e "pip-compile" $$log; \
	fi; \
	rm -f $$log; exit $$status

# Re-pin every transitive dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/retention-lock && $(PYTHON) -m venv /tmp/retention-lock
	/tmp/retention-lock/bin/pip install --quiet --upgrade "pip==26.3"
	/tmp/retention-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/retention-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

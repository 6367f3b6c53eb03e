# Billing Desk: two commands set everything up on a fresh machine.
#   make demo   venv, install, migrate, sandboxes + seed, serve http://127.0.0.1:5000
#   make test   install (with Chromium), ruff, tests on SQLite and PostgreSQL, browser tests,
#               and the end-to-end test of the running stack on both databases

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_UNIT := -m "not browser and not bench and not e2e" -p no:cacheprovider

.PHONY: install chromium postgres demo test lint test-sqlite test-postgres test-units \
	test-browser test-e2e bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Billing Desk needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Browser tests drive Debian's Chromium; Playwright never downloads a browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Chromium from Debian's packages..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
		echo "Starting PostgreSQL..."; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; }

lint: install
	$(BIN)/ruff check .

test-sqlite: install
	DESK_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_UNIT)

test-postgres: install postgres
	DESK_TEST_DATABASE=postgresql $(BIN)/pytest $(PYTEST_UNIT)

# Both databases at once, one per core (each run has its own database and ports); each
# run's output is shown whole after both end, SQLite first.
test-units: install postgres
	@mkdir -p .test-logs
	@( DESK_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_UNIT) > .test-logs/sqlite.log 2>&1; \
		echo $$? > .test-logs/sqlite.rc ) & \
	DESK_TEST_DATABASE=postgresql $(BIN)/pytest $(PYTEST_UNIT) > .test-logs/postgresql.log 2>&1; \
		echo $$? > .test-logs/postgresql.rc; wait; \
	echo "===== the suite on SQLite"; cat .test-logs/sqlite.log; \
	echo "===== the suite on PostgreSQL"; cat .test-logs/postgresql.log; \
	[ "$$(cat .test-logs/sqlite.rc)" = 0 ] && [ "$$(cat .test-logs/postgresql.rc)" = 0 ]

test-browser: install chromium
	DESK_TEST_DATABASE=sqlite $(BIN)/pytest -m browser -p no:cacheprovider

# The whole stack as `make demo` starts it (sandboxes, gunicorn, the scheduler), on free
# ports, driven over HTTP through a month of billing: once on SQLite, once on PostgreSQL.
test-e2e: install chromium postgres
	DESK_TEST_DATABASE=sqlite $(BIN)/pytest -m e2e -p no:cacheprovider tests/e2e
	DESK_TEST_DATABASE=postgresql $(BIN)/pytest -m e2e -p no:cacheprovider tests/e2e

# The full suite, as CI runs it. Ends with pytest's summary of the end-to-end run.
test: install chromium postgres
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-units
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory test-e2e

bench: install postgres
	$(BIN)/pytest -m bench -p no:cacheprovider -s tests/bench

# The sandbox profile: the demo's own SQLite file and keys under instance/, base URLs
# pointing at the local sandboxes (a start outside it needs an explicit DATABASE_URL).
demo: install
	DESK_SANDBOX=1 $(BIN)/flask --app app:create_app desk demo

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis .test-logs

# Billing Desk: two commands set everything up on a fresh machine.
#   make demo   venv, install, migrate, sandboxes + seed, serve http://127.0.0.1:5000
#   make test   install (with Chromium), ruff, tests on SQLite and PostgreSQL, browser tests,
#               the installed wheel's check, and the end-to-end test of the running stack
#               on both databases
#   make lock   regenerate constraints.txt (the tested versions) from a clean venv

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_UNIT := -m "not browser and not bench and not e2e and not install" -p no:cacheprovider

.PHONY: install chromium postgres demo test lint test-sqlite test-postgres test-units \
	test-browser test-e2e test-install lock bench clean

install: $(VENV)/.installed

# The versions in constraints.txt, the ones tested together (pyproject.toml has the ranges).
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Billing Desk needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
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

# Production's install: a wheel, installed (not editable) with constraints.txt into a
# clean venv outside the checkout, migrated on a new PostgreSQL database, served by
# gunicorn with the shipped config next to a scheduler; readiness, a sign-in, request ids.
test-install: install postgres
	$(BIN)/pytest -m install -p no:cacheprovider tests/install

# The full suite, as CI runs it. Ends with pytest's summary of the end-to-end run.
test: install chromium postgres
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-units
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory test-install
	$(MAKE) --no-print-directory test-e2e

# constraints.txt afresh: the newest versions within pyproject.toml's ranges, as a clean
# install of .[dev] resolves them (README: Upgrading dependencies). Then run make test.
lock:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --upgrade pip; \
	"$$tmp/venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$$tmp/dist" .; \
	rm -rf build; \
	"$$tmp/venv/bin/pip" install --quiet "$$(ls "$$tmp"/dist/billing_desk-*.whl)[dev]"; \
	{ sed -n '/^#/p' constraints.txt; \
	  "$$tmp/venv/bin/pip" freeze --exclude billing-desk; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" constraints.txt
	@echo "constraints.txt regenerated; now: make test, then commit it with pyproject.toml"

bench: install postgres
	$(BIN)/pytest -m bench -p no:cacheprovider -s tests/bench

# The sandbox profile: the demo's own SQLite file and keys under instance/, base URLs
# pointing at the local sandboxes (a start outside it needs an explicit DATABASE_URL).
demo: install
	DESK_SANDBOX=1 $(BIN)/flask --app app:create_app desk demo

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis .test-logs

# PoV: `make run` to start, `make test` to test. Only Python 3.11+ is needed on the machine.
# Without DATABASE_URL both use the embedded PostgreSQL under var/postgres (pov/localdb.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 8000
# Runs a command with the embedded PostgreSQL up (nothing to start when DATABASE_URL is set).
WITH_DB := $(PY) pov/localdb.py run

.PHONY: run serve test lint bench load clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# Local settings for this checkout, so `.venv/bin/python manage.py ...` works like `make run`.
.env:
	printf '# Written by make run for local use; .env.example lists every variable.\nDEBUG=1\n' > .env

# Ctrl-C stops web, worker, beat and the embedded PostgreSQL; the data stays for the next run.
run: export DEBUG ?= 1
run: export SITE_URL ?= http://127.0.0.1:$(PORT)
run: $(VENV)/.runtime .env
	@$(PY) pov/localdb.py --stop run -- $(MAKE) --no-print-directory serve

serve:
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	@echo ""
	@echo "  PoV is starting at $(SITE_URL)/  (Ctrl-C stops web, worker, beat and the database)"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -p $(PORT)

# Two processes, each with its own test database, Celery queue and cache prefix (pov/settings_test.py);
# TEST_PROCESSES=0 runs the suite in one. PYTEST_ARGS passes more (e.g. a folder, -k NAME).
TEST_PROCESSES ?= 2
test: $(VENV)/.dev
	$(WITH_DB) -- $(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# mypy loads the settings without connecting: a placeholder URL keeps them from starting the embedded database.
	DATABASE_URL=postgres://lint@localhost/lint $(BIN)/mypy
	DEBUG=1 $(WITH_DB) -- $(PY) manage.py makemigrations --check --dry-run

# DEBUG only lets settings load without a SECRET_KEY; the benchmark measures with DEBUG off (in-process and gunicorn).
bench: export DEBUG ?= 1
bench: $(VENV)/.dev
	$(WITH_DB) -- env DJANGO_SETTINGS_MODULE=bench.settings $(PY) manage.py bench --scale $(or $(SCALE),100k)

# A minute of mixed API and page traffic (locust) against gunicorn and a Celery worker, in a database of its own.
load: export DEBUG ?= 1
load: $(VENV)/.dev
	$(WITH_DB) -- $(PY) -m loadtest.run --seconds $(or $(LOAD_SECONDS),60) --users $(or $(LOAD_USERS),20)

clean:
	-test -x $(PY) && $(PY) pov/localdb.py stop
	rm -rf var/ .pytest_cache .ruff_cache .mypy_cache

# PoV: `make run` to start, `make test` to test. Only Python 3.11+ is needed on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint bench load clean

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

run: export DEBUG ?= 1
run: $(VENV)/.runtime .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	@echo ""
	@echo "  PoV is starting at http://127.0.0.1:8000/  (Ctrl-C stops web, worker and beat)"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

test: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# DEBUG only lets settings load without a SECRET_KEY; the benchmark measures with DEBUG off (in-process and gunicorn).
bench: export DEBUG ?= 1
bench: $(VENV)/.dev
	@test -n "$$DATABASE_URL" || { echo "make bench needs DATABASE_URL pointing at PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/pov_bench)"; exit 2; }
	$(PY) manage.py bench --scale $(or $(SCALE),100k)

# A minute of mixed API and page traffic (locust) against gunicorn and a Celery worker, in a database of its own.
load: export DEBUG ?= 1
load: $(VENV)/.dev
	@test -n "$$DATABASE_URL" || { echo "make load needs DATABASE_URL pointing at PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/postgres); it creates and drops a database of its own"; exit 2; }
	$(PY) -m loadtest.run --seconds $(or $(LOAD_SECONDS),60) --users $(or $(LOAD_USERS),20)

clean:
	rm -rf var/ .pytest_cache .ruff_cache

# Quick start: `make run` (try the assistant) and `make test` (run the tests). Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run chat test lint catalogs check bench

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	PYTHONWARNINGS=ignore PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/pip install --quiet -e '.[dev]'  # the build's setuptools too; no banners
	touch $@

install: $(BIN)/.installed

run: install  ## the webhook and the phone simulator on http://127.0.0.1:5000 (SQLite, no Twilio needed)
	$(BIN)/assistant db upgrade
	$(BIN)/assistant run --host 127.0.0.1 --port $${PORT:-5000}

chat: install  ## talk to the assistant in the terminal instead
	$(BIN)/assistant chat

test: install  ## the whole test suite (the command CI runs)
	$(BIN)/ruff check .
	@[ -n "$$TEST_DATABASE_URL" ] || echo "TEST_DATABASE_URL is not set: the PostgreSQL tests are skipped (README, Quick start)"
	@[ -x "$${CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null || echo "Chromium is missing (/usr/bin/chromium, or set CHROMIUM): the browser tests are skipped (README, Quick start)"
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

catalogs: install  ## after editing messages/*.toml: refresh the .pot and every language's catalog
	$(BIN)/pybabel extract -F babel.cfg -o locales/messages.pot --project "Caregiver Assistant" --version 1 \
		--no-wrap --sort-by-file .
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-wrap --previous
	$(BIN)/assistant catalog carry
	$(BIN)/assistant catalog check

check: install  ## what a coordinator must fix before publishing catalog changes
	$(BIN)/assistant catalog check

bench: install  ## classification speed (against rapidfuzz WRatio and difflib), SMS and voice webhook load, publishing
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/publish.py

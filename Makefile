# The course's commands. `make help` lists them.
# Two commands on a fresh machine: `make book` (builds the site) and `make test`.
# Both create the virtual environment first when it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help setup system-deps hub-proxy book book-clean test test-fast lint format lab grade generate check-generated bench db db-stop db-url formgrader

help:
	@echo "make setup      create .venv with the pinned environment (and chromium/postgresql when root)"
	@echo "make book       build the textbook, executing every page -> _build/html/index.html"
	@echo "make test       lint, then run every test (builds the book if needed)"
	@echo "make test-fast  the unit tests of the reference library only"
	@echo "make lab        open JupyterLab with the course environment and nbgrader"
	@echo "make formgrader open nbgrader's formgrader on grade's gradebook: [WORK=grading/] [DB=url]"
	@echo "make grade      grade a folder of submissions: make grade SUBMISSIONS=path/ [ASSIGNMENT=name]"
	@echo "make generate   regenerate solutions/ cells and the student notebooks/"
	@echo "make db         start a local PostgreSQL gradebook (Debian's postgresql); prints its URL"
	@echo "make bench      run the benchmarks and write benchmarks/results/"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) system-deps hub-proxy

# the course JupyterHub's proxy (deploy/jupyterhub/): configurable-http-proxy,
# pinned by package-lock.json, into deploy/jupyterhub/node_modules/ (git-ignored)
HUB_DIR := deploy/jupyterhub
hub-proxy: $(HUB_DIR)/node_modules/.installed

$(HUB_DIR)/node_modules/.installed: $(HUB_DIR)/package.json $(HUB_DIR)/package-lock.json | system-deps
	@if command -v npm >/dev/null; then \
		cd $(HUB_DIR) && npm ci --silent --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "note: install node (20 or newer) and npm for the JupyterHub test"; \
	fi

# chromium (browser tests), postgresql (gradebook tests) and node/npm (the
# JupyterHub's proxy) come from Debian.
# Installed only when running as root with apt; otherwise the tests that need
# them say what is missing.
system-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v npm >/dev/null; then \
		echo "system packages present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver postgresql >/dev/null; \
		command -v npm >/dev/null || command -v node >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
			|| echo "note: nodejs/npm could not be installed; the JupyterHub test will say so"; \
	else \
		echo "note: install chromium, chromium-driver, postgresql and nodejs/npm for the browser, gradebook and JupyterHub tests"; \
	fi

book: $(STAMP)
	$(PY) book/_tools/build.py

book-clean:
	rm -rf _build test-output/book

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(JOBS) --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser" tests/trainlab

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check src tests autograder benchmarks deploy

format: $(STAMP)
	$(PY) -m ruff format src tests autograder benchmarks deploy
	$(PY) -m ruff check --fix .

lab: $(STAMP)
	$(PY) -m autograder.authoring.lab

# grade written answers by hand, on the work folder and gradebook of `make grade`
formgrader: $(STAMP)
	$(PY) -m autograder.authoring.lab --instructor $(if $(WORK),--work $(WORK)) $(if $(DB),--db '$(DB)')

grade: $(STAMP)
	$(PY) -m autograder grade $(SUBMISSIONS) $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT)) $(if $(WORK),--work $(WORK)) $(if $(DB),--db '$(DB)')

generate: $(STAMP)
	$(PY) -m autograder.authoring.generate

check-generated: $(STAMP)
	$(PY) -m autograder.authoring.generate --check

# a PostgreSQL gradebook in grading/postgres/ (a Unix socket there, no port):
# `make db` prints the URL for `grade --db` (or TRAINLAB_DB_URL)
db: $(STAMP)
	$(PY) -m autograder.outputs.postgres start

db-url: $(STAMP)
	@$(PY) -m autograder.outputs.postgres url

db-stop: $(STAMP)
	$(PY) -m autograder.outputs.postgres stop

bench: $(STAMP)
	$(PY) -m benchmarks

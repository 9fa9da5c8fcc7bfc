# 智慧生活圈 backend. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
EMBEDDED_ENV := env -u DATABASE_URL -u REDIS_URL -u ELASTICSEARCH_URL -u TEST_DATABASE_URL SMARTCIRCLE_PROFILE=embedded
PYTEST_ARGS ?=
BENCH_FULL ?=
BENCH_ARGS := $(if $(filter 1,$(BENCH_FULL)),--full,)

.PHONY: help install migrate makemigrations demo serve lint test test-embedded test-services \
        services-up services-down browser-up reindex bench-tools bench bench-full bench-services clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP) ## create the virtualenv, install pinned Python and front-end packages

migrate: install ## apply database migrations (embedded SQLite unless DATABASE_URL is set)
	$(BIN)/python -m server migrate

makemigrations: install ## write migrations for model changes
	$(BIN)/tortoise -c server.orm.TORTOISE_ORM makemigrations

demo: install ## migrate, load demo data and serve on http://127.0.0.1:8000 (embedded profile)
	$(EMBEDDED_ENV) $(BIN)/python -m server migrate
	$(EMBEDDED_ENV) $(BIN)/python -m fixtures load
	$(EMBEDDED_ENV) $(BIN)/sanic server.app:create_app --factory --host $(HOST) --port $(PORT)

serve: install ## serve with the current environment's settings
	$(BIN)/sanic server.app:create_app --factory --host $(HOST) --port $(PORT) --workers $${SMARTCIRCLE_WORKERS:-1}

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy backend search crowdsource venues residents admin_console fixtures server bench
	$(BIN)/lint-imports

test-embedded: install browser-up bench-tools ## the suite on the embedded profile (SQLite, in-process KV, database search)
	@echo "===== test run 1/2: embedded profile ====="
	$(EMBEDDED_ENV) $(BIN)/pytest $(PYTEST_ARGS)

test-services: install services-up browser-up bench-tools ## the suite against real PostgreSQL, Redis and Elasticsearch
	@echo "===== test run 2/2: services profile (PostgreSQL, Redis, Elasticsearch) ====="
	source var/services/env && $(BIN)/pytest $(PYTEST_ARGS)

test: install lint test-embedded test-services ## install, lint, type-check, run both profiles

services-up: ## install (if needed) and start PostgreSQL, Redis, Elasticsearch on 127.0.0.1
	bash scripts/services-up.sh

browser-up: ## install (if needed) Debian's Chromium and a Chinese font for the console's browser tests
	bash scripts/browser-up.sh

services-down: ## stop the services (data stays under var/)
	bash scripts/services-down.sh

reindex: install ## rebuild the Elasticsearch venue index and swap the alias (services settings)
	$(BIN)/python -m server reindex

bench-tools: ## install the HTTP load generator of the bench (wrk, Debian package) if missing
	bash scripts/bench-tools.sh

bench: install bench-tools ## real server under load, embedded profile (~5 min; BENCH_FULL=1: full data)
	$(EMBEDDED_ENV) $(BIN)/python -m bench --profile embedded $(BENCH_ARGS)

bench-full: ## make bench with 100,000 venues and 1,000,000 holdings
	$(MAKE) bench BENCH_FULL=1

bench-services: install bench-tools services-up ## the bench on PostgreSQL, Redis, Elasticsearch, with their ceilings
	source var/services/env && $(BIN)/python -m bench --profile services $(BENCH_ARGS)

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var node_modules

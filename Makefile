# PrivateVault: `make demo` runs the main job, `make test` passes the tests. See README.md.
SHELL := /bin/bash
VENV  := .venv/bin
PY    := $(VENV)/python
DEMO_DIR ?= .demo

.PHONY: help setup demo demo-down test test-unit test-integration lint generate verify bench lock image clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install what a fresh machine lacks (PostgreSQL, Prometheus, .venv, control plane, helm); idempotent
	@tools/setup.sh

demo: setup ## Start a local control plane, PostgreSQL, OpenBao and the operator; apply examples/
	@$(VENV)/pvctl demo up --workdir $(DEMO_DIR) $(DEMO_ARGS)

demo-down: ## Stop everything `make demo` started
	@if [ -x $(VENV)/pvctl ]; then $(VENV)/pvctl demo down --workdir $(DEMO_DIR); else echo "nothing to stop"; fi

test: setup verify lint ## Unit, integration and end-to-end tests on the real control plane, PostgreSQL and OpenBao
	@$(PY) -m pytest tests -q --timeout=900

test-unit: setup ## Unit tests only (no services)
	@$(PY) -m pytest tests/unit -q

lint: setup ## ruff, mypy --strict and the import-linter layer contracts
	@$(VENV)/ruff check operator tests tools
	@$(VENV)/mypy
	@$(VENV)/mypy tools/image/build.py
	@$(VENV)/lint-imports

generate: ## Write the CRDs in crds/ (and the chart's copies) from the models, the chart README's values table, the check reference
	@$(PY) -m privatevault crds generate crds
	@cp crds/*.yaml charts/privatevault/crds/
	@$(PY) tools/chart_readme.py
	@$(PY) -m privatevault api openapi docs/openapi/read-api.json
	@$(PY) tools/compliance_checks.py

verify: ## Fail when committed generated files drift from their sources
	@$(PY) -m privatevault crds verify crds
	@$(PY) -m privatevault crds verify charts/privatevault/crds
	@$(PY) tools/chart_readme.py --check
	@$(PY) -m privatevault api openapi --check docs/openapi/read-api.json
	@$(PY) tools/compliance_checks.py --check

lock: ## Refresh requirements-dev.lock and requirements.lock (newest versions pyproject.toml allows, with hashes)
	@tools/lock.sh --upgrade $(LOCK_ARGS)

image: setup ## Build the operator's OCI image into .image/ (skipped when its inputs are unchanged)
	@$(PY) tools/image/build.py $(IMAGE_ARGS)

bench: setup ## Benchmarks on the real PostgreSQL; prints figures and writes .bench/results.json
	@$(PY) -m tests.bench --out .bench/results.json

clean: demo-down ## Remove local state (keeps the control plane binary cache)
	rm -rf $(DEMO_DIR) .bench .image .pytest_cache .mypy_cache .ruff_cache

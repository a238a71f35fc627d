# Sada — the two commands people need are `make run` and `make test`; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(CURDIR)
CACHE := $(or $(SADA_CACHE_DIR),$(ROOT)/.cache)
UV := $(shell command -v uv 2>/dev/null || echo $(CACHE)/uv/bin/uv)
PY := $(ROOT)/.venv/bin/python
INFRA := deploy/local/infra.sh
PYTEST := $(ROOT)/.venv/bin/pytest

.PHONY: help run test deploy-check demo lint fmt typecheck unit component integration e2e infra-up infra-down infra-status infra-logs bench bench-report soak venv dashboard-png contracts chromium report-samples

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(CACHE)/uv/bin/uv:
	python3 -m pip install --quiet --disable-pip-version-check --target $(CACHE)/uv uv

.venv/.synced: pyproject.toml uv.lock | $(if $(filter $(CACHE)/%,$(UV)),$(UV))
	$(UV) sync --frozen --quiet
	@touch $@

venv: .venv/.synced  ## create or update the virtualenv from uv.lock

infra-up: venv  ## start Kafka, FerretDB and the SMTP sink on 127.0.0.1
	$(INFRA) up

chromium:  ## install Debian's chromium (when missing) for the tests that render pages in a real browser
	deploy/local/chromium.sh >/dev/null

infra-down:  ## stop the local infrastructure (data kept)
	$(INFRA) down

infra-status:  ## show what runs where
	$(INFRA) status

infra-logs:  ## tail the infrastructure logs
	$(INFRA) logs

run: infra-up  ## bring up the infrastructure and every service, print where they listen
	$(PY) -m deploy.local.run

deploy-check:  ## validate compose, Dockerfile, k8s manifests, Prometheus rules and the dashboard
	deploy/check.sh

demo: venv  ## send the samples and some broken inputs through both doors of a running `make run`; show where each went
	$(PY) -m deploy.local.demo

dashboard-png: venv  ## plot the dashboard's key queries from the Prometheus of a running `make run`
	$(PY) -m deploy.local.dashboard_png

report-samples: venv chromium  ## regenerate docs/report-*.html and their screenshots (headless Chromium)
	$(PY) -m tests.report_samples docs

contracts: venv  ## regenerate docs/asyncapi.yaml and docs/openapi-*.json from the code
	$(PY) -m deploy.contracts

lint: venv  ## ruff (lint + format check) and mypy strict
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

unit: venv
	$(PYTEST) -m unit tests/unit

component: venv
	$(PYTEST) -m component tests/component

# The integration tests also run Sada over production's transport: infra.sh adds Kafka's SASL_SSL
# listener (SCRAM-SHA-512), FerretDB's TLS listener and the SMTP sink's STARTTLS. `make run` and
# `make infra-up` alone stay plaintext.
test integration: export SADA_KAFKA_SASL_PORT ?= 9094
test integration: export SADA_MONGO_TLS_PORT ?= 27019
test integration: export SADA_SMTP_STARTTLS_PORT ?= 1587

integration: chromium infra-up
	$(PYTEST) -m integration tests/integration

e2e: infra-up
	$(PYTEST) -m e2e tests/e2e

test: lint deploy-check chromium infra-up  ## lint, types, then unit, component, integration and e2e tests on real infrastructure
	$(PYTEST) tests --durations=40 --durations-min=5

bench: infra-up  ## throughput and latency against raw aiokafka / PyMongo (not part of `make test`)
	$(PY) -m bench
	$(PY) -m bench.consultation_report

soak: venv  ## 200,000 submissions through the five services, checked exactly once, flat RSS, reads at size (does not complete on FerretDB at that size, see README; SOAK_ARGS="--n 20000 --readme" ~12 min; not part of `make test`)
	$(PY) -m bench.soak $(SOAK_ARGS)

bench-report: infra-up  ## the summary of views of 100,000 of 500,000 submissions (bench/README.md)
	$(PY) -m bench.consultation_report

fmt: venv  ## format and auto-fix
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

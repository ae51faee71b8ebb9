# Two entry points (see README): `make quickstart` and `make test`.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install quickstart test lint checkov
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The whole pipeline, locally (`ops pipeline`): the local cloud bootstrapped from terraform/
# (time scale 10), a synthetic data set, a 2-trial tuning job and training, promotion to the
# autoscaled endpoint, and a Locust load test through the Lambda function with its verdict.
# The local cloud stays up afterwards; `.venv/bin/ops local down` stops it.
quickstart: install
	$(BIN)/ops pipeline

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# checkov lives in its own venv: it pins boto3==1.35.49 and its bc-python-hcl2 overwrites the
# python-hcl2 the terraform tests use (shared NOTES.md).
CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $@

# Fails on failed checks and on parsing errors (checkov itself exits 0 on those).
checkov: $(CHECKOV_VENV)/.installed
	CHECKOV=$(CHECKOV_VENV)/bin/checkov bash tests/terraform/run_checkov.sh

# lint (after the project's install) and checkov (after its own venv's) side by side: the two
# installs are independent and mostly wait on downloads and unpacking; then the test suite.
test:
	$(MAKE) --jobs=2 --output-sync=target lint checkov
	$(BIN)/pytest

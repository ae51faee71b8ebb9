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

# Synthetic data in the dogImages layout, then a short CPU training run that writes a
# self-contained SageMaker-style model artifact to runs/quickstart/model.
quickstart: install
	$(BIN)/ops data synth data/synth --classes 5 --per-class 24
	$(BIN)/python -m ml.train --data data/synth --model-dir runs/quickstart/model \
	  --output-data-dir runs/quickstart/output --checkpoint-dir runs/quickstart/checkpoints \
	  --arch resnet18 --weights none --image-size 64 --epochs 8 --batch-size 16 \
	  --learning-rate 0.003 --test
	@echo "model artifact: runs/quickstart/model  (serve it: $(BIN)/ops serve runs/quickstart/model)"

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

test: lint checkov
	$(BIN)/pytest

# Every target bootstraps what it needs: a fresh clone needs only this Makefile, Python 3.12
# (pyenv's 3.12.1 here, python3 as a fallback) and the package registry.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PYENV_VERSION ?= 3.12.1
PYTHON_BOOT ?= $(shell PYENV_VERSION=$(PYENV_VERSION) command -v python3.12 >/dev/null 2>&1 && PYENV_VERSION=$(PYENV_VERSION) python3.12 -c '' 2>/dev/null && echo python3.12 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
# uv installs the three venvs below (about 10 s in all, against about 2 minutes for pip), so
# `make test` on a fresh clone stays near its 10-minute budget. uv lives in its own small venv,
# installed by pip from the package registry, and reads the same pins (constraints.txt); each venv
# is seeded with pip, which sam build (in .venv-sam) and a wheel-building test (in .venv) call.
UV_VENV := .venv-uv
UV_VERSION := 0.13.9
UV := $(UV_VENV)/bin/uv
# uv takes an interpreter's path; PYTHON_BOOT is a command (pyenv's shim, or python3).
PYTHON_EXE = $(shell PYENV_VERSION=$(PYENV_VERSION) $(PYTHON_BOOT) -c 'import sys; print(sys.executable)')
export UV_LINK_MODE ?= copy
export UV_NO_PROGRESS ?= 1
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
# checkov pins boto3 exactly (and packaging<24, networkx<2.7), which clashes with ours: own venv too.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
# Tests and local tools never talk to real AWS: fake credentials keep botocore from looking further.
TEST_ENV := AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing \
	AWS_DEFAULT_REGION=$(AWS_REGION) AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0 \
	POWERTOOLS_TRACE_DISABLED=1 POWERTOOLS_METRICS_NAMESPACE=sinfer POWERTOOLS_SERVICE_NAME=sinfer

.PHONY: help uv venv sam-venv checkov-venv lint security fmt test test-unit models openapi build demo local bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The stamp names the version, so changing UV_VERSION reinstalls.
$(UV_VENV)/.stamp-$(UV_VERSION):
	$(PYTHON_BOOT) -m venv --clear $(UV_VENV)
	echo '*' > $(UV_VENV)/.gitignore
	$(UV_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	touch $@

uv: $(UV_VENV)/.stamp-$(UV_VERSION)  ## uv, in its own venv, which installs the others

$(VENV)/.stamp: pyproject.toml constraints.txt $(UV_VENV)/.stamp-$(UV_VERSION)
	$(UV) venv --quiet --clear --seed --python "$(PYTHON_EXE)" $(VENV)
	$(UV) pip install --quiet --python $(PY) --compile-bytecode -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.stamp  ## create .venv with the package and its dev extras (pinned by constraints.txt)

$(SAM_VENV)/.stamp-$(SAM_VERSION): $(UV_VENV)/.stamp-$(UV_VERSION)
	$(UV) venv --quiet --clear --seed --python "$(PYTHON_EXE)" $(SAM_VENV)
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python aws-sam-cli==$(SAM_VERSION)
	touch $@

sam-venv: $(SAM_VENV)/.stamp-$(SAM_VERSION)  ## aws-sam-cli in its own venv (its pins clash with ours)

# The stamp names the version, so changing CHECKOV_VERSION reinstalls. The venv ignores itself in
# git (the .gitignore that Python 3.13's venv writes).
$(CHECKOV_VENV)/.stamp-$(CHECKOV_VERSION): $(UV_VENV)/.stamp-$(UV_VERSION)
	$(UV) venv --quiet --clear --python "$(PYTHON_EXE)" $(CHECKOV_VENV)
	echo '*' > $(CHECKOV_VENV)/.gitignore
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python checkov==$(CHECKOV_VERSION)
	touch $@

checkov-venv: $(CHECKOV_VENV)/.stamp-$(CHECKOV_VERSION)  ## checkov in its own venv (its pins clash with ours)

# template.yaml as SAM deploys it: SAM's translator (the one `sam validate` runs, pinned by
# SAM_VERSION) expands the AWS::Serverless resources into plain CloudFormation, so that checkov
# also checks what SAM generates (function roles and their policies, permissions, the API stage,
# rules, event source mappings). Local code folders become placeholder S3 URIs, as in
# `sam validate`; Metadata is passed through, so the suppressions on a SAM resource reach the
# resources generated from it.
define SAM_TRANSLATE
import json, logging, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# It warns about each feature its empty feature-toggle config lacks; nothing to act on.
logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
source, target = sys.argv[1:]
with open(source, encoding="utf-8") as f:
    template = yaml_parse(f.read())
for resource in template["Resources"].values():
    props = resource.get("Properties") or {}
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
            props[key] = "s3://local-code/" + props[key].strip("/")

class NoManagedPolicies:
    def load(self):
        return {}

translated = transform(template, {}, NoManagedPolicies(), passthrough_metadata=True)
with open(target, "w", encoding="utf-8") as f:
    json.dump(translated, f, indent=1)
endef
export SAM_TRANSLATE

security: sam-venv checkov-venv  ## checkov on template.yaml, as written and as SAM translates it (.checkov.yaml)
	@mkdir -p .aws-sam/checkov
	$(TEST_ENV) $(SAM_VENV)/bin/python -c "$$SAM_TRANSLATE" template.yaml .aws-sam/checkov/template.json
	$(CHECKOV) --config-file .checkov.yaml -f template.yaml -f .aws-sam/checkov/template.json

lint: venv sam-venv security  ## ruff, mypy, cfn-lint, sam validate --lint, checkov (make security)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(TEST_ENV) $(SAM) validate --lint --region $(AWS_REGION) --template template.yaml

fmt: venv  ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Two workers, each taking whole test files (fixtures are per module; the load test is one file).
PYTEST_WORKERS ?= 2

test: lint build  ## everything CI runs: lint, sam build + size check, then unit, functional and integration tests
	$(TEST_ENV) $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-unit: venv  ## unit tests only (no network, no subprocesses)
	$(TEST_ENV) $(PY) -m pytest -q tests/unit

models: venv  ## rebuild the demo models from scikit-learn's bundled data sets
	$(PY) models/build_models.py

openapi: venv  ## regenerate the committed OpenAPI document
	$(PY) -m sinfer.api.openapi --write

build: venv sam-venv  ## sam build, compile to bytecode, report unzipped sizes against Lambda's 250 MB limit
	PATH="$(abspath $(SAM_VENV))/bin:$$PATH" $(TEST_ENV) $(SAM) build --template template.yaml --build-dir .aws-sam/build
	$(PY) scripts/compile_bytecode.py .aws-sam/build --template template.yaml
	$(PY) scripts/deployment_size.py .aws-sam/build

demo: venv  ## tour of every mode that has landed, on this machine, no AWS account, no Docker
	$(TEST_ENV) $(PY) -m sinfer.cli.main demo

local: venv  ## keep the embedded stack up for interactive use
	$(TEST_ENV) $(PY) -m sinfer.cli.main local

bench: venv  ## benchmarks against baselines run side by side
	$(TEST_ENV) $(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(UV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

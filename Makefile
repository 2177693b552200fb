# sketch2image: `make run` (the whole service locally) and `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed on its own: a plain `torch` requirement would pull the newest CUDA build.
TORCH_SPEC ?= torch==2.14.1
PYTEST_ARGS ?=
PORT ?= 8000
TRAINER ?=

.PHONY: venv serving-venv trainer-venv run test lint format lint-deploy bench clean

# serving only (API, ONNX Runtime worker, local Redis): no torch
$(VENV)/.serving: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[api,worker,local]"
	touch $@

# + training, exporting and the trainer service
$(VENV)/.trainer: $(VENV)/.serving
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[api,worker,local,trainer,fid]"
	touch $@

# everything the tests and linters need
$(VENV)/.installed: $(VENV)/.serving
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

serving-venv: $(VENV)/.serving
trainer-venv: $(VENV)/.trainer
venv: $(VENV)/.installed

ifeq ($(TRAINER),1)
run: $(VENV)/.trainer
	$(PY) -m services.local --port $(PORT) --trainer
else
run: $(VENV)/.serving
	$(PY) -m services.local --port $(PORT)
endif

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
	$(PY) -m benchmarks.baseline
	$(PY) -m benchmarks.latency
	$(PY) -m benchmarks.int8
	$(PY) -m benchmarks.train
	$(PY) -m benchmarks.worker_footprint

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

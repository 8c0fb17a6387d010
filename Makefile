# edge_vision developer commands (no ROS install needed; see README.md).
#   make setup   create/refresh .venv (idempotent; seconds when nothing changed)
#   make run     the main job on the embedded default
#   make test    set-up, lint, then every test
#   make lint    ruff (99 columns) and hadolint
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Isolate test traffic from other ROS 2 processes on this machine.
TEST_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

.PHONY: setup run test lint clean

setup:
	@$(PYTHON) tools/setup_env.py --venv $(VENV)

run: setup
	$(VENV)/bin/edge-vision run $(ARGS)

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/hadolint docker/Dockerfile docker/jetson.Dockerfile

test: lint
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache

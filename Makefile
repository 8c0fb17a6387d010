# edge_vision developer commands (no ROS install needed; see README.md).
#   make setup   create/refresh .venv (idempotent; seconds when nothing changed)
#   make run     the main job on the embedded default
#   make test    the three legs' set-ups side by side, then lint and each leg's tests in turn:
#                  test-kilted       lint + all tests in .venv (Kilted wheels, Python 3.11, or
#                                    the sourced ROS 2 distro)
#                  test-jazzy        the ROS package's and integration tests in .venv-jazzy
#                                    (Jazzy wheels, Python 3.12)
#                  test-humble-core  the core's unit tests in .venv-humble-core (Python 3.10,
#                                    Ubuntu 22.04's numpy 1.21 / OpenCV 4.5)
#   make lint    ruff (99 columns) and hadolint
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JAZZY_VENV ?= .venv-jazzy
HUMBLE_CORE_VENV ?= .venv-humble-core
# Isolate test traffic from other ROS 2 processes on this machine.
TEST_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# The jazzy and humble-core legs are self-contained wheel environments: a sourced ROS 2 distro
# must not leak its paths into them.
NO_ROS_ENV := env -u ROS_DISTRO -u ROS_VERSION -u ROS_PYTHON_VERSION -u PYTHONPATH \
	-u AMENT_PREFIX_PATH -u CMAKE_PREFIX_PATH -u COLCON_PREFIX_PATH -u LD_LIBRARY_PATH
# What the humble-core leg runs: the ROS-free core's unit tests.
CORE_PYTEST_ARGS ?= src/edge_vision_core/test
# What the Jazzy leg runs: the nodes on Jazzy's rclpy and Fast DDS 2.14, on Python 3.12 (the
# ROS package's tests import every core module there; the core's unit tests run in the Kilted
# leg with the same numpy/OpenCV, and on 3.10 in the humble-core leg).
JAZZY_PYTEST_ARGS ?= src/edge_vision/test test

.PHONY: setup setup-jazzy setup-humble-core run test test-kilted test-jazzy test-humble-core \
	lint clean

setup:
	@$(PYTHON) tools/setup_env.py --venv $(VENV)

setup-jazzy:
	@$(NO_ROS_ENV) $(PYTHON) tools/setup_env.py --distro jazzy --venv $(JAZZY_VENV)

setup-humble-core:
	@$(NO_ROS_ENV) $(PYTHON) tools/setup_env.py --distro humble-core --venv $(HUMBLE_CORE_VENV)

run: setup
	$(VENV)/bin/edge-vision run --tune $(ARGS)

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/hadolint docker/Dockerfile docker/jetson.Dockerfile

# The set-ups run side by side (downloads, unpacking and the interface builds overlap; apt and
# the editable installs take turns, see tools/setup_env.py), the tests one leg after another
# (legs side by side would share the two cores and make timing checks flaky).
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=target setup setup-jazzy setup-humble-core
	@$(MAKE) --no-print-directory test-kilted test-jazzy test-humble-core

test-kilted: lint
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# The Jazzy leg checks the same code on another distro's wheels: its node fuzzing sends 250
# inputs per node (the Kilted leg sends the full 1000) to keep the three legs under 30 minutes.
test-jazzy: setup-jazzy
	$(NO_ROS_ENV) $(TEST_ENV) EDGE_VISION_FUZZ_INPUTS=$${EDGE_VISION_FUZZ_INPUTS:-250} \
		$(JAZZY_VENV)/bin/python -m pytest $(or $(PYTEST_ARGS),$(JAZZY_PYTEST_ARGS))

test-humble-core: setup-humble-core
	$(NO_ROS_ENV) $(HUMBLE_CORE_VENV)/bin/python -m pytest $(CORE_PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(JAZZY_VENV) $(HUMBLE_CORE_VENV) build install log .pytest_cache .ruff_cache

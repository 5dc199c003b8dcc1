# Every target builds .venv from nothing when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-busy test-swarm test-arm test-cluster lint fuzz bench docs clean

# The interpreter .venv was made with: `make run PYTHON=python3.12` remakes it with that one.
INTERPRETER := $(VENV)/.interpreter

$(STAMP): pyproject.toml $(INTERPRETER)
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is needed")'
	$(PYTHON) -m venv --clear $(VENV)
	echo '$(PYTHON)' > $(INTERPRETER)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Rewritten (so newer than the stamp) only when PYTHON names another interpreter.
$(INTERPRETER): FORCE
	@mkdir -p $(VENV)
	@echo '$(PYTHON)' | cmp -s - $@ || echo '$(PYTHON)' > $@

FORCE:

run: $(STAMP)
	$(BIN)/funker-dispatch serve

# The same suite while stress-ng keeps every core, 2 GiB of memory and loopback sockets busy
# (docs/robustness.md): no verdict may depend on an idle machine. Installs stress-ng as root.
test-busy: $(STAMP)
	tests/busy.sh $(MAKE) test

# tests/swarm needs a Docker engine and takes minutes: `make test-swarm` runs it.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --ignore=tests/swarm --ignore=tests/cluster --ignore=tests/arm
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The documentation site in site/: broken links and anchors fail the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Builds every image of docker-stack.yml from the working tree and deploys the
# stack on the engine's swarm ($DOCKER, else docker on PATH); skipped, saying
# so, when no engine answers `docker info`.
test-swarm: $(STAMP)
	$(BIN)/python -m pytest tests/swarm

# The dispatcher and hello images built for arm64 and armv7 and run under QEMU, answering a
# signed request. Needs the engine started with FUNKER_ENGINE_ARCHES="arm64 armv7" and its env
# lines (FUNKER_ENGINE_PYTHON_ARM64/ARMV7); skipped, saying so, without. On 2 CPUs: ~3 min
# with no build cache (armv7 compiles cffi), ~20 s warm; the engine's ARM bases come first.
test-arm: $(STAMP)
	$(BIN)/python -m pytest tests/arm

# A real three-node swarm (../shared/engine/docker-swarm-cluster.sh up 3, as root) with
# HAProxy in front: each fault of docs/deployment.md under a stream of signed requests,
# zero lost asserted. Skipped, saying so, without the cluster, the engine or haproxy.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest tests/cluster

# The long fuzz run; `make test` runs a bounded one (150 examples per property).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest tests/fuzz

# The a / a' / b table, then how b's cost grows (routes, model, trigger rules).
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/growth.py
	$(BIN)/python bench/events.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build site *.egg-info

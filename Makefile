# zanzara: `make run` starts the broker, `make test` runs every check.
# Both create .venv and install what they need on a fresh Debian machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: run test lint typecheck layers pytest system-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

## run: start the broker on its defaults (127.0.0.1:1883); pass flags with ARGS="--port 1884 -v"
run: $(VENV)/.installed
	$(BIN)/zanzara $(ARGS)

## system-deps: the real peers the tests talk to (mosquitto_pub/sub, mosquitto_passwd, redis-server,
## Node.js for MQTT.js, Chromium for MQTT.js in a browser)
system-deps:
	@missing=""; \
	command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v mosquitto_passwd >/dev/null || missing="$$missing mosquitto"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(APT) update -qq && $(APT) install -y -qq $$missing >/dev/null; \
	fi
	@for tool in mosquitto_pub mosquitto_sub mosquitto_passwd redis-server node npm chromium; do \
	  command -v $$tool >/dev/null || { echo "$$tool is still missing" >&2; exit 1; }; \
	done

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

layers: $(VENV)/.test-installed
	$(BIN)/lint-imports

tests/js/node_modules/mqtt/package.json: tests/js/package.json | system-deps
	cd tests/js && npm install --no-audit --no-fund

# The sans-I/O modules and the core: branch coverage below this fails `make test`.
COVERED := src/zanzara/core/*,src/zanzara/mqtt/*,src/zanzara/protocol.py,src/zanzara/session.py,src/zanzara/topic_tree.py,src/zanzara/message.py,src/zanzara/throttle.py
COVERAGE_FLOOR ?= 95

## pytest: the whole suite once, in two worker processes (most tests wait on sockets), with
## asyncio's debug mode and branch coverage; the report of the pure modules and the core follows,
## and fails below COVERAGE_FLOOR percent
pytest: $(VENV)/.test-installed system-deps tests/js/node_modules/mqtt/package.json
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -n 2 --cov --cov-report=
	$(BIN)/coverage report --include='$(COVERED)' --fail-under=$(COVERAGE_FLOOR)

## test: lint, types, layer contracts, then the whole test suite
test: lint typecheck layers pytest

## bench: compare against Mosquitto with ../shared/bench (see bench/README.md)
bench: $(VENV)/.installed
	bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

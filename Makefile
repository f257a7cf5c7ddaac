# The two commands: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test typecheck bench clean system-deps

$(STAMP): setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(PY) -m radicale_plugin.serve --config config/radicale.conf

# test files run in parallel (pytest-xdist; tests/conftest.py says what must not); the 15
# slowest tests are listed at the end.  TEST_WORKERS=0: all in one process.
TEST_WORKERS ?= auto
test: $(STAMP) system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

# Debian packages the tests drive: headless Chromium and its driver (the pages' tests), and
# PostgreSQL's server (the tests start throwaway clusters of their own; the packaged service
# is not used).  Installed with apt-get when missing (CI runs as root); otherwise the advice
# says what to do.
SYSTEM_BINARIES := chromium chromedriver
SYSTEM_PACKAGES := chromium chromium-driver postgresql
system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing (Debian packages: $(SYSTEM_PACKAGES))"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing - run as root, or: sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

typecheck: $(STAMP)
	$(PY) -m mypy radicale_plugin bridge

# the fan-out benchmarks build worlds in $TMPDIR/mecard-bench (up to ~3 GB, deleted by
# fanout_scale.py) and take about an hour in all on 2 cores; see README.md, Performance
bench: $(STAMP)
	$(PY) bench/merge_vs_vobject.py
	$(PY) bench/bridge_selection.py
	$(PY) bench/fanout_throughput.py 1000
	$(PY) bench/fanout_latency.py --recipients 1000
	$(PY) bench/fanout_burst.py
	$(PY) bench/fanout_scale.py
	$(PY) bench/postgres_fanout.py

clean:
	rm -rf $(VENV) data .pytest_cache

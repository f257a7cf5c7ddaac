# The two commands: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test typecheck bench clean

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
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

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

clean:
	rm -rf $(VENV) data .pytest_cache

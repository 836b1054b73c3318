# funnelkit: the two commands of the README, and the set-up they need.
#   make report   renders the sample data's quarterly reports into reports/
#   make test     runs the whole test suite
# Both create .venv and install the package on first use (and again when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.funnelkit-installed
# Every render gets an execution timeout (papermill can hang in a widget cell without one).
REPORT_ARGS ?= --all-quarters

.PHONY: report test venv browser bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

report: $(STAMP)
	$(VENV)/bin/funnelkit report data/sample $(REPORT_ARGS) --out reports/

# Headless Chromium for the browser tests: Debian's package (never a downloaded browser build).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium: browser tests will skip"; \
	else echo "chromium not found and cannot install it here: browser tests will skip"; fi

test: $(STAMP) browser
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=300 -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m pip install --quiet --quiet -e '.[bench]'
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) reports .pytest_cache

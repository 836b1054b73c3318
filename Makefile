# funnelkit: the commands of the README, and the set-up they need.
#   make report   renders the sample data's quarterly reports into reports/
#   make explore  starts JupyterLab on the explorer notebook (notebooks/explore.ipynb)
#   make test     runs the whole test suite (on the default engine, in-process DuckDB)
#   make test-fast  the suite without browser tests and end-to-end renders (a few minutes)
#   make test-lowest-pandas  the fast suite in a second venv with the lowest pandas pyproject allows
#   make engines  runs the cross-engine group: the ported metrics' hand tests on PySpark local[2] and
#                 on a throwaway PostgreSQL server on 127.0.0.1 (installed with apt, stopped after)
# Each creates .venv and installs the package on first use (and again when pyproject.toml changes),
# saying what it does: a line per step, then pip's own lines (a few minutes on a fresh machine).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.funnelkit-installed
# Every render gets an execution timeout (papermill can hang in a widget cell without one).
REPORT_ARGS ?= --all-quarters

# JupyterLab refuses to run as root unless told so (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
EXPLORE_ARGS ?=

.PHONY: report explore test test-fast test-lowest-pandas venv browser fonts bench engines clean messages

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> [1/4] creating the virtual environment $(VENV) (once)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/4] upgrading pip"
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "==> [3/4] installing funnelkit and its dependencies into $(VENV) (a few minutes the first time; pip's progress follows)"
	@$(PY) -m pip install --progress-bar on -e '.[test]'
	@echo "==> [4/4] registering the notebook kernel"
	@$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)
	@echo "==> set-up done: run the CLI as $(VENV)/bin/funnelkit (or 'source $(VENV)/bin/activate', then funnelkit)"

report: $(STAMP) fonts
	@echo "==> rendering every quarter of data/sample into reports/ (one progress step per quarter)"
	$(VENV)/bin/funnelkit report data/sample $(REPORT_ARGS) --out reports/
	@echo "==> open reports/index.html in a browser"

explore: $(STAMP)
	@echo "==> starting JupyterLab on notebooks/explore.ipynb (Ctrl-C twice to stop)"
	$(VENV)/bin/jupyter lab notebooks/explore.ipynb $(ALLOW_ROOT) $(EXPLORE_ARGS)

# Headless Chromium for the browser tests: Debian's package (never a downloaded browser build).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium: browser tests will skip"; \
	else echo "chromium not found and cannot install it here: browser tests will skip"; fi

# Fonts for chart labels in every script (funnelkit/fonts.py): Noto CJK (Chinese, Japanese, Korean)
# and Noto core (Arabic, Hebrew, Devanagari, ...), from Debian's packages. macOS and Windows have
# system fonts for these scripts; conda users get them from environment.yml.
FONT_PACKAGES := fonts-noto-cjk fonts-noto-core
fonts:
	@if ! command -v dpkg >/dev/null 2>&1; then :; \
	else missing=""; for p in $(FONT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's$$missing for chart labels in every script"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "could not install$$missing: charts may lack some scripts"; \
	else echo "fonts missing:$$missing (apt-get install$$missing): charts may lack some scripts"; fi; fi

test: $(STAMP) browser fonts
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=300 -p no:cacheprovider -m "not engines" --durations=25

# Java (for Spark) must be on the machine; PostgreSQL is installed by .ci/postgres when missing.
# ENGINES=postgres (or pyspark) runs one engine only, installing only its extra.
ENGINE_TESTS ?= tests/test_metrics_stages.py tests/test_metrics_movement.py tests/test_reopen.py tests/test_metrics_stage_time.py tests/test_metrics_breakdown.py tests/test_engine.py tests/test_database_folder.py \
	tests/test_metrics_closing.py tests/test_metrics_size.py tests/test_dates_estimated_durations.py tests/test_metrics_forecast.py tests/test_exact_sums.py
ENGINES ?= postgres pyspark
engines: $(STAMP)
	$(PY) -m pip install --quiet --quiet -e '.[test,$(subst $(eval) ,$(comma),$(strip $(ENGINES)))]'
	@bash -c 'set -e; trap ".ci/postgres stop" EXIT; \
		export FUNNELKIT_TEST_POSTGRES="$$(.ci/postgres start)"; \
		$(PY) -m pytest $(ENGINE_TESTS) -m engines -k "$(subst $(eval) , or ,$(strip $(ENGINES)))" -p no:cacheprovider -q'
comma := ,

test-fast: $(STAMP) fonts
	$(PY) -m pytest tests -q -m "not slow and not browser and not engines" -p no:cacheprovider

# The lowest pandas pyproject.toml allows ("pandas>=2.2" -> pandas==2.2.*), read from pyproject so
# the two never disagree; everything else resolves as in a fresh install.
LOWEST_PANDAS := $(shell sed -n 's/.*"pandas>=\([0-9.]*\).*/\1/p' pyproject.toml)
LOWEST_VENV ?= .venv-lowest-pandas
LOWEST_STAMP := $(LOWEST_VENV)/.funnelkit-installed

$(LOWEST_STAMP): pyproject.toml
	@test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --quiet --upgrade pip
	$(LOWEST_VENV)/bin/python -m pip install --quiet --quiet -e '.[test]' 'pandas==$(LOWEST_PANDAS).*'
	$(LOWEST_VENV)/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(LOWEST_STAMP)

test-lowest-pandas: $(LOWEST_STAMP) fonts
	$(LOWEST_VENV)/bin/python -c "import pandas; print('pandas', pandas.__version__)"
	$(LOWEST_VENV)/bin/python -m pytest tests -q -m "not slow and not browser and not engines" -p no:cacheprovider --durations=15

# Message catalogs (funnelkit/i18n.py): extract every marked string and the notebooks' markdown cells
# into funnelkit/locale/messages.pot, merge it into each language's messages.po (new entries empty,
# never guessed: tests/test_i18n.py lists what is left to translate), compile the committed messages.mo
# (funnelkit.i18n.compile_catalogs: pybabel compile reads "80% range" as a %-placeholder).
LOCALE_DIR := funnelkit/locale
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k gettext_ --sort-by-file --no-wrap \
		--project funnelkit --copyright-holder "funnelkit authors" -o $(LOCALE_DIR)/messages.pot funnelkit notebooks
	$(VENV)/bin/pybabel update -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR) -D messages \
		--no-fuzzy-matching --no-wrap --ignore-obsolete
	$(PY) -c "from funnelkit.i18n import compile_catalogs; print(*compile_catalogs())"

bench: $(STAMP)
	$(PY) -m pip install --quiet --quiet -e '.[bench]'
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) reports .pytest_cache

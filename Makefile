# The venv lives in a cache keyed by the dependency lock, so CI and fresh
# clones on the same machine reuse it instead of reinstalling torch; a new
# machine (or a changed lock) simply builds a new one. `.venv` links to it.
PYTHON      ?= python3.11
CACHE_DIR   ?= $(HOME)/.cache/moodmoji
LOCK_HASH   := $(shell cat requirements.lock | sha256sum | cut -c1-16)
VENV_DIR    := $(CACHE_DIR)/venv-$(LOCK_HASH)
VENV        := .venv
BIN         := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup test demo bench lint format lock clean

setup: $(VENV_DIR)/.complete
	@ln -sfn $(VENV_DIR) $(VENV)
	@# Editable install of this checkout: cheap, and re-pointed on every run so
	@# a cached venv always serves the clone that runs it.
	@PYTHONWARNINGS=ignore $(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat >/dev/null
	@echo "venv ready: $(VENV) -> $(VENV_DIR)"

# The lock hash is in the folder name, so the marker alone says "built from this lock";
# a timestamp prerequisite would rebuild it in every fresh clone.
$(VENV_DIR)/.complete:
	@# No .complete marker means a half-built venv (or none): start over.
	rm -rf $(VENV_DIR)
	@mkdir -p $(CACHE_DIR)
	$(PYTHON) -m venv $(VENV_DIR)
	$(VENV_DIR)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV_DIR)/bin/pip install -q -r requirements.lock
	touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

DEMO_TEXT ?= I just got the job, so happy!
demo: setup
	$(BIN)/moodmoji demo "$(DEMO_TEXT)" --out emoji.png

# Speed measurements; each writes its own section of docs/benchmarks.md.
bench: setup
	$(BIN)/moodmoji bench sentiment
	$(BIN)/moodmoji bench worker

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Rebuild requirements.lock from pyproject.toml in a throwaway venv.
lock:
	rm -rf /tmp/moodmoji-lock && $(PYTHON) -m venv /tmp/moodmoji-lock
	/tmp/moodmoji-lock/bin/pip install -q -e '.[dev]'
	( echo "# Exact versions the venv is built from (pip freeze of a fresh install of pyproject.toml[dev])."; \
	  echo "# Regenerate with \`make lock\` after changing dependencies; the venv cache is keyed by this file."; \
	  /tmp/moodmoji-lock/bin/pip freeze --exclude-editable | grep -v '^moodmoji' ) > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

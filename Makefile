# Two commands set everything up: `make run` and `make test`.
# Both create (or reuse) .venv and install the project from pinned versions.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run backend test lint bench mutate lock clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/creditdesk

backend: $(STAMP)
	$(BIN)/creditdesk-backend serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/usage.py

# Mutation testing of the money modules ([tool.mutmut] in pyproject.toml): a surviving mutant is a rule
# no test holds. One worker, so it shares the machine; `make mutate MUTANTS='backend.clawbacks.*'` does one module.
MUTANTS ?=
MUTATION_STAMP := $(VENV)/.mutation-installed

$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[test,mutation]"
	touch $(MUTATION_STAMP)

mutate: $(MUTATION_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/mutmut run --max-children 1 $(MUTANTS)
	$(BIN)/mutmut results

# Re-pin every package after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[test,mutation]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^creditdesk' > requirements/lock.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache mutants

# Two commands set everything up: `make run` and `make test`.
# Both create (or reuse) .venv and install the project from pinned versions: `make run` what the app
# needs, `make test` the test tools as well.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APP    := $(VENV)/.installed-app
TOOLS  := $(VENV)/.installed-test
DIST_TOOLS := $(VENV)/.installed-dist
# Packages go in with uv (pinned here, installed into the venv by pip): the same pinned versions as pip would
# install, in a third of the time (a fresh .venv for the tests: 13 s instead of 40 s). Compiled to bytecode as pip
# does: where PYTHONDONTWRITEBYTECODE is set (as on CI), every process would otherwise compile what it imports.
UV_VERSION := 0.13.9
INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements/lock.txt

.PHONY: run backend test test-fast lint bench mutate lock clean dist release-keys release release-refresh release-rotate

$(APP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(INSTALL) -e .
	touch $(APP)

$(TOOLS): $(APP)
	$(INSTALL) -e ".[test]"
	touch $(TOOLS)

run: $(APP)
	$(BIN)/creditdesk

backend: $(APP)
	$(BIN)/creditdesk-backend serve

lint: $(TOOLS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite in parallel (pytest-xdist): most tests wait on processes they start, so twice the cores pays.
# `make test WORKERS=1` runs it in one process. Bytecode is cached for the run even where PYTHONDONTWRITEBYTECODE
# is set (as on CI): the suite starts hundreds of backends and apps, and each would compile the project's modules
# again (0.3 s of CPU a backend), and every worker the tests' assertion rewriting (6 s each); the caches are in
# __pycache__ folders, which git ignores.
WORKERS ?= 4
PYTEST  := PYTHONDONTWRITEBYTECODE= QT_QPA_PLATFORM=offscreen $(BIN)/pytest -n $(WORKERS) --dist worksteal

test: lint
	$(PYTEST)

# The edit-run loop: in-process tests only, no PostgreSQL, browser, processes or slow tests (under two minutes).
test-fast: $(TOOLS)
	$(PYTEST) -m "not (postgresql or browser or subprocess or slow)"

bench: $(TOOLS)
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/spends.py
	$(BIN)/python bench/usage.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/backend_memory.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/startup.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/handoff.py

# Mutation testing of the money modules ([tool.mutmut] in pyproject.toml): a surviving mutant is a rule
# no test holds. One worker, so it shares the machine; `make mutate MUTANTS='backend.clawbacks.*'` does one module.
MUTANTS ?=
MUTATION_STAMP := $(VENV)/.mutation-installed

$(MUTATION_STAMP): $(TOOLS)
	$(INSTALL) -e ".[test,mutation]"
	touch $(MUTATION_STAMP)

mutate: $(MUTATION_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/mutmut run --max-children 1 $(MUTANTS)
	$(BIN)/mutmut results

# The standalone app (dist/creditdesk/, PyInstaller, one folder) and its Debian package (dist/creditdesk_*.deb),
# configured by packaging/build.toml (or CONFIG=...); a build whose inputs have not changed is not made again.
CONFIG ?= packaging/build.toml

$(DIST_TOOLS): $(APP)
	$(INSTALL) -e ".[dist]"
	touch $(DIST_TOOLS)

dist: $(DIST_TOOLS)
	$(BIN)/python packaging/build_app.py --config $(CONFIG)

# The update repository (UPDATE_REPO, default dist/update-repo: publish it as it is) and its signing keys, kept
# out of this repository in CREDITDESK_RELEASE_KEYS (README, Release). `make release VERSION=1.2.0` signs the
# bundle `make dist` built (NOTES='what is new' or NOTES_FILE=path; PATCH=1 adds a bsdiff patch).
UPDATE_REPO ?= dist/update-repo
RELEASE = $(BIN)/python packaging/release.py --repo $(UPDATE_REPO)

release-keys: $(APP)
	$(RELEASE) keys

release: $(APP)
	@test -n "$(VERSION)" || { echo "make release: say which version: make release VERSION=1.2.0" >&2; exit 2; }
	$(RELEASE) release --version "$(VERSION)" --notes "$(NOTES)" $(if $(NOTES_FILE),--notes-file "$(NOTES_FILE)") \
		$(if $(PATCH),--patch)

release-refresh: $(APP)
	$(RELEASE) refresh

release-rotate: $(APP)
	$(RELEASE) rotate --role "$(ROLE)"

# Re-pin every package after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[test,mutation]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^creditdesk' > requirements/lock.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache mutants

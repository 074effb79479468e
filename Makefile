# salesbot — the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run chat demo test browser graphviz postgresql lint typecheck unit bench clean model eval

# (Re)install when the venv is missing or the declared dependencies changed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The bot on embedded defaults: SQLite at ./salesbot.db, the default policy and, with no
# Slack credentials, the local playground in the browser. Ctrl-C stops it.
run: $(STAMP)
	@$(BIN)/salesbot check
	@echo "Open the playground at http://$${SALESBOT_HOST:-127.0.0.1}:$${SALESBOT_PORT:-3000}/ (Ctrl-C to stop)."
	@$(BIN)/salesbot serve

# A conversation in the terminal instead of the browser.
chat: $(STAMP)
	@$(BIN)/salesbot chat

# The decision primitives on their own, without a store.
demo: $(STAMP)
	@echo '$$ salesbot score "We have a $$5000 budget, I am the CTO and we want to start next month"'
	@$(BIN)/salesbot score 'We have a $$5000 budget, I am the CTO and we want to start next month'
	@echo
	@echo '$$ salesbot quote --qty 10 --sku PRO --discount 20%'
	@$(BIN)/salesbot quote --qty 10 --sku PRO --discount 20%
	@echo
	@echo '$$ salesbot narrative "This is urgent, we need priority support" --credit 580'
	@$(BIN)/salesbot narrative 'This is urgent, we need priority support' --credit 580

test: $(STAMP) browser graphviz postgresql lint typecheck unit

# The browser test drives Debian's Chromium through Playwright; nothing is downloaded from
# anywhere but Debian's package archive.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# `salesbot report` draws the flow diagram with Graphviz's `dot` (Debian's package, as the
# browser test's Chromium); the report still writes without it and says so on stderr.
DOT ?= /usr/bin/dot
graphviz:
	@test -x $(DOT) || { \
	  echo "installing Debian's graphviz for the report's flow diagram"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }

# The store's PostgreSQL tests start a throwaway cluster from Debian's server binaries
# (tests/support/postgres.py); nothing is installed as a service that stays running.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the store's tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# The benches' own extras (the Agents SDK echo bot the Teams bench compares against, py-spy
# for --profile) are installed here only, never by `make run` or `make test`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

# Retrain the reader on data/understanding/train (same inputs, same file), then put the
# printed SHA-256 into domain/policies/default.toml's [understanding] table.
model: $(STAMP)
	$(BIN)/salesbot train --data data/understanding/train --out domain/policies/models/default-reader.json --verbose

# The held-out figures of docs/understanding.md: the frozen test split, then the conversations.
eval: $(STAMP)
	$(BIN)/salesbot eval --data data/understanding/test
	$(BIN)/salesbot eval --data data/understanding/conversations.jsonl

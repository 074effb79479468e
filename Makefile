# salesbot — the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

# (Re)install when the venv is missing or the declared dependencies changed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Until the server lands (runtime, Slack and playground issues), `make run` shows the
# domain primitives on the embedded default policy, and says so.
run: $(STAMP)
	@echo "salesbot $$($(BIN)/python -c 'import domain; print(domain.GENERATOR)'): the chat server is not built yet;"
	@echo "showing the decision primitives on the embedded default policy instead."
	@echo
	@echo '$$ salesbot check'
	@$(BIN)/salesbot check
	@echo
	@echo '$$ salesbot score "We have a $$5000 budget, I am the CTO and we want to start next month"'
	@$(BIN)/salesbot score 'We have a $$5000 budget, I am the CTO and we want to start next month'
	@echo
	@echo '$$ salesbot quote --qty 10 --sku PRO --discount 20%'
	@$(BIN)/salesbot quote --qty 10 --sku PRO --discount 20%
	@echo
	@echo '$$ salesbot narrative "This is urgent, we need priority support" --credit 580'
	@$(BIN)/salesbot narrative 'This is urgent, we need priority support' --credit 580

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

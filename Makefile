# Two commands on a fresh machine: `make serve` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8765

.PHONY: install serve test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/mcp-connectors serve --transport http --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check mcp_server tests
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check mcp_server tests
	$(BIN)/ruff format --check mcp_server tests
	$(BIN)/pyright

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

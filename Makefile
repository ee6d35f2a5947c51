# Two commands on a fresh machine: `make serve` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8765

FASTMCP_VENV := .cache/fastmcp-venv

.PHONY: install bytecode serve test lint clean corpus bench-openapi bench interop

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The editable install leaves our own modules uncompiled; where PYTHONDONTWRITEBYTECODE is set (common in
# containers) every start would compile all of them again (~75 ms). Only stale files are recompiled.
bytecode: install
	$(BIN)/python -m compileall -q mcp_server

serve: bytecode
	$(BIN)/mcp-connectors serve --transport http --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check mcp_server tests
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check mcp_server tests
	$(BIN)/ruff format --check mcp_server tests
	$(BIN)/pyright

# Not part of `make test`: downloads ~75 MB of OpenAPI documents and installs FastMCP in its own venv.
$(FASTMCP_VENV)/.installed:
	$(PYTHON) -m venv $(FASTMCP_VENV)
	$(FASTMCP_VENV)/bin/python -m pip install --quiet fastmcp
	touch $@

corpus: install $(FASTMCP_VENV)/.installed
	$(BIN)/python bench/corpus.py --fastmcp $(FASTMCP_VENV)/bin/python $(CORPUS_ARGS)

bench-openapi: install $(FASTMCP_VENV)/.installed
	$(BIN)/python bench/corpus.py --fetch-only
	$(BIN)/python bench/openapi_bench.py --fastmcp $(FASTMCP_VENV)/bin/python

# Not part of `make test`: the peers benchmark (~10 min; BENCH_ARGS=--quick for a ~2-minute smoke run into
# .cache/bench-quick). Bench-only tools (matplotlib, psutil, py-spy) are installed into .venv when missing.
bench: bytecode $(FASTMCP_VENV)/.installed
	$(BIN)/python -c "import matplotlib, psutil" 2>/dev/null || $(BIN)/python -m pip install --quiet matplotlib psutil
	test -x $(BIN)/py-spy || $(BIN)/python -m pip install --quiet py-spy
	-$(BIN)/python bench/corpus.py --fetch-only
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Not part of `make test`: independent MCP clients against the server, unchanged (~1 min): the official
# TypeScript SDK client over stdio and Streamable HTTP, and the MCP conformance suite's server scenarios.
# Needs npm once, to install interop/node_modules (Node 22 itself is one of those packages); see interop/README.md.
# INTEROP_ARGS=ts-stdio (or any of the steps run.sh lists) runs part of it.
interop: install
	interop/run.sh $(INTEROP_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

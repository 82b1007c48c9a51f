# batchpatch: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	# the newest aiohttp, as a user installing batchpatch into a fresh environment gets it
	$(BIN)/python -m pip install --quiet --upgrade aiohttp
	touch $(STAMP)

demo: install
	@$(BIN)/python samples/demo.py

test: install
	@$(BIN)/python -c "import aiohttp; print('aiohttp', aiohttp.__version__)"
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache samples/out

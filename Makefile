# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck clean

install: $(STAMP)

$(STAMP): setup.py package.xml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: a looser spec pulls several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/stereo-depth demo --out-dir out/demo

test: install
	$(BIN)/python -m pytest -q test
	$(BIN)/python -m mypy

# The lint tests alone (flake8 and pep257; the sources they check: test/test_lint.py).
lint: install
	$(BIN)/python -m pytest -q -m linter test/test_lint.py

# mypy alone (`make test` runs it too, after the tests).
typecheck: install
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) out build *.egg-info

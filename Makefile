# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow bench install install-test install-demo install-bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-demo: $(VENV)/.installed-demo
install-bench: $(VENV)/.installed-bench

# Trains SimpleRNN, LSTM and GRU on the adding problem; prints a table, writes PNGs to out/demo.
demo: install-demo
	$(PY) -m jaxrnn demo

test: install-test
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow"

test-slow: install-test
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m slow

# Side-by-side speed run on this machine's CPU (about an hour on 2 cores), then time and memory vs T
# and H, then the floor any lax.scan RNN has here (roofline), then XLA:CPU's bfloat16 loop stacking
# with and without jaxrnn's workaround (bf16_stacking); writes benchmarks/RESULTS.md and
# benchmarks/scaling.png. On a GPU machine: --suite gpu.
bench: install-bench
	$(PY) -m benchmarks.run --suite cpu --json benchmarks/results/cpu.json
	$(PY) -m benchmarks.scaling --json benchmarks/results/scaling.json --png benchmarks/scaling.png
	$(PY) -m benchmarks.roofline --results benchmarks/results/cpu.json --json benchmarks/results/roofline.json
	$(PY) -m benchmarks.bf16_stacking --json benchmarks/results/bf16_stacking.json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

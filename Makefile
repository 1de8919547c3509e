# Two-command set-up: `make demo` and `make test` each create .venv when absent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch that lies on this machine's disk (a looser pin pulls a CUDA build).
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,distributed,cf,zarr]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ionofield demo --samples data_samples --out demo_output

# The real IONEX / ionPrf files beside the checkout, when there (tests skip otherwise).
REALDATA ?= $(wildcard ../shared/realdata)

test: $(STAMP)
	IONOFIELD_REALDATA=$(REALDATA) $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check ionofield tests benchmarks

docs: $(STAMP)
	$(PY) -c "import sphinx, numpydoc, sphinx_autosummary_accessors, pydata_sphinx_theme" 2>/dev/null \
		|| $(PY) -m pip install --quiet -e ".[docs]"
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/read_ionex.py
	$(PY) benchmarks/read_ro.py
	$(PY) benchmarks/background.py
	$(PY) benchmarks/tec_cache.py
	$(PY) benchmarks/perf.py
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/osse.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache

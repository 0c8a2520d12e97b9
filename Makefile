# `make install`: create .venv if missing and install the package with $(EXTRAS) (then `. .venv/bin/activate`).
# `make test`: install, then run pytest.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The setup.cfg extras `make install` puts into .venv (comma-separated; add an extra here).
EXTRAS ?= cpu,test,serving

.PHONY: test install clean demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) setup.py setup.cfg
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	# The gRPC client; --no-deps so it does not pull the full tensorflow wheel beside tensorflow-cpu.
	$(PY) -m pip install --quiet --no-deps "tensorflow-serving-api~=2.21.0"
	touch $@

install: $(VENV)/.installed

test: install
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# `make demo`: train CLIP, Symile, ConFu and Gated Symile on Symile XOR, print the table, export.
demo: install
	OPENBLAS_NUM_THREADS=1 $(PY) tools/demo.py --workdir demo_out

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

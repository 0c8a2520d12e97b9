# `make install`: create .venv if missing and install the package with $(EXTRAS) (then `. .venv/bin/activate`).
# `make test`: install, then run pytest (all tests; PYTEST_ARGS='-m "not slow"' skips the slow ones).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The setup.cfg extras `make install` puts into .venv (comma-separated; add an extra here).
EXTRAS ?= cpu,test,serving,faiss,plot

.PHONY: test install install-hub clean demo lint format

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) setup.py setup.cfg
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	# The gRPC client; --no-deps so it does not pull the full tensorflow wheel beside tensorflow-cpu.
	$(PY) -m pip install --quiet --no-deps "tensorflow-serving-api~=2.21.0"
	touch $@

install: $(VENV)/.installed

# The optional `hub` extra (keras-hub backbones). keras-hub / tensorflow-text go in with --no-deps
# so they do not lay the full tensorflow wheel over tensorflow-cpu; their real needs come from
# the extra. A GPU install (the `gpu` extra) can use `pip install -e ".[gpu,hub]" keras-hub` plainly.
$(VENV)/.installed-hub: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),hub]"
	$(PY) -m pip install --quiet --no-deps "keras-hub==0.32.0" "tensorflow-text~=2.21.0"
	touch $@

install-hub: $(VENV)/.installed-hub

test: install install-hub
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# `make lint`: ruff's checks and its format check (settings in ruff.toml); `make format` fixes both.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# `make demo`: train CLIP, Symile, ConFu and Gated Symile on Symile XOR, print the table, export.
demo: install
	OPENBLAS_NUM_THREADS=1 $(PY) tools/demo.py --workdir demo_out

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

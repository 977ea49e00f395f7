# Two commands do all set-up: `make demo` and `make test` (see README.md). Both are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow venv clean-demo

venv: $(STAMP)

# torch first (a plain `torch` requirement would pull the newest CUDA build); then the project with constraints
# that pin the torch just installed (CPU here, CUDA on a GPU machine) and the versions we tested.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip freeze | grep -i '^torch==' > $(VENV)/torch-constraint.txt
	$(PY) -m pip install -q -c $(VENV)/torch-constraint.txt -c constraints.txt -e ".[test,pose]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m datamodules.demo out=data/demo/videos
	$(PY) -m datamodules.prepare recipe=prepare_demo
	$(PY) train.py recipe=disco_lora_debug

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow and not gpu"

clean-demo:
	rm -rf data/demo runs/disco_lora_debug-*

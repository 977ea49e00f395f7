# Two commands do all set-up: `make demo` and `make test` (see README.md). Both are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow venv clean-demo vvenc

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

# A fixed run name and resume=auto: a demo killed half-way continues from its last checkpoint when re-run, and a
# finished one is not trained again. The run ends printing its folder and the export, encode and decode commands.
demo: $(STAMP)
	$(PY) -m disco_train demo out=data/demo/videos
	$(PY) -m disco_train prepare recipe=prepare_demo
	$(PY) train.py recipe=disco_lora_debug name=disco_lora_debug resume=auto

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow and not gpu"

clean-demo:
	rm -rf data/demo runs/disco_lora_debug runs/disco_lora_debug-* exports/disco_lora_debug

# H.266 anchor encoder: vvenc built from its public source into tools/vvenc/bin/vvencapp, where the project looks
# before PATH (codec/vvenc.py). No package ships it. Needs CMake and a C++ compiler; ≈ 20 min on 2 cores.
# `make vvenc VVENC_SRC=path/to/vvenc-src.tar.gz` builds from a tarball already on disk (no network).
VVENC_COMMIT := 0a41b1199fc962f759f20d2a1a53420c19dc70bc
VVENC_URL := https://github.com/fraunhoferhhi/vvenc/archive/$(VVENC_COMMIT).tar.gz
VVENC_SRC ?=
VVENC_DIR := tools/vvenc

vvenc: $(VVENC_DIR)/bin/vvencapp

$(VVENC_DIR)/bin/vvencapp:
	rm -rf $(VVENC_DIR)/src && mkdir -p $(VVENC_DIR)/src $(VVENC_DIR)/bin
	if [ -n "$(VVENC_SRC)" ]; then cp "$(VVENC_SRC)" $(VVENC_DIR)/src.tar.gz; \
	else curl -fL -o $(VVENC_DIR)/src.tar.gz $(VVENC_URL); fi
	tar xzf $(VVENC_DIR)/src.tar.gz -C $(VVENC_DIR)/src --strip-components=1
	$(MAKE) -C $(VVENC_DIR)/src install-release
	cp $(VVENC_DIR)/src/bin/release-static/vvencapp $@
	$@ --version | head -1

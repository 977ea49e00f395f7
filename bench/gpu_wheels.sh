#!/usr/bin/env bash
# Run HERE (the CPU host) before a GPU lease: the GPU image has torch, lightning, peft, transformers, pytest and
# matplotlib but not these, and it cannot download. Saves cp312 manylinux wheels into .whl/ (git-ignored, ≈ 43 MB);
# name `.whl` in the device call's `carry`, then run bench/run_gpu.sh there (BENCHMARKS.md, "GPU figures").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 omegaconf==2.4.0 webdataset==1.0.2 braceexpand==0.1.7 av==18.1.0 constriction==0.5.0 \
  importlib-metadata==8.7.0 zipp==3.23.0
ls -la .whl

#!/usr/bin/env bash
# Run THERE (a lent H100/H200, from the repository root) to produce the GPU figures of BENCHMARKS.md, one part per
# device call, most important first (each part stays inside the 10-minute limit of one call, all four inside a
# session's 30 minutes): bash bench/run_gpu.sh train|decode|levers|tests
# Logs go to $OUT (the device tool brings them back) or ./gpu-logs. Wheels from bench/gpu_wheels.sh must be in .whl/.
set -uo pipefail
part=${1:?usage: run_gpu.sh train|decode|levers|tests}
out=${OUT:-gpu-logs}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
run() {  # run NAME LIMIT_S CMD...: one figure, its own log, a time limit, and go on after a failure
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$out/summary.txt"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1; local rc=$?
  echo "   rc=$rc" | tee -a "$out/summary.txt"; tail -n 25 "$out/$name.log"
}
B="python3 bench"
case $part in  # worst cases (every limit hit): train 6.5, decode 7.5, levers 8, tests 7 minutes
  train)   # 13B: the recipe as shipped (bare vs Lightning vs DataModule), then every block recomputing
    run train_13b 240 $B/bench_train.py --config 13b --device cuda --steps 8 --warmup 3 --workers 4
    run train_13b_ckpt_all 150 $B/bench_train.py --config 13b --device cuda --steps 8 --warmup 3 --rows bare,lightning \
      --ckpt-blocks -1 ;;
  decode)  # decoding latency, 13B and 2B, 50/20/8 steps, merged adapter (as `decode` runs), then CUDA graphs
    run decode_13b 240 $B/bench_decode.py --config 13b --device cuda --steps 50,20,8
    run decode_2b 90 $B/bench_decode.py --config 2b --device cuda --steps 50,20,8,4
    run decode_2b_cudagraphs 120 $B/bench_decode.py --config 2b --device cuda --steps 50,8 --compile cudagraphs ;;
  levers)  # 13B levers one at a time against the recipe's Lightning row (no-recompute needs the H200's memory)
    run train_13b_flash 100 $B/bench_train.py --config 13b --device cuda --steps 6 --warmup 3 --rows lightning --attention flash
    run train_13b_cudnn 100 $B/bench_train.py --config 13b --device cuda --steps 6 --warmup 3 --rows lightning --attention cudnn
    run train_13b_compile 180 $B/bench_train.py --config 13b --device cuda --steps 6 --warmup 5 --rows lightning --compile
    run train_13b_no_ckpt 100 $B/bench_train.py --config 13b --device cuda --steps 6 --warmup 3 --rows lightning --grad-ckpt off ;;
  tests)   # GPU-marked tests, DCVC-RT on CUDA, the debug config's loader/step, the 2B step
    run test_gpu 200 python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
    run dcvc_rt 60 $B/bench_dcvc_rt.py --devices cuda
    run train_tiny 45 $B/bench_train.py --config tiny --device cuda --steps 20 --rounds 3
    run train_2b 120 $B/bench_train.py --config 2b --device cuda --steps 8 --warmup 3 ;;
  *) echo "unknown part $part: train|decode|levers|tests"; exit 2 ;;
esac

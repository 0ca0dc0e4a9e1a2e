#!/usr/bin/env bash
# Issue 22's GPU checks in one short script for the GPU machine (../shared/tools/gpu/README.md).
#
# Here, once:   bash ../shared/tools/gpu/pack.sh   (plus pytest's wheels: python3 -m pip download -q
#               --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl pytest iniconfig pluggy packaging)
#               mkdir -p .gpu/data && cp -r /work/bench/fsdd_eat .gpu/data/   (about 16 MB)
# Device tool:  carry [".gpu"], timeout_s 560,
#               command: bash benchmarks/gpu_loop_check.sh
# Writes to $OUT: gpu_tests.txt, throughput.jsonl, fold.jsonl (+ fold.log), smi.csv (utilisation
# and memory every second). Each stage has its own timeout, so one hang costs only its stage.
set -u
source .gpu/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 > "$OUT/smi.csv" 2>&1 &
SMI=$!
IMG=.gpu/data/fsdd_eat
timeout 120 python3 -m pytest tests/test_device_loop.py -q -p no:cacheprovider > "$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?" >> "$OUT/stages.txt"
timeout 200 python3 benchmarks/throughput.py "$IMG" --device cuda --archs efficientat_mn04,resnet34 --n 2496 \
  --no-record --note "issue 22 GPU check" > "$OUT/throughput.jsonl" 2> "$OUT/throughput.err"
echo "throughput rc=$?" >> "$OUT/stages.txt"
timeout 200 python3 benchmarks/accuracy.py "$IMG" "$IMG" --work "$OUT/acc" --predefined-folds --run-folds 1 \
  --recipes ours --archs efficientat_mn04 --note "issue 22 GPU fold" > "$OUT/fold.jsonl" 2> "$OUT/fold.log"
echo "fold rc=$?" >> "$OUT/stages.txt"
rm -rf "$OUT/acc"/*/model.pt "$OUT/acc"/*/valid_embeddings.npy
kill "$SMI"

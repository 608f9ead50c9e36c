#!/usr/bin/env bash
# One device call for issue 24: the CUDA tests and the GPU benchmark.
#
# Prepare here (once per checkout; the device machine cannot download, and its
# image lacks these pure-Python packages):
#   mkdir -p .git/info .device_wheels && echo /.device_wheels/ >> .git/info/exclude
#   .venv/bin/pip download --no-deps -d .device_wheels skorch mrcfile starfile
# Then, from the session: run(command="bash benchmarks/gpu_check.sh",
#   carry=[".device_wheels"], timeout_s=540). Results come back from $OUT:
#   gpu_tests.txt, gpu.json, gpu.md, nvidia_smi.csv; copy gpu.* to
#   benchmarks/results/ and name the card in docs/performance.md.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
# pure-Python wheels import straight from their zip files
export PYTHONPATH="$PWD:$(ls "$PWD"/.device_wheels/*.whl | tr '\n' ':')"
python3 -c "import skorch, mrcfile, starfile, fscc_sklearn; print('imports ok')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
{
  timeout 240 python3 -m pytest -m gpu -o addopts="" -p no:cacheprovider -q tests/test_gpu.py
  echo "gpu tests rc $?"
  # the default suite's embedder tests with device="auto" picking the GPU
  timeout 120 python3 -m pytest -m "not slow and not gpu" -p no:cacheprovider -q -x \
    tests/test_embedder.py tests/test_speed_equivalence.py
  echo "embedder tests rc $?"
} 2>&1 | tail -60 | tee "$OUT/gpu_tests.txt"
timeout 200 python3 benchmarks/bench_gpu.py --out "$OUT/gpu" 2>&1 | tail -25

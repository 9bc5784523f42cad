#!/usr/bin/env bash
# The checks a machine with an NVIDIA GPU runs: the GPU tests on the real device
# (LENUM_REAL_GPU=1 keeps the CUDA simulator off; LENUM_PTX_OPT=1 compiles the PTX
# check with full optimisation), then the benchmark.  Everything goes to one file.
#
#   benchmarks/gpu_check.sh [RESULTS_FILE] [extra bench_gpu.py arguments]
#
# Needs the package with its gpu and test extras: pip install -e ".[gpu,test]" (NumPy
# below 2.5: numba-cuda 0.30.4 cannot compile kernels under 2.5)
# (and torch with CUDA for the PyTorch column; it is left out otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_results.txt}
shift || true
PY=${PYTHON:-python}
status=0
{
    echo "== lenum GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    $PY -c "import lenum.gpu as g; print('unavailable_reason:', g.unavailable_reason())"
    echo "== tests (real GPU)"
    LENUM_REAL_GPU=1 LENUM_PTX_OPT=1 $PY -m pytest -q -rs --durations=10 \
        tests/test_gpu.py tests/test_kernels_qr.py || status=1
    echo "== benchmark"
    $PY benchmarks/bench_gpu.py "$@" || status=1
    echo "== float32 accuracy of full spectra (needs torch with CUDA)"
    $PY benchmarks/gpu_float32_accuracy.py || status=1
    echo "== exit status $status"
} 2>&1 | tee "$OUT"
exit $status

#!/bin/bash
# A CUDA 13.0 toolkit for compiling llama.cpp, assembled from NVIDIA's PyPI wheels (nvcc, the C
# runtime headers, CCCL, NVVM, cuBLAS): no NVIDIA apt repository and no GPU are needed to build.
# The wheels install into one CUDAToolkit root (nvidia/cu13); CMake also wants lib64 and the
# unversioned .so names a toolkit installer would make. Prints the root.
#   packaging/cuda-toolkit.sh DIR [PIP]
set -euo pipefail
DIR=$1
PIP=${2:-pip}
WHEELS="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85
        nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14"
ROOT=$DIR/nvidia/cu13
if [ ! -x "$ROOT/bin/nvcc" ]; then
  # shellcheck disable=SC2086
  "$PIP" install -q --disable-pip-version-check --no-deps --target "$DIR" $WHEELS >&2
fi
ln -sfn lib "$ROOT/lib64"
for l in cudart cublas cublasLt; do
  ln -sf "lib$l.so.13" "$ROOT/lib/lib$l.so"
done
chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/* 2>/dev/null || true
"$ROOT/bin/nvcc" --version >&2
echo "$ROOT"

#!/usr/bin/env bash
# Builds the GPU package here (no GPU is needed to compile) and checks that its llama-cpp-python
# has the CUDA backend: the library's CUDA symbols, its libraries resolved inside the package, and
# the library loading inside the package with its CUDA entry points answering. A benchmark job, not a
# test: the CUDA compile takes over an hour on 2 cores. Last line: one JSON object.
#   bash bench/cuda_package.sh            (LLAMA_CUDA_WHEEL=FILE reuses a wheel built before)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/cuda-deb}
start=$(date +%s)
CUDA=1 MODELS="" CLIENT=0 OUT="$OUT" VENV=.venv packaging/build-deb.sh
built=$(( $(date +%s) - start ))
deb=$(ls "$OUT"/appliance-cuda_*.deb)
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
dpkg-deb -f "$deb" Package Version Conflicts Provides Depends
site=$x/opt/appliance/venv/lib/python3.11/site-packages
lib=$site/llama_cpp/lib
cuda_symbols=$(nm -D --defined-only "$lib/libggml-cuda.so" | grep -c ' ggml_backend_cuda_')
unresolved=$(LD_LIBRARY_PATH= ldd "$lib/libggml-cuda.so" | grep "not found" | grep -vc "libcuda.so.1" || true)
# The library loads with the runtime inside the package, and its CUDA entry points answer: the
# device count (0 where no GPU or driver is, which is this machine; the GPU check is gpu_smoke.sh).
devices=$(cd "$lib" && /usr/bin/python3 -c '
import ctypes
lib = ctypes.CDLL("./libggml-cuda.so")
print(lib.ggml_backend_cuda_get_device_count())' 2>/dev/null | tail -1)
printf '{"package": "%s", "deb_mb": %s, "build_s": %s, "cuda_backend_symbols": %s, "unresolved_libraries": %s, "cuda_library_loads": %s, "cuda_devices_here": %s, "cuda_archs": "%s"}\n' \
  "$(basename "$deb")" "$(( $(stat -c %s "$deb") / 1048576 ))" "$built" "$cuda_symbols" "$unresolved" \
  "$([ -n "$devices" ] && echo true || echo false)" "${devices:-null}" "${CUDA_ARCHS:-86}"

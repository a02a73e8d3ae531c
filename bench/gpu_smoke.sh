#!/usr/bin/env bash
# GPU smoke test, for a machine with an NVIDIA GPU: build llama-cpp-python's CUDA variant into a
# separate venv, offload every layer of the default model, and print decode tokens/s beside the
# bandwidth bound (GPU memory bandwidth / bytes of weights read per token). Runs unchanged there:
#   bash bench/gpu_smoke.sh [MODEL.gguf]
# Needs: nvidia-smi, nvcc (CUDA toolkit), cmake, a C++ compiler; cuBLAS from PyPI if the toolkit lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-$(.venv/bin/python -c 'from appliance.cli.init import default_model_path as d; print(d())')}"
VENV=.venv-cuda
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this is not a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ -x $VENV/bin/python ] || python3 -m venv $VENV
$VENV/bin/pip install -q --upgrade pip
CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}"
if [ ! -e "$CUDA_HOME/lib64/libcublas.so" ] && [ ! -e "$CUDA_HOME/targets/x86_64-linux/lib/libcublas.so" ]; then
  # The toolkit has no cuBLAS: take it from PyPI and merge both into one CUDAToolkit root.
  $VENV/bin/pip install -q "nvidia-cublas==13.0.*" || $VENV/bin/pip install -q nvidia-cublas-cu12
  ROOT=$(mktemp -d); cp -rs "$CUDA_HOME"/. "$ROOT"/
  for d in $($VENV/bin/python -c "import nvidia, os; print(' '.join(os.path.join(p, 'cublas') for p in nvidia.__path__))"); do
    cp -rs "$d"/include/. "$ROOT"/include/ 2>/dev/null || true; mkdir -p "$ROOT/lib64"; cp -rs "$d"/lib/. "$ROOT"/lib64/
  done
  CUDA_HOME=$ROOT
fi
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
CUDAToolkit_ROOT=$CUDA_HOME CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_CUDA_NO_VMM=ON" \
  $VENV/bin/pip install -q --no-binary llama-cpp-python llama-cpp-python==0.3.36
BW=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
$VENV/bin/python - "$MODEL" "$BW" <<'PY'
import json, os, sys, time
import llama_cpp
model, gpu = sys.argv[1], sys.argv[2]
# Published peak memory bandwidth (GB/s) of common data-centre and workstation GPUs.
BANDWIDTH = {"H200": 4800, "H100": 3350, "A100": 2039, "L40S": 864, "L4": 300, "RTX 4090": 1008, "RTX 6000 Ada": 960,
             "A10": 600, "T4": 320}
bw = next((v for k, v in BANDWIDTH.items() if k in gpu), None)
assert llama_cpp.llama_supports_gpu_offload(), "this build has no GPU offload"
llm = llama_cpp.Llama(model_path=model, n_gpu_layers=-1, n_ctx=2048, verbose=False, seed=0)
prompt = "FINDINGS: Small left pleural effusion. Mild cardiomegaly. Write the impression:"
llm.create_completion(prompt=prompt, max_tokens=8)  # warm up (kernels, graph)
t = time.perf_counter(); out = llm.create_completion(prompt=prompt, max_tokens=256, temperature=0.0)
secs = time.perf_counter() - t; n = out["usage"]["completion_tokens"]
size = os.path.getsize(model)
bound = bw * 1e9 / size if bw else None
fig = {"gpu": gpu, "model": os.path.basename(model), "model_bytes": size, "tokens": n, "tokens_per_s": round(n / secs, 1),
       "bandwidth_bound_tokens_per_s": round(bound, 1) if bound else None,
       "fraction_of_bound": round(n / secs / bound, 3) if bound else None}
print(f"{n} tokens in {secs:.2f} s = {n / secs:.1f} tok/s; bandwidth bound {fig['bandwidth_bound_tokens_per_s']} tok/s")
print(json.dumps(fig))
PY

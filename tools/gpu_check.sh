#!/usr/bin/env bash
# On the GPU machine (no network): install the carried gguf wheel if missing, build, run the GPU tests
# (`make gpu-test`), then `orcd bench` on random-weight models of the given shapes and types.
#   tools/gpu_check.sh [test|bench|all] [shape:type ...]   e.g. tools/gpu_check.sh all 0.5b:Q4_K_M 7b:Q8_0
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}; shift || true
command -v cc >/dev/null || export CC=$(command -v gcc || echo /opt/gcc/bin/gcc)
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --find-links .whl gguf pyyaml
make -j16 BUILD=build/gpu build/gpu/orcd build/gpu/unit_tests >/dev/null
if [ "$what" = test ] || [ "$what" = all ]; then make --no-print-directory BUILD=build/gpu gpu-test; fi
if [ "$what" = bench ] || [ "$what" = all ]; then
    mkdir -p /tmp/syn
    for st in "${@:-0.5b:Q4_K_M}"; do
        shape=${st%%:*}; type=${st##*:}; f=/tmp/syn/$shape-$type.gguf
        [ -f "$f" ] || python3 tools/gen_model.py --arch qwen2 --shape "$shape" --type "$type" \
            --vocab qwen-json:.cache/qwen-tokenizer.json.gz --out "$f" >/dev/null
        build/gpu/orcd bench -m "$f" -p 512 -n 128 -r 3
    done
fi

#!/usr/bin/env bash
# On the GPU machine (no network): install the carried gguf wheel if missing, build, run the GPU tests
# (`make gpu-test`), then `orcd bench` on random-weight models of the given shapes and types.
#   tools/gpu_check.sh [test|bench|all] [shape:type ...]   e.g. tools/gpu_check.sh all 0.5b:Q4_K_M 7b:Q8_0
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}; shift || true
command -v cc >/dev/null || export CC=$(command -v gcc || echo /opt/gcc/bin/gcc)
python3 -c "import gguf" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --find-links .whl gguf pyyaml
[ "$what" = serve ] || make -j16 BUILD=build/gpu build/gpu/orcd build/gpu/unit_tests >/dev/null
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
if [ "$what" = serve ]; then
    # The server's libraries come from .debs, unpacked into a sysroot of our own (never into /). libmicrohttpd
    # and jansson are linked from there (headers as -isystem, so -Werror ignores them; the library folder as
    # rpath); the GnuTLS chain goes to $sr/fallback, used through LD_LIBRARY_PATH only if orcd does not load
    # with the machine's own copies. No pkg-config needed: the Makefile's SERVER* variables are given.
    sr=/tmp/orcd-sysroot; arch=x86_64-linux-gnu
    ls .debs/*.deb >/dev/null 2>&1 || { echo "serve: no .debs/*.deb: run tools/fetch_debs.sh where apt works, carry .debs"; exit 1; }
    glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || echo '?')
    rm -rf "$sr"; mkdir -p "$sr/fallback"
    for f in .debs/*.deb; do
        case $(basename "$f") in libmicrohttpd*|libjansson*) to=$sr ;; *) to=$sr/fallback ;; esac
        if command -v dpkg >/dev/null; then dpkg -x "$f" "$to"
        else m=$(ar t "$f" | grep '^data\.tar'); ar p "$f" "$m" >"/tmp/$m"; tar -xf "/tmp/$m" -C "$to"; rm -f "/tmp/$m"; fi
    done
    lib=$sr/usr/lib/$arch; fb=$sr/fallback/usr/lib/$arch:$sr/fallback/lib/$arch
    b=build/srv; [ "${CUDA:-}" = 0 ] && b=build/srv-cpu
    echo "serve: building $b/orcd with the server ($glibc; the .debs need glibc 2.34 or newer)"
    make -j16 BUILD=$b CUDA_ARCHS="${CUDA_ARCHS:-90}" SERVER=1 SERVER_CFLAGS="-DORCD_SERVER -isystem $sr/usr/include" \
        SERVER_LIBS="-L$lib -Wl,-rpath,$lib -Wl,-rpath-link,$fb -lmicrohttpd -ljansson" $b/orcd >/dev/null
    loads() { case $($b/orcd serve --help 2>&1 || true) in *--parallel*) return 0 ;; *) return 1 ;; esac; }
    if ! loads; then
        export LD_LIBRARY_PATH=$fb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        echo "serve: orcd does not load with this machine's libraries; using the carried GnuTLS chain"
        loads || { $b/orcd serve --help || true; ldd $b/orcd || true; exit 1; }
    fi
    { ldd $b/orcd | grep -E 'microhttpd|jansson|gnutls' | sed 's/^[[:space:]]*/serve: uses /; s/ (0x.*//'; } || true
    { nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | sed 's/^/serve: GPU /'; } 2>/dev/null || true
    mkdir -p /tmp/syn
    for st in "${@:-0.5b:Q4_K_M}"; do
        shape=${st%%:*}; type=${st##*:}; f=/tmp/syn/$shape-$type.gguf
        [ -f "$f" ] || python3 tools/gen_model.py --arch qwen2 --shape "$shape" --type "$type" \
            --vocab qwen-json:.cache/qwen-tokenizer.json.gz --out "$f" >/dev/null
        ref=(); [ "$st" = 0.5b:Q4_K_M ] && ref=(--reference 16:3854,64:10308)  # llama.cpp, H100 (../shared/BENCHMARKS.md)
        [ "${CUDA:-}" = 0 ] || ref+=(--require-backend cuda)  # no CPU fallback on the GPU machine
        # 1/8/32 streams (64 tokens each, 2 x streams requests, 30 s at most a level), then decode at 16 and 64
        # streams (128-token prompts, 128 new tokens, 3 rounds); the server's log: /tmp/loadgen-serve.log
        PYTHONUNBUFFERED=1 timeout -k 10 300 python3 bench/loadgen.py --orcd $b/orcd --model "$f" --parallel 64 --ctx 512 \
            --levels 1,8,32 --max-tokens 64 --max-time 30 --decode-streams 16,64 --decode-tokens 128 \
            --decode-prompt-tokens 128 --decode-rounds 3 ${ref[@]+"${ref[@]}"} \
            --title "orcd serve, $shape $type (random weights), $(basename $b)/orcd; llama.cpp: H100, llama-batched-bench" \
            || { echo "serve: loadgen failed; the end of the server's log:"; tail -20 /tmp/loadgen-serve.log; exit 1; }
        grep -E 'backend:|ready:|error|warn' /tmp/loadgen-serve.log | head -6 | sed 's/^/serve log: /' || true
    done
fi

#!/usr/bin/env bash
# Install what orcd's build and tests need and this machine lacks: Debian packages (apt) and the Python
# test tools (pip, tests/requirements.txt). Quick and silent when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: C compiler, make, pkg-config, clang with its runtime (libFuzzer, sanitizers), and the HTTP
# server's libraries (libmicrohttpd, jansson; their -dev packages pull in the run-time libraries). Run
# time: libc, libmicrohttpd12, libjansson4. Without the two libraries the Makefile builds orcd without
# the server (the GPU machine has no apt).
DEB_PKGS=(gcc make pkg-config clang libclang-rt-14-dev libmicrohttpd-dev libjansson-dev)

missing=()
for p in "${DEB_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" tools/check_requirements.py tests/requirements.txt 2>/dev/null; then
    echo "deps: installing Python test tools from tests/requirements.txt"
    "$PY" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi

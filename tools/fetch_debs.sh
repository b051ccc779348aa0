#!/usr/bin/env bash
# Here (a Debian machine with apt and a network): download the Debian packages that `orcd serve` needs to be
# built and run on the GPU machine, which has neither libmicrohttpd nor jansson and cannot fetch anything, into
# .debs/ (ignored by git; carry it). `tools/gpu_check.sh serve` unpacks them into a private sysroot under /tmp
# with dpkg -x, never into /.
#   tools/fetch_debs.sh [DIR]          (default .debs; replaces the .deb files already there)
#
# Two groups. The server's libraries (run time and headers) are always used from the sysroot. GnuTLS and
# what it needs (libmicrohttpd12 links it) are a fallback: gpu_check.sh uses them only when the GPU machine's
# own copies are missing or too old to load. Packages of this machine's release; the script prints the
# newest glibc symbol version they need (bookworm's: 2.34; Ubuntu 22.04 has 2.35, 24.04 has 2.39).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.debs}

# the first of each set of alternatives that this machine's apt knows (names differ between releases)
CORE=("libmicrohttpd12t64|libmicrohttpd12" libmicrohttpd-dev "libjansson4t64|libjansson4" libjansson-dev)
CHAIN=("libgnutls30t64|libgnutls30" libgmp10 "libhogweed6t64|libhogweed6" "libidn2-0" "libnettle8t64|libnettle8"
       "libp11-kit0" "libtasn1-6" "libunistring5|libunistring2" "libffi8")

# amd64 packages even where this machine is another architecture (the device README's recipe)
o=(-oAPT::Sandbox::User=root)
if [ "$(dpkg --print-architecture)" != amd64 ]; then
    mkdir -p /tmp/amd64/partial
    o+=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
fi

pick() {
    local alt
    for alt in ${1//|/ }; do
        if apt-cache "${o[@]}" show --no-all-versions "$alt" >/dev/null 2>&1; then echo "$alt"; return; fi
    done
    echo "fetch_debs: apt knows none of: $1 (apt-get update?)" >&2
    return 1
}
pkgs=()
for p in "${CORE[@]}" "${CHAIN[@]}"; do pkgs+=("$(pick "$p")"); done

mkdir -p "$dir"
rm -f "$dir"/*.deb
(cd "$dir" && apt-get "${o[@]}" download -qq "${pkgs[@]}")
# plain file names (the epoch's ':' comes as %3a)
for f in "$dir"/*%3a*.deb; do [ -e "$f" ] && mv "$f" "${f//%3a/_}"; done

# what the libraries need of glibc (objdump comes with binutils; skipped without it)
if command -v objdump >/dev/null; then
    tmp=$(mktemp -d)
    for f in "$dir"/*.deb; do dpkg -x "$f" "$tmp"; done
    need=$(find "$tmp" -name '*.so.*' -type f -exec objdump -T {} + 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)
    rm -rf "$tmp"
    echo "fetch_debs: ${#pkgs[@]} packages, $(du -cb "$dir"/*.deb | tail -1 | cut -f1) bytes in $dir; their libraries need ${need:-?} or newer"
else
    echo "fetch_debs: ${#pkgs[@]} packages, $(du -cb "$dir"/*.deb | tail -1 | cut -f1) bytes in $dir"
fi

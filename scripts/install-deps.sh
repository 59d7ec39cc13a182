#!/usr/bin/env bash
# Installs the Debian packages cnnc needs, and only those that are missing.
#   scripts/install-deps.sh build   what the compiler needs to build (default)
#   scripts/install-deps.sh test    that, plus what the test suite uses
set -euo pipefail

profile=${1:-build}
build_pkgs=(cmake make gcc flex bison libcmocka-dev llvm-16-dev clang-16 libedit-dev
            libprotobuf-c-dev protobuf-c-compiler libjpeg62-turbo-dev libpng-dev libzip-dev
            openmpi-bin libopenmpi-dev libssl-dev libxxhash-dev)
test_pkgs=(python3 python3-venv python3-numpy python3-torch python3-torchvision python3-sklearn
           libclang-rt-16-dev pkgconf)

case "$profile" in
  build) want=("${build_pkgs[@]}") ;;
  test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test]" >&2; exit 1 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs EnclaveFS's build and test dependencies from Debian 12 packages.
# Idempotent and quiet: does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang clang-format
  libfuse3-dev fuse3 liburing-dev
  libsodium-dev libssl-dev libisal-dev
  libcli11-dev librocksdb-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  fio sqlite3 git rsync python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

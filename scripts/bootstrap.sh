#!/usr/bin/env bash
# Idempotent setup for a Debian 12 machine: apt packages, npm deps, TypeScript and BPF builds.
# Fast (< 5 s) when nothing is missing. Everything Kurve needs is installed from here.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm libbpf-dev bpftool bpftrace fuse3 etcd-server etcd-client prometheus iproute2 e2fsprogs)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: need root to install Debian packages: ${missing[*]}" >&2
    echo "bootstrap: run as root, or: apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Update the lists only when they are absent or a first install attempt fails.
  if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/kurve-apt.log 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/kurve-apt.log 2>&1 || { cat /tmp/kurve-apt.log >&2; exit 1; }
  fi
  # Debian starts no services here, but make sure packaged daemons are not left running.
  pkill -x etcd 2>/dev/null || true
  pkill -x prometheus 2>/dev/null || true
fi

# npm deps: reinstall when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/build.sh

#!/usr/bin/env bash
# Installs every Debian 12 package that tessera's build, tests and benchmarks need. Idempotent: when everything
# is already installed it does nothing; `apt-get update` runs only when the package lists are older than 6 h.
# Services that Debian would auto-start on install (redis, postgresql, nginx) are kept stopped and disabled:
# the tests start their own instances on their own ports in temp dirs.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates              # build
  libh2o-evloop-dev libhiredis-dev libpq-dev libsqlite3-dev          # libraries
  libcjson-dev libssl-dev libsodium-dev libcmocka-dev
  python3 curl redis-server postgresql sqlite3 valgrind              # tests
  chromium                                                           # the page's browser test (tests/browser)
  nginx-light wrk                                                    # benchmarks
  clang libclang-rt-14-dev                                           # fuzzing (scripts/fuzz.sh)
)
SERVICES=(redis-server postgresql nginx)

log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: run as root"; exit 1; }
  SUDO=(sudo)
fi

# Node.js and npm (interop tests): a node already on PATH (e.g. from NodeSource, whose nodejs package bundles
# npm and conflicts with Debian's npm) is kept as is.
if command -v node >/dev/null 2>&1; then
  command -v npm >/dev/null 2>&1 || log "node found at $(command -v node) without npm; not installing Debian's npm"
else
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "all ${#PACKAGES[@]} packages installed"
  exit 0
fi
log "installing: ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive

# apt-get update unless some list was refreshed in the last 6 hours.
fresh=$(find /var/lib/apt/lists -maxdepth 1 -type f -name '*_InRelease' -mmin -360 2>/dev/null | head -n1 || true)
if [ -z "$fresh" ]; then
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
fi

# Which services exist before we install: those are the admin's and are left alone.
preexisting=()
for s in "${SERVICES[@]}"; do
  if [ -e "/lib/systemd/system/$s.service" ] || [ -e "/etc/init.d/$s" ]; then preexisting+=("$s"); fi
done

# Keep postinst scripts from starting services (invoke-rc.d and deb-systemd-invoke honour policy-rc.d).
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, written by tessera scripts/setup.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

# Services installed just now: make sure they are neither running nor enabled at boot.
for s in "${SERVICES[@]}"; do
  case " ${preexisting[*]} " in *" $s "*) continue ;; esac
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now "$s" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$s" ]; then
    "${SUDO[@]}" "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    "${SUDO[@]}" update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
log "done"

#!/bin/sh
# Signs tokens with tessera (test_jwt, TESS_INTEROP_OUT) and verifies them with jsonwebtoken.
# Usage: tests/interop/check_ours.sh <cmake build dir>   (needs `npm install` here first)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: check_ours.sh <build dir>}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
TESS_INTEROP_OUT="$out" "$build/test_jwt" >/dev/null 2>&1
node "$here/verify_ours.js" "$out"

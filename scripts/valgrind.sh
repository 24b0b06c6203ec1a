#!/usr/bin/env bash
# Runs the integration suite with every `tessera serve` under valgrind memcheck (slow, hours: not part of CI).
#   scripts/valgrind.sh                  every tests/integration/test_*.py
#   scripts/valgrind.sh test_readyz ...  only those files (names without .py)
# Builds build-valgrind/ (the normal RelWithDebInfo build). The harness wraps the server in valgrind when
# TESS_VALGRIND=1 (tests/integration/tessera_harness.py serve_wrapper; suppressions in valgrind.supp): a server
# with any memcheck error or leak exits 99 and its test fails with the valgrind log. The files run
# TESS_VALGRIND_JOBS (2) at a time straight from python3 (ctest's 600 s per-file timeout is too short here); each
# file's output goes to build-valgrind/valgrind-logs/<file>.log. Ends with "N passed, N failed"; exit code non-zero on any failure.
# TESS_BUILD_DIR overrides the build directory; the deadlines below can be raised from the environment.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TESS_BUILD_DIR:-$ROOT/build-valgrind}
case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

"$ROOT/scripts/setup.sh"
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
cmake -S "$ROOT" -B "$BUILD" -DBUILD_TESTING=ON -DTESS_SANITIZE=OFF -DTESS_TSAN=OFF
cmake --build "$BUILD" -j2

files=()
if [ $# -eq 0 ]; then
  for f in "$ROOT"/tests/integration/test_*.py; do files+=("$(basename "$f" .py)"); done
else
  for n in "$@"; do
    [ -f "$ROOT/tests/integration/${n%.py}.py" ] || { echo "valgrind.sh: no tests/integration/${n%.py}.py" >&2; exit 2; }
    files+=("${n%.py}")
  done
fi

export TESS_VALGRIND=1 TESSERA_BIN="$BUILD/tessera" TESS_SOURCE_DIR="$ROOT"
export TESS_START_TIMEOUT=${TESS_START_TIMEOUT:-120} TESS_HTTP_TIMEOUT=${TESS_HTTP_TIMEOUT:-60}
export TESS_STOP_TIMEOUT=${TESS_STOP_TIMEOUT:-60}
LOGS="$BUILD/valgrind-logs"
rm -rf "$LOGS" && mkdir -p "$LOGS"
export LOGS ROOT

run_one() {
  local start=$SECONDS rc=0
  python3 "$ROOT/tests/integration/$1.py" >"$LOGS/$1.log" 2>&1 || rc=$?
  printf '%-28s %s (%ds)\n' "$1" "$([ $rc -eq 0 ] && echo passed || echo "FAILED rc=$rc")" $((SECONDS - start))
}
export -f run_one
printf '%s\n' "${files[@]}" | xargs -P "${TESS_VALGRIND_JOBS:-2}" -I{} bash -c 'run_one {}' | tee "$LOGS/summary.txt"
passed=$(grep -c ' passed ' "$LOGS/summary.txt" || true)
failed=$(grep -c ' FAILED ' "$LOGS/summary.txt" || true)
grep -h "ERROR SUMMARY" "$LOGS"/*.log | sort | uniq -c || true
echo "valgrind: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

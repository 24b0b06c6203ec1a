#!/usr/bin/env bash
# Builds the libFuzzer drivers (clang, ASan+UBSan, build-fuzz/) and runs each for a bounded time or number of
# executions. Fails (non-zero) on any crash, leak, UB report, timeout or out-of-memory of any driver.
#   scripts/fuzz.sh                      every driver, 20 s each
#   scripts/fuzz.sh --seconds N [D...]   drivers D (cookie, jwt, ...), N s each
#   scripts/fuzz.sh --runs N [D...]      N executions each (the long runs: fuzz/results/)
#   scripts/fuzz.sh ... -- ARGS          extra libFuzzer arguments (e.g. -jobs=1)
# Per driver: the corpus grows in build-fuzz/corpus/<d>/ (kept between runs), seeded from fuzz/seeds.sh and
# fuzz/regressions/<d>/; a failing input is written to build-fuzz/artifacts/<d>/ and its path printed: copy it
# to fuzz/regressions/<d>/ with the fix. Logs: build-fuzz/logs/<d>.log. TESS_FUZZ_DIR overrides build-fuzz.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TESS_FUZZ_DIR:-$ROOT/build-fuzz}
ALL=(cookie jwt session router body keyspace config http origin jwe)
SECONDS_EACH=20
RUNS=
DRIVERS=()
EXTRA=()

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || { echo "fuzz.sh: --seconds needs a number" >&2; exit 2; }
               SECONDS_EACH=$2; shift ;;
    --runs) [ $# -ge 2 ] || { echo "fuzz.sh: --runs needs a number" >&2; exit 2; }
            RUNS=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option: $1" >&2; exit 2 ;;
    *) case " ${ALL[*]} " in *" $1 "*) DRIVERS+=("$1") ;;
         *) echo "fuzz.sh: no driver '$1' (drivers: ${ALL[*]})" >&2; exit 2 ;; esac ;;
  esac
  shift
done
[ "${#DRIVERS[@]}" -gt 0 ] || DRIVERS=("${ALL[@]}")
case "$SECONDS_EACH$RUNS" in *[!0-9]*) echo "fuzz.sh: --seconds and --runs take integers" >&2; exit 2 ;; esac

"$ROOT/scripts/setup.sh"

# Everything (library, app, server) is instrumented; only the drivers are built.
CC=clang cmake -S "$ROOT" -B "$BUILD" -DBUILD_TESTING=OFF -DTESS_FUZZ=ON -DTESS_SANITIZE=OFF -DTESS_TSAN=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for d in "${DRIVERS[@]}"; do targets+=("fuzz_$d"); done
cmake --build "$BUILD" -j2 --target "${targets[@]}"
sh "$ROOT/fuzz/seeds.sh" "$BUILD/seeds" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD/logs"
failed=()
for d in "${DRIVERS[@]}"; do
  mkdir -p "$BUILD/corpus/$d" "$BUILD/artifacts/$d"
  args=(-dict="$ROOT/fuzz/$d.dict" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$BUILD/artifacts/$d/")
  if [ -n "$RUNS" ]; then args+=(-runs="$RUNS"); else args+=(-max_total_time="$SECONDS_EACH"); fi
  inputs=("$BUILD/corpus/$d" "$BUILD/seeds/$d")
  [ -d "$ROOT/fuzz/regressions/$d" ] && inputs+=("$ROOT/fuzz/regressions/$d")
  printf 'fuzz: %s ... ' "$d"
  if (cd "$BUILD" && "./fuzz/fuzz_$d" "${args[@]}" "${EXTRA[@]}" "${inputs[@]}") >"$BUILD/logs/$d.log" 2>&1; then
    # the final line: "#N DONE cov: C ft: F corp: ..." and the stats
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/logs/$d.log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$BUILD/logs/$d.log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$BUILD/logs/$d.log" | tail -n1)
    echo "ok: ${execs:-?} executions, ${rate:-?}/s, $cov"
  else
    echo "FAILED (log: $BUILD/logs/$d.log)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written|.*runtime error)' "$BUILD/logs/$d.log" | head -n 20 || true
    failed+=("$d")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#DRIVERS[@]} drivers clean"

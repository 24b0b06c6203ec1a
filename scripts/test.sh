#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds and runs the whole test suite with ctest.
#   scripts/test.sh            build/       normal build
#   scripts/test.sh --asan     build-asan/  ASan+UBSan build (-DTESS_SANITIZE=ON)
#   scripts/test.sh --tsan     build-tsan/  ThreadSanitizer build (-DTESS_TSAN=ON), not with --asan
#   scripts/test.sh -R regex   only the ctest tests matching regex
# The last line printed is ctest's own; the exit code is ctest's (non-zero on any failure).
# TESS_BUILD_DIR overrides the build directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build"
ASAN=0
TSAN=0
CMAKE_ARGS=(-DBUILD_TESTING=ON)
CTEST_ARGS=()

while [ $# -gt 0 ]; do
  case "$1" in
    --asan) BUILD="$ROOT/build-asan"; ASAN=1 ;;
    --tsan) BUILD="$ROOT/build-tsan"; TSAN=1 ;;
    -R) [ $# -ge 2 ] || { echo "test.sh: -R needs a regex" >&2; exit 2; }
        CTEST_ARGS+=(-R "$2"); shift ;;
    -R*) CTEST_ARGS+=(-R "${1#-R}") ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument: $1 (use --asan, --tsan, -R regex)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$ASAN" = 1 ] && [ "$TSAN" = 1 ]; then
  echo "test.sh: --asan and --tsan exclude each other" >&2; exit 2
fi

"$ROOT/scripts/setup.sh"

BUILD=${TESS_BUILD_DIR:-$BUILD}
if [ "$ASAN" = 1 ]; then
  CMAKE_ARGS+=(-DTESS_SANITIZE=ON)
  # Defaults for a direct `scripts/test.sh --asan`; .ci/run exports the same.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  CMAKE_ARGS+=(-DTESS_TSAN=OFF)
elif [ "$TSAN" = 1 ]; then
  CMAKE_ARGS+=(-DTESS_SANITIZE=OFF -DTESS_TSAN=ON)
  # Defaults for a direct `scripts/test.sh --tsan`; .ci/run exports the same.
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:history_size=4}
else
  CMAKE_ARGS+=(-DTESS_SANITIZE=OFF -DTESS_TSAN=OFF)
fi

cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}"
cmake --build "$BUILD" -j2

cd "$BUILD"
exec ctest --output-on-failure -j2 --timeout 600 "${CTEST_ARGS[@]}"

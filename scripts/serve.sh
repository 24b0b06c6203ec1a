#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds tessera into build/, and runs `tessera serve` with the given options.
# Without options: 127.0.0.1:8080, SQLite database ./tessera.db, strategy db, a development secret kept in
# ./tessera.db.secret. See `build/tessera serve --help`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cmake -S "$ROOT" -B "$ROOT/build" -DBUILD_TESTING=ON >/dev/null
cmake --build "$ROOT/build" -j2 --target tessera_bin >/dev/null
exec "$ROOT/build/tessera" serve "$@"

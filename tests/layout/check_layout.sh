#!/usr/bin/env bash
# The rooms' rules, checked on the built tree (ctest runs it):
#   1. libtessera.so exports only the installed API: tess_ names, never internal tess__ ones;
#   2. src/server and src/cli include no header of src/lib (only include/tessera, src/app, and their own);
#   3. src/app includes nothing of src/server or src/lib.
# Usage: check_layout.sh <libtessera.so> <source dir>
set -u
lib=$1 src=$2 bad=0

exports=$(nm -D --defined-only "$lib" | awk '{print $3}')
[ -n "$exports" ] || { echo "no exported symbols in $lib"; exit 1; }
others=$(printf '%s\n' "$exports" | grep -v '^tess_' || true)
internal=$(printf '%s\n' "$exports" | grep '^tess__' || true)
if [ -n "$others" ] || [ -n "$internal" ]; then
  echo "libtessera.so exports names outside the installed API:"; printf '  %s\n' $others $internal; bad=1
fi
for f in "$src"/src/server/*.[ch]; do
  grep -Hn '#include "' "$f" | grep -v '"tessera/\|"app/\|"server/' && bad=1
done
for f in "$src"/src/cli/*.[ch]; do
  grep -Hn '#include "' "$f" | grep -v '"tessera/\|"app/\|"server/\|"cli/' && bad=1
done
for f in "$src"/src/app/*.[ch]; do
  grep -Hn '#include "' "$f" | grep -v '"tessera/\|"app/' && bad=1
done
echo "exports: $(printf '%s\n' "$exports" | wc -l) tess_ names; include rules checked"
exit $bad

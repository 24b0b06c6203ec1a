#!/bin/sh
# Writes seed corpora for the fuzz drivers from the node vectors: seeds.sh <out dir>
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: seeds.sh <out dir>}
mkdir -p "$out/jwt" "$out/cookie"
python3 - "$here/../tests/unit/vectors_node.h" "$out" <<'PY'
import re, sys, os
src = open(sys.argv[1]).read()
out = sys.argv[2]
def cstr(s):  # the generator writes printable ASCII and octal escapes only
    return re.sub(r'\\([0-7]{3}|.)', lambda m: chr(int(m.group(1), 8)) if len(m.group(1)) == 3 else m.group(1), s).encode('latin-1')
i = 0
for tok in re.findall(r'"(eyJ[^"]*)"', src):
    open(os.path.join(out, 'jwt', 'tok%03d' % i), 'wb').write(b'\x00' + cstr(tok)); i += 1
for p in ['{"userId":"u-1","role":"user","iat":1700000000,"exp":1700003600,"jti":"j"}',
          '{"userId":42,"exp":1700000060,"nbf":1699999999}',
          '{"alg":"HS256"}\n{"userId":"x","exp":1.7e9}']:
    open(os.path.join(out, 'jwt', 'json%03d' % i), 'wb').write(b'\x01' + p.encode()); i += 1
for m in re.finditer(r'\{"[^"]*", "[^"]*", "(s[^"]*)"', src):
    v = cstr(m.group(1))
    open(os.path.join(out, 'cookie', 'c%03d' % i), 'wb').write(b'\x00' + v); i += 1
    open(os.path.join(out, 'cookie', 'h%03d' % i), 'wb').write(b'\x01connect.sid\x00a=1; connect.sid=' + v); i += 1
    open(os.path.join(out, 'cookie', 'u%03d' % i), 'wb').write(b'\x03' + v); i += 1
for d in [b'\x052015-10-21T07:28:00.123Z', b'\x04Zm9vYmFy', b'\x02new, old ,older']:
    open(os.path.join(out, 'cookie', 'm%03d' % i), 'wb').write(d); i += 1
PY
echo "seeds in $out: $(ls "$out/jwt" | wc -l) jwt, $(ls "$out/cookie" | wc -l) cookie"

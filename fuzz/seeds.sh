#!/bin/sh
# Writes the seed corpus of every fuzz driver: seeds.sh <out dir>  (one subdirectory per driver).
# Tokens and cookies come from the node vectors (tests/support/vectors_node.h); the rest are the inputs the
# API and its documentation show. Each seed starts with the driver's mode byte where it has one (see the
# driver's header comment).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: seeds.sh <out dir>}
mkdir -p "$out"
python3 - "$here/../tests/support/vectors_node.h" "$out" "$here/../tests/support/vectors_jwe.h" <<'PY'
import os, re, shutil, struct, sys
src = open(sys.argv[1]).read()
out = sys.argv[2]
jwe_src = open(sys.argv[3]).read()
seeds = {}
def add(driver, data):
    seeds.setdefault(driver, []).append(data if isinstance(data, bytes) else data.encode('latin-1'))
def cstr(s):  # the generator writes printable ASCII and octal escapes only
    return re.sub(r'\\([0-7]{3}|.)', lambda m: chr(int(m.group(1), 8)) if len(m.group(1)) == 3 else m.group(1), s).encode('latin-1')

# jwt: 0 + token, 1 + "header\npayload"
for tok in re.findall(r'"(eyJ[^"]*)"', src):
    add('jwt', b'\x00' + cstr(tok))
for p in ['{"userId":"u-1","role":"user","iat":1700000000,"exp":1700003600,"jti":"j"}',
          '{"userId":42,"exp":1700000060,"nbf":1699999999}',
          '{"alg":"HS256"}\n{"userId":"x","exp":1.7e9}']:
    add('jwt', b'\x01' + p.encode())

# jwe: 0 + token (also read as a Cookie header), 1 + NextAuth "header\npayload", 3 + Auth.js's
for tok in re.findall(r'"(eyJ[^"]*)"', jwe_src):
    add('jwe', b'\x00' + cstr(tok))
add('jwe', b'\x00next-auth.session-token.1=b; a=1; next-auth.session-token.0=a')
for p in ['{"sub":"u-1","name":"A","email":"a@example.com","iat":1796000000,"exp":1796003600,"jti":"j"}',
          '{"sub":42,"role":"agent","exp":1796000060,"nbf":1795999999}']:
    add('jwe', b'\x01' + p.encode())
    add('jwe', b'\x03' + p.encode())
add('jwe', b'\x01{"alg":"dir","enc":"A256GCM","zip":"DEF"}\n{"sub":"x","exp":1.8e9}')
add('jwe', b'\x03{"alg":"dir","enc":"A256CBC-HS512","kid":"k"}\n{"sub":"x","exp":1.8e9}')

# cookie: 0 unsign, 1 find, 2 secrets, 3 url decode, 4 base64url, 5 ISO date
for m in re.finditer(r'\{"[^"]*", "[^"]*", "(s[^"]*)"', src):
    v = cstr(m.group(1))
    add('cookie', b'\x00' + v)
    add('cookie', b'\x01connect.sid\x00a=1; connect.sid=' + v)
    add('cookie', b'\x03' + v)
for d in [b'\x052015-10-21T07:28:00.123Z', b'\x04Zm9vYmFy', b'\x02new, old ,older']:
    add('cookie', d)

# session: 0 connect-redis document, 1 Redis URL, 2 connect-pg-simple (expire column, sess)
docs = ['{"cookie":{"originalMaxAge":86400000,"expires":"2026-01-02T03:04:05.678Z","httpOnly":true,"path":"/"},"userId":"42"}',
        '{"cookie":{"originalMaxAge":null,"expires":"2026-01-02T03:04:05.678Z","secure":false,"httpOnly":true,'
        '"path":"/","sameSite":"lax"},"userId":7,"role":"agent","createdAt":1700000000000,"cart":[1,2,{"x":null}]}',
        '{"userId":"u","role":"visitor","createdAt":1700000000000,"absoluteExpiresAt":1700086400000,'
        '"cookie":{"expires":"2023-11-15T22:13:20.000Z"}}',
        '{"cookie":{"expires":"2026-01-02T03:04:05.678Z"}}']
for d in docs:
    add('session', b'\x00' + d.encode())
    add('session', b'\x02' + struct.pack('<q', 1767323045678) + d.encode())
for u in ['redis://127.0.0.1:6379', 'redis://:secret@localhost:6380/2', 'redis://user:pw@[::1]:6379/0',
          'unix:///run/redis.sock?db=3', 'rediss://h:1', 'redis://h:0', 'redis://[]:1']:
    add('session', b'\x01' + u.encode())

# router: "METHOD PATH?QUERY"
for r in ['GET /healthz', 'GET /api/prechats/1/meta?wait=30', 'HEAD /api/prechats/12/meta',
          'GET /api/prechats/7/messages?after=0&limit=50&wait=10', 'POST /api/prechats/7/messages',
          'GET /api/prechats?status=waiting&limit=20', 'POST /api/auth/logout?everywhere=1',
          'GET /api/prechats/7/events?after=3', 'POST /api/prechats/7/join', 'POST /api/prechats/7/close',
          'PUT /api/prechats/7', 'GET /api/prechats/007/meta', 'GET /api/prechats/1/meta?wait=%36%30',
          'GET /auth?after=%F0%9F%98%80&after=2', 'DELETE /api/auth/session']:
    add('router', r)

# body: 0 + request body, 1 + raw bytes (UTF-8, \u0000 scan)
for b in ['{"username":"alice","password":"correct horse"}', '{"topic":"billing question"}',
          '{"body":"hello \\u00e9\\ud83d\\ude00 \\n world"}', '{"body":"x","body":"y"}', '{"body":"a\\u0000b"}',
          '{"a":{"b":{"c":[1,2,{"d":true}]}}, "topic":"t"}  \n', '{"username":"\xc3\xa9\xe2\x82\xac","password":"p"}']:
    add('body', b'\x00' + b.encode())
for raw in [b'\xc3\xa9', b'\xed\xa0\x80', b'\xf4\x90\x80\x80', b'"\\u0000"', b'"\\\\u0000"']:
    add('body', b'\x01' + raw)

# keyspace: "SESSION\0TESSERA\0KEY" or just KEY (default prefixes)
for k in ['session:abc', 'session:user:42', 'tessera:epoch', 'tessera:deny:jti-1', 'tessera:nbf:42',
          'tessera:app:meta:7', 'tessera:app:meta:queue', 'other:key', 'sess:\0tsr:\0sess:user:1',
          'sess:\0tsr:\0tsr:app:meta:0012', '\0\0tessera:app:meta:9223372036854775807']:
    add('keyspace', k)

# config: 0 argv (NUL-separated), 1 database URL \0 Redis URL, 2 integer
for a in ['--listen\0[::1]:8080\0--database\0sqlite:/tmp/x.db\0--strategy\0cached\0--redis\0redis://127.0.0.1:6379',
          '--listen=0.0.0.0:65535\0--threads\x002', '--database\0postgres://u:p@127.0.0.1/db\0--strategy\0db',
          '--redis\0redis://user:hunter2hunter2@host:99999', '--bogus', 'stray']:
    add('config', '\x00' + a)
for u in ['sqlite:./tessera.db\0redis://localhost:6379/1', 'sqlite://\0unix:///tmp/r.sock?db=2',
          'host=/tmp dbname=tessera\0redis://:pw@h', 'mysql://x\0redis://a:b@[::1]:1/99']:
    add('config', '\x01' + u)
for i in ['0', '60', '-1', '+5', '007', '9223372036854775807', '-9223372036854775808', '1e3', ' 5', '']:
    add('config', '\x02' + i)

# http: 0 If-None-Match values (LF-separated), 1 Last-Event-ID, 2 SSE frame, 3 message
for v in ['"0123456789abcdef"', 'W/"0123456789abcdef"', '*', '"a", W/"b" ,"0123456789abcdef"',
          '"a"\n"0123456789abcdef"', '"unclosed, "0123456789abcdef"', ' , ,"x",']:
    add('http', '\x00' + v)
for v in ['0', '42', '4611686018427387903', '4611686018427387904', '+5', '-0', '', '5 ']:
    add('http', '\x01' + v)
for d in [b'{"id":1}', b'line1\nline2\r\nline3\rline4', b'', b'\n', b'ends with cr\r', b': not a comment']:
    add('http', b'\x02' + struct.pack('<q', 17) + b'\x00' + d)
    add('http', b'\x02' + struct.pack('<q', -1) + b'\x02' + d)
for body in ['hello', 'line\nbreak\r\nand "quotes" \\ and \xe2\x80\xa8 and \xf0\x9f\x98\x80']:
    add('http', b'\x03' + struct.pack('<qqq', 5, 7, 1700000000123) + b'\x00' + body.encode('latin-1'))

# origin: 0 one origin, 1 "origin\nauthority", 2 TESSERA_ALLOWED_ORIGINS
for o in ['https://app.example.com', 'http://127.0.0.1:8080', 'HTTPS://App.Example.com:443', 'null',
          'http://[::1]:8080', 'https://xn--bcher-kva.example']:
    add('origin', '\x00' + o)
    add('origin', '\x01' + o + '\n' + o.split('//')[-1])
add('origin', '\x02https://app.example.com, http://localhost:3000')
add('origin', '\x02https://a.example,https://b.example:8443')

for driver, items in seeds.items():
    d = os.path.join(out, driver)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, data in enumerate(items):
        open(os.path.join(d, 'seed%03d' % i), 'wb').write(data)
print('seeds in %s: %s' % (out, ', '.join('%d %s' % (len(v), k) for k, v in sorted(seeds.items()))))
PY

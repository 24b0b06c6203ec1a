#!/usr/bin/env node
// Prints tests/support/vectors_jwe.h: NextAuth v4 (next-auth/jwt) and Auth.js v5 (@auth/core/jwt) session
// tokens made by the real packages, each with what the package's own decode() says of it, and the keys the
// packages derive (@panva/hkdf), so that tessera's unit tests check the same tokens both ways.
//
//   cd tests/interop && npm ci && node gen_jwe_vectors.mjs > ../support/vectors_jwe.h
//
// Not byte-for-byte deterministic: encode() draws a random IV and jti and stamps iat from the clock. Each
// vector carries its iat; the tests check it at that time.
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const version = (pkg) => JSON.parse(fs.readFileSync(path.join(here, 'node_modules', pkg, 'package.json'))).version;
const nextJwt = require('next-auth/jwt');
const hkdf = require('@panva/hkdf').default ?? require('@panva/hkdf');
const josev4 = createRequire(require.resolve('next-auth/jwt'))('jose'); // next-auth's own jose
const authJwt = await import('@auth/core/jwt');
const jose = await import('jose'); // @auth/core's

const SECRET = 'tessera-nextauth-secret-0123456789abcdef';
const OLD = 'an-older-secret-still-accepted-0123456789';
const OTHER = 'somebody-elses-secret-0123456789abcdefgh';
const COOKIE = 'authjs.session-token';
const SECURE = '__Secure-authjs.session-token';

const out = [];
const emit = (s) => out.push(s);

function cstr(s) {
  if (s === null || s === undefined) return 'NULL';
  const b = Buffer.from(s, 'utf8');
  let r = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) r += '\\' + String.fromCharCode(c);
    else if (c === 0x3f) r += '\\077';
    else if (c >= 0x20 && c < 0x7f) r += String.fromCharCode(c);
    else r += '\\' + c.toString(8).padStart(3, '0');
  }
  return r + '"';
}

const hex = (u8) => Buffer.from(u8).toString('hex');
const nextKey = (secret, len = 32) => hkdf('sha256', secret, '', 'NextAuth.js Generated Encryption Key', len);
const authKey = (secret, salt, len = 64) => hkdf('sha256', secret, salt, `Auth.js Generated Encryption Key (${salt})`, len);
const now = () => (Date.now() / 1000) | 0;

// What the package's decode() makes of a token: its payload, or null when it throws.
async function nextDecode(token, secret) {
  try { return await nextJwt.decode({ token, secret }); } catch { return null; }
}
async function authDecode(token, secret, salt) {
  try { return await authJwt.decode({ token, secret, salt }); } catch { return null; }
}

const vectors = [];
// format: 0 nextauth, 1 authjs. tess: the TESS_ code tessera must answer. secrets: tessera's list.
function add(v) { vectors.push(v); }

// ---- NextAuth v4 --------------------------------------------------------------------------------------------
{
  const t = await nextJwt.encode({ token: { name: 'Alice', email: 'alice@example.com', picture: null, sub: 'u-123' },
                                   secret: SECRET });
  add({ what: 'next-auth encode: name, email, picture, sub', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_OK' });
}
{
  const t = await nextJwt.encode({ token: { sub: '42', role: 'agent' }, secret: SECRET, maxAge: 3600 });
  add({ what: 'next-auth encode: sub and role', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_OK' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-old' }, secret: OLD });
  add({ what: 'next-auth encode with the older secret of the list', format: 0, secrets: `${SECRET},${OLD}`, cookie: null,
        token: t, node: await nextDecode(t, OLD), tess: 'TESS_OK' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-123' }, secret: OTHER });
  add({ what: 'next-auth encode under another secret', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_EBADSIG' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-123' }, secret: SECRET, maxAge: -16 });
  add({ what: 'next-auth encode, expired past the 15 s tolerance', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_EEXPIRED' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-123' }, secret: SECRET, maxAge: -10 });
  add({ what: 'next-auth encode, expired 10 s ago: within the tolerance', format: 0, secrets: SECRET, cookie: null,
        token: t, node: await nextDecode(t, SECRET), tess: 'TESS_OK' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-big', picture: 'https://img.example.com/' + 'p'.repeat(4200) },
                                   secret: SECRET });
  add({ what: 'next-auth encode, over a cookie chunk (3933 bytes)', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_OK' });
}
{
  // enc A256CBC-HS512 under a 64-byte key of NextAuth's derivation: next-auth's decode has a 32-byte key.
  const key = await nextKey(SECRET, 64);
  const t = await new josev4.EncryptJWT({ sub: 'u-123' }).setProtectedHeader({ alg: 'dir', enc: 'A256CBC-HS512' })
    .setIssuedAt().setExpirationTime(now() + 3600).setJti(crypto.randomUUID()).encrypt(key);
  add({ what: 'enc A256CBC-HS512 where NextAuth writes A256GCM', format: 0, secrets: SECRET, cookie: null, token: t,
        node: await nextDecode(t, SECRET), tess: 'TESS_EBADSIG' });
}
{
  // zip "DEF": next-auth's jose inflates it; tessera honours no compression (fail closed).
  const key = await nextKey(SECRET);
  const t = await new josev4.EncryptJWT({ sub: 'u-zip' }).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' })
    .setIssuedAt().setExpirationTime(now() + 3600).encrypt(key);
  add({ what: 'zip DEF in the header (refused: compression is not honoured)', format: 0, secrets: SECRET, cookie: null,
        token: t, node: await nextDecode(t, SECRET), tess: 'TESS_EBADFMT' });
}

// ---- Auth.js v5 ----------------------------------------------------------------------------------------------
{
  const t = await authJwt.encode({ token: { name: 'Alice', email: 'alice@example.com', picture: null, sub: 'u-123' },
                                   secret: SECRET, salt: COOKIE });
  add({ what: '@auth/core encode: name, email, picture, sub (kid)', format: 1, secrets: SECRET, cookie: COOKIE,
        token: t, node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_OK' });
}
{
  const t = await authJwt.encode({ token: { sub: '42', role: 'agent' }, secret: SECRET, salt: SECURE, maxAge: 3600 });
  add({ what: '@auth/core encode for the __Secure- cookie', format: 1, secrets: SECRET, cookie: SECURE, token: t,
        node: await authDecode(t, SECRET, SECURE), tess: 'TESS_OK' });
  add({ what: '@auth/core __Secure- token read with the plain cookie\'s salt', format: 1, secrets: SECRET, cookie: COOKIE,
        token: t, node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EBADSIG' });
}
{
  const t = await authJwt.encode({ token: { sub: 'u-old' }, secret: [OLD, SECRET], salt: COOKIE });
  add({ what: '@auth/core encode with the older secret of the list', format: 1, secrets: `${SECRET},${OLD}`,
        cookie: COOKIE, token: t, node: await authDecode(t, [SECRET, OLD], COOKIE), tess: 'TESS_OK' });
}
{
  const t = await authJwt.encode({ token: { sub: 'u-123' }, secret: OTHER, salt: COOKIE });
  add({ what: '@auth/core encode under another secret', format: 1, secrets: SECRET, cookie: COOKIE, token: t,
        node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EBADSIG' });
}
{
  const t = await authJwt.encode({ token: { sub: 'u-123' }, secret: SECRET, salt: COOKIE, maxAge: -16 });
  add({ what: '@auth/core encode, expired past the 15 s tolerance', format: 1, secrets: SECRET, cookie: COOKIE,
        token: t, node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EEXPIRED' });
}
{
  const key = await authKey(SECRET, COOKIE);
  const t = await new jose.EncryptJWT({ sub: 'u-nokid' }).setProtectedHeader({ alg: 'dir', enc: 'A256CBC-HS512' })
    .setIssuedAt().setExpirationTime(now() + 3600).encrypt(key);
  add({ what: 'A256CBC-HS512 without a kid', format: 1, secrets: SECRET, cookie: COOKIE, token: t,
        node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_OK' });
}
{
  // @auth/core's decode also takes A256GCM (a 32-byte key of its derivation); the format pins A256CBC-HS512.
  const key = await authKey(SECRET, COOKIE, 32);
  const t = await new jose.EncryptJWT({ sub: 'u-gcm' }).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .setIssuedAt().setExpirationTime(now() + 3600).encrypt(key);
  add({ what: 'A256GCM under Auth.js\'s key (decode takes it; the format pins A256CBC-HS512)', format: 1,
        secrets: SECRET, cookie: COOKIE, token: t, node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EBADSIG' });
}
{
  const key = await authKey(SECRET, COOKIE, 32);
  const t = await new jose.EncryptJWT({ sub: 'u-123' }).setProtectedHeader({ alg: 'dir', enc: 'A128CBC-HS256' })
    .setIssuedAt().setExpirationTime(now() + 3600).encrypt(key);
  add({ what: 'enc A128CBC-HS256', format: 1, secrets: SECRET, cookie: COOKIE, token: t,
        node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EBADSIG' });
}
{
  const t = await nextJwt.encode({ token: { sub: 'u-123' }, secret: SECRET });
  add({ what: 'a NextAuth v4 token given to Auth.js', format: 1, secrets: SECRET, cookie: COOKIE, token: t,
        node: await authDecode(t, SECRET, COOKIE), tess: 'TESS_EBADSIG' });
}

// ---- output ---------------------------------------------------------------------------------------------------
emit('/* clang-format off */');
emit(`/* Generated by tests/interop/gen_jwe_vectors.mjs from next-auth ${version('next-auth')}, ` +
     `@auth/core ${version('@auth/core')}, @panva/hkdf, node ${process.version}. Do not edit. */`);
emit('#ifndef TESS_VECTORS_JWE_H');
emit('#define TESS_VECTORS_JWE_H');
emit('#include <stddef.h>');
emit('#include <stdint.h>');
emit('');
emit('/* Keys as the packages derive them (hex). */');
emit(`#define TV_JWE_SECRET ${cstr(SECRET)}`);
emit(`#define TV_JWE_OLD_SECRET ${cstr(OLD)}`);
emit(`#define TV_JWE_NEXTAUTH_KEY ${cstr(hex(await nextKey(SECRET)))}`);
emit(`#define TV_JWE_AUTHJS_KEY ${cstr(hex(await authKey(SECRET, COOKIE)))}`);
emit(`#define TV_JWE_AUTHJS_SECURE_KEY ${cstr(hex(await authKey(SECRET, SECURE)))}`);
{
  const k = await authKey(SECRET, COOKIE);
  emit(`#define TV_JWE_AUTHJS_KID ${cstr(await jose.calculateJwkThumbprint({ kty: 'oct', k: jose.base64url.encode(k) }, 'sha512'))}`);
}
emit('');
emit('/* format: 0 nextauth, 1 authjs; cookie: Auth.js\'s salt (NULL: the default); iat: when to check it.');
emit('   node_ok: the package\'s decode() accepts it (with node_sub, node_role); tess: what tessera answers. */');
emit('typedef struct tv_jwe { const char *what; int format; const char *secrets; const char *cookie; const char *token;');
emit('                       int node_ok; const char *node_sub; const char *node_role; const char *node_jti;');
emit('                       int64_t iat; int64_t exp; int tess; } tv_jwe_t;');
emit('static const tv_jwe_t tv_jwe[] = {');
for (const v of vectors) {
  const p = JSON.parse(Buffer.from(v.token.split('.')[0], 'base64url')) && v.node;
  let iat = 0, exp = 0;
  if (v.node) { iat = v.node.iat; exp = v.node.exp; } else {
    // the claims are sealed; the generator knows them only through decode: take the clock of the encode
    iat = now(); exp = 0;
  }
  emit(`    {${cstr(v.what)}, ${v.format}, ${cstr(v.secrets)}, ${cstr(v.cookie)}, ${cstr(v.token)}, ${v.node ? 1 : 0}, ` +
       `${cstr(p ? String(p.sub) : null)}, ${cstr(p && p.role ? p.role : null)}, ${cstr(p && p.jti ? p.jti : null)}, ` +
       `${iat}, ${exp}, ${v.tess}},`);
}
emit('};');
emit('#endif');
process.stdout.write(out.join('\n') + '\n');

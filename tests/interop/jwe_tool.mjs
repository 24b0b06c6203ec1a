#!/usr/bin/env node
// NextAuth v4 / Auth.js v5 session tokens for the integration tests, made and read by the real packages.
//   node jwe_tool.mjs '<json request>'  ->  JSON on stdout
// request: {"op": "encode" | "decode" | "chunk" | "raw", "format": "nextauth" | "authjs", ...}
//   encode {token, secret, salt?, maxAge?}       -> {"token": "..."}         (the package's encode())
//   decode {token, secret, salt?}                -> {"payload": {...} | null} (the package's decode(); null: refused)
//   chunk  {name, value}                         -> {"cookies": [[name, value], ...]} (the package's SessionStore)
//   raw    {secret, salt?, enc, payload, maxAge} -> {"token": "..."}         (jose, the package's key, another enc)
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const nextJwt = require('next-auth/jwt');
const nextCookie = require(path.join(here, 'node_modules/next-auth/core/lib/cookie.js'));
const hkdf = require('@panva/hkdf').default ?? require('@panva/hkdf');
const authJwt = await import('@auth/core/jwt');
const authCookie = await import(path.join(here, 'node_modules/@auth/core/lib/utils/cookie.js'));
const jose = await import('jose');

const req = JSON.parse(process.argv[2]);
const quiet = { debug() {}, warn() {}, error() {} };
let out;

if (req.op === 'encode') {
  const p = { token: req.token, secret: req.secret, maxAge: req.maxAge };
  out = { token: req.format === 'nextauth' ? await nextJwt.encode(p) : await authJwt.encode({ ...p, salt: req.salt }) };
} else if (req.op === 'decode') {
  try {
    const p = { token: req.token, secret: req.secret };
    out = { payload: req.format === 'nextauth' ? await nextJwt.decode(p) : await authJwt.decode({ ...p, salt: req.salt }) };
  } catch (e) {
    out = { payload: null, error: String(e && e.code || e) };
  }
} else if (req.op === 'chunk') {
  const store = req.format === 'nextauth'
    ? new nextCookie.SessionStore({ name: req.name, options: {} }, { cookies: {}, headers: {} }, quiet)
    : new authCookie.SessionStore({ name: req.name, options: {} }, {}, quiet);
  out = { cookies: store.chunk(req.value, {}).map((c) => [c.name, c.value]) };
} else if (req.op === 'raw') {
  const n = { A256GCM: 32, 'A128CBC-HS256': 32, 'A256CBC-HS512': 64, A128GCM: 16 }[req.enc];
  const key = req.format === 'nextauth'
    ? await hkdf('sha256', req.secret, '', 'NextAuth.js Generated Encryption Key', n)
    : await hkdf('sha256', req.secret, req.salt, `Auth.js Generated Encryption Key (${req.salt})`, n);
  const now = (Date.now() / 1000) | 0;
  out = { token: await new jose.EncryptJWT(req.payload).setProtectedHeader({ alg: 'dir', enc: req.enc })
    .setIssuedAt().setExpirationTime(now + (req.maxAge ?? 3600)).setJti(crypto.randomUUID()).encrypt(key) };
} else {
  throw new Error(`unknown op ${req.op}`);
}
process.stdout.write(JSON.stringify(out));

#!/usr/bin/env node
// The note's Next.js app, as far as tessera sees it: NextAuth's session cookie made by the real next-auth
// package, and the app's own routes behind the same nginx (docs/nextjs.md; tests/integration/test_nextjs_recipe.py).
// Not Next.js itself: a plain http server that signs users in the way NextAuth does.
//   PORT=3000 NEXTAUTH_SECRET=... MODE=jwt|database [DATABASE_URL=postgres://...] node nextjs_standin.mjs
//   POST /api/auth/test-signin {userId, role} -> 200, Set-Cookie next-auth.session-token
//        jwt: next-auth/jwt encode({sub, name, email, role}); database: a "User" and a "Session" row written as
//        the Prisma adapter writes them (a random UUID token, expires in 30 days, UTC)
//   POST /api/auth/signout -> 200, the cookie cleared (database: the row deleted, as the adapter's deleteSession)
//   GET  /api/auth/session -> {"servedBy": "next"}   (the app's own route: nginx must not send it to tessera)
//   GET  /dashboard        -> "dashboard of <X-User> (<X-Role>)"   (nginx's auth_request in front)
//   GET  /healthz          -> 200
import http from 'node:http';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { encode } = require('next-auth/jwt');
const env = process.env;
const COOKIE = 'next-auth.session-token';
let pool = null;
if (env.MODE === 'database') {
  const { Pool } = require('pg');
  pool = new Pool({ connectionString: env.DATABASE_URL, max: 2 });
}

function cookieOf(req) {
  for (const part of (req.headers.cookie || '').split(/;\s*/)) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i) === COOKIE) return part.slice(i + 1);
  }
  return null;
}

function body(req) {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => { try { resolve(JSON.parse(b || '{}')); } catch { resolve({}); } });
  });
}

async function signIn(userId, role) {
  if (env.MODE !== 'database')
    return encode({ token: { sub: userId, name: `user ${userId}`, email: `${userId}@example.com`, role },
                    secret: env.NEXTAUTH_SECRET });
  const token = crypto.randomUUID();
  await pool.query('INSERT INTO "User" (id, name, email, role) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING',
                   [userId, `user ${userId}`, `${userId}@example.com`, role]);
  await pool.query('INSERT INTO "Session" (id, "sessionToken", "userId", expires) VALUES ($1, $2, $3, ' +
                   "(now() AT TIME ZONE 'UTC') + interval '30 days')",
                   ['c' + crypto.randomBytes(12).toString('hex'), token, userId]);
  return token;
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/api/auth/test-signin') {
      const b = await body(req);
      const token = await signIn(String(b.userId), b.role);
      res.writeHead(200, { 'Set-Cookie': `${COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax`,
                           'Content-Type': 'application/json' });
      return res.end('{"ok":true}');
    }
    if (req.method === 'POST' && req.url === '/api/auth/signout') {
      const token = cookieOf(req);
      if (pool && token) await pool.query('DELETE FROM "Session" WHERE "sessionToken" = $1', [token]);
      res.writeHead(200, { 'Set-Cookie': `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`,
                           'Content-Type': 'application/json' });
      return res.end('{"ok":true}');
    }
    if (req.url === '/api/auth/session') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end('{"servedBy":"next"}');
    }
    if (req.url === '/dashboard') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return res.end(`dashboard of ${req.headers['x-user']} (${req.headers['x-role']})`);
    }
    if (req.url === '/healthz') {
      res.writeHead(200);
      return res.end('ok');
    }
    res.writeHead(404);
    res.end('not found');
  } catch (e) {
    console.error('nextjs_standin:', e.message);
    res.writeHead(500);
    res.end();
  }
});
server.listen(Number(env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { server.close(); if (pool) pool.end(); process.exit(0); });

#!/usr/bin/env node
// A minimal Express app using the REAL npm session stack (express-session + connect-redis or
// connect-pg-simple), for tests/integration/test_interop_express.py: tessera must share its sessions.
//
//   cd tests/interop && npm ci
//   PORT=3000 SESSION_SECRET=new,old STORE=redis REDIS_URL=redis://127.0.0.1:6379 node express_app.js
//   PORT=3000 SESSION_SECRET=new,old STORE=pg DATABASE_URL=postgres://u@127.0.0.1:5432/db node express_app.js
//
// Environment:
//   PORT               listen port on 127.0.0.1 (required)
//   SESSION_SECRET     comma-separated list: the first signs, all verify (express-session's array form)
//   STORE              redis | pg
//   REDIS_URL          for STORE=redis (redis v4 client)
//   SESSION_PREFIX     connect-redis key prefix (default "session:", tessera's default; connect-redis's is "sess:")
//   DATABASE_URL       for STORE=pg (pg Pool; table "session")
//   PG_CREATE_TABLE    "1": connect-pg-simple's createTableIfMissing (default "0": tessera creates it)
//   COOKIE_MAX_AGE_MS  cookie maxAge in ms (default 1 day; "none" for a browser-session cookie)
//
// Routes: POST /login {userId, role} -> {ok:true}; GET /me -> {userId, role, cart} or 401;
//         POST /cart {cart} -> {ok:true} (401 without a session); POST /logout -> 204; GET /healthz -> 200;
//         GET /debug/session. Prints "listening <port>" once ready; exits 0 on SIGTERM.
'use strict';

const express = require('express');
const session = require('express-session');

const env = process.env;
const port = parseInt(env.PORT || '', 10);
if (!port) {
  console.error('express_app: PORT is required');
  process.exit(2);
}
const secrets = (env.SESSION_SECRET || '').split(',').map((s) => s.trim()).filter(Boolean);
if (secrets.length === 0) {
  console.error('express_app: SESSION_SECRET is required');
  process.exit(2);
}

let store;
const closers = [];
if (env.STORE === 'redis') {
  const RedisStore = require('connect-redis').default;
  const { createClient } = require('redis');
  const client = createClient({ url: env.REDIS_URL });
  client.on('error', (err) => console.error('express_app: redis error:', err.message));
  client.connect().catch((err) => {
    console.error('express_app: redis connect failed:', err.message);
    process.exit(1);
  });
  store = new RedisStore({ client, prefix: env.SESSION_PREFIX !== undefined ? env.SESSION_PREFIX : 'session:' });
  closers.push(() => client.quit().catch(() => {}));
} else if (env.STORE === 'pg') {
  const PgSession = require('connect-pg-simple')(session);
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: env.DATABASE_URL, max: 4 });
  pool.on('error', (err) => console.error('express_app: pg pool error:', err.message));
  store = new PgSession({
    pool,
    tableName: 'session',
    createTableIfMissing: env.PG_CREATE_TABLE === '1',
    pruneSessionInterval: false,
    errorLog: (...args) => console.error('express_app: connect-pg-simple:', ...args),
  });
  closers.push(async () => {
    store.close();
    await pool.end().catch(() => {});
  });
} else {
  console.error('express_app: STORE must be redis or pg');
  process.exit(2);
}

const maxAge = env.COOKIE_MAX_AGE_MS === 'none' ? undefined : parseInt(env.COOKIE_MAX_AGE_MS || '86400000', 10);

const app = express();
app.use(express.json());
app.use(
  session({
    name: 'connect.sid',
    secret: secrets,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    cookie: { httpOnly: true, path: '/', sameSite: 'lax', secure: false, maxAge },
  })
);

app.get('/healthz', (req, res) => res.status(200).json({ ok: true }));

app.post('/login', (req, res, next) => {
  const body = req.body || {};
  if (body.userId === undefined || body.userId === null) return res.status(400).json({ error: 'bad_request' });
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.userId = body.userId;
    req.session.role = body.role || 'visitor';
    req.session.cart = [1, 2];
    req.session.save((err2) => {
      if (err2) return next(err2);
      res.json({ ok: true });
    });
  });
});

app.get('/me', (req, res) => {
  if (!req.session || req.session.userId === undefined || req.session.userId === null) {
    return res.status(401).json({ error: 'unauthorized' });
  }
  res.json({ userId: req.session.userId, role: req.session.role, cart: req.session.cart });
});

// Changes an app field of the current session (whoever made it): express-session saves the whole document.
app.post('/cart', (req, res) => {
  if (!req.session || req.session.userId === undefined || req.session.userId === null) {
    return res.status(401).json({ error: 'unauthorized' });
  }
  req.session.cart = (req.body || {}).cart;
  res.json({ ok: true });
});

// The whole session as express-session sees it (cookie included), for diagnosing incompatibilities.
app.get('/debug/session', (req, res) => res.json({ sessionID: req.sessionID, session: req.session }));

app.post('/logout', (req, res, next) => {
  if (!req.session) return res.status(204).end();
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid', { path: '/' });
    res.status(204).end();
  });
});

app.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
  console.error('express_app: error:', err && err.stack ? err.stack : err);
  res.status(500).json({ error: 'internal', message: String(err && err.message) });
});

const server = app.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(async () => {
    for (const c of closers) await c();
    process.exit(0);
  });
  if (server.closeAllConnections) server.closeAllConnections();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

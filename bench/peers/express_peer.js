#!/usr/bin/env node
// bench/run's peer: the team's current stack serving the polled endpoint, GET /api/prechats/:id/meta, over the
// same seeded sessions as tessera: express-session + connect-redis (redis v4) or connect-pg-simple (pg), or
// jsonwebtoken's verify of the `session-token` cookie. Every option is the packages' default except what a
// polling endpoint needs (resave: false, saveUninitialized: false), so each poll costs what it costs the app
// today: a store read and, through express-session's touch, a store write (EXPIRE / UPDATE).
//
//   PORT=3001 STORE=redis|pg|jwt SESSION_SECRET=... REDIS_URL=... DATABASE_URL=... \
//   PRECHAT_ID=1 VISITOR_ID=1 META_BODY='{...}' META_ETAG='"..."' node express_peer.js
//
// The meta body and ETag are tessera's own answer for that pre-chat, handed over by bench/run and kept in memory
// (the peer does not read the pre-chat from a database: that only makes the peer faster than the app).
// Answers 200 with the body, 304 on a matching If-None-Match, 401 without a valid session, 404 for another
// user's pre-chat. Prints "listening <port>" once ready; exits 0 on SIGTERM.
'use strict';

const express = require('express');

const env = process.env;
const port = parseInt(env.PORT || '', 10);
const secrets = (env.SESSION_SECRET || '').split(',').filter(Boolean);
if (!port || secrets.length === 0 || !env.META_BODY || !env.META_ETAG || !env.VISITOR_ID || !env.PRECHAT_ID) {
  console.error('express_peer: PORT, SESSION_SECRET, PRECHAT_ID, VISITOR_ID, META_BODY and META_ETAG are required');
  process.exit(2);
}
const metaBody = Buffer.from(env.META_BODY);
const metaEtag = env.META_ETAG;
const visitor = String(env.VISITOR_ID);
const prechat = String(env.PRECHAT_ID);

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
const closers = [];

function answer(req, res, userId) {
  if (req.params.id !== prechat || String(userId) !== visitor) {
    res.status(404).json({ error: 'not_found', message: 'no such pre-chat' });
    return;
  }
  res.set('ETag', metaEtag);
  res.set('Cache-Control', 'private, no-cache');
  if (req.get('If-None-Match') === metaEtag) {
    res.status(304).end();
    return;
  }
  res.type('application/json').send(metaBody);
}

if (env.STORE === 'jwt') {
  const jwt = require('jsonwebtoken');
  app.get('/api/prechats/:id/meta', (req, res) => {
    const m = /(?:^|;\s*)session-token=([^;]+)/.exec(req.get('Cookie') || '');
    let claims = null;
    for (const s of secrets) {
      try {
        claims = jwt.verify(m ? m[1] : '', s, { algorithms: ['HS256'] });
        break;
      } catch (e) {
        claims = null;
      }
    }
    if (!claims || claims.userId === undefined) {
      res.status(401).json({ error: 'unauthenticated', message: 'no valid session' });
      return;
    }
    answer(req, res, claims.userId);
  });
} else {
  const session = require('express-session');
  let store;
  if (env.STORE === 'redis') {
    const RedisStore = require('connect-redis').default;
    const { createClient } = require('redis');
    const client = createClient({ url: env.REDIS_URL });
    client.on('error', (err) => console.error('express_peer: redis error:', err.message));
    client.connect().catch((err) => {
      console.error('express_peer: redis connect failed:', err.message);
      process.exit(1);
    });
    store = new RedisStore({ client, prefix: 'session:' });
    closers.push(() => client.quit().catch(() => {}));
  } else if (env.STORE === 'pg') {
    const PgSession = require('connect-pg-simple')(session);
    const { Pool } = require('pg');
    const pool = new Pool({ connectionString: env.DATABASE_URL });
    pool.on('error', (err) => console.error('express_peer: pg pool error:', err.message));
    store = new PgSession({ pool, tableName: 'session', pruneSessionInterval: false });
    closers.push(() => pool.end().catch(() => {}));
  } else {
    console.error('express_peer: STORE must be redis, pg or jwt');
    process.exit(2);
  }
  app.use(session({ secret: secrets, store, resave: false, saveUninitialized: false, name: 'connect.sid' }));
  app.get('/api/prechats/:id/meta', (req, res) => {
    if (!req.session || req.session.userId === undefined) {
      res.status(401).json({ error: 'unauthenticated', message: 'no valid session' });
      return;
    }
    answer(req, res, req.session.userId);
  });
}

app.get('/healthz', (req, res) => res.json({ ok: true }));
app.use((err, req, res, next) => {
  console.error('express_peer: error:', err && err.message);
  res.status(500).json({ error: 'internal', message: 'internal error' });
});

const server = app.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
server.keepAliveTimeout = 65000;
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  for (const c of closers) c();
  setTimeout(() => process.exit(0), 2000).unref();
});

"""NextAuth database sessions (issue 9, part 2): tessera beside a Next.js app whose NextAuth keeps its sessions
in the Prisma adapter's tables, with SESSION_FORMAT=nextauth (or authjs) and strategy cached or db.

The tables are the app's (tests/interop/prisma/*.sql: what `prisma migrate` writes for the adapter's models,
plus a "role" column); rows are written the way the adapter writes them (createSession / updateSession /
deleteSession: plain INSERT / UPDATE / DELETE on "Session", expires in UTC; on SQLite integer milliseconds, or
ISO text as Prisma's driver adapters write it).

PostgreSQL, two cached instances A and B and a db instance D, no Redis:
- the adapter's session is a tessera session on every instance (user, role from "User"."role"), /auth too;
- the app's users (cuid ids) open pre-chats and exchange messages (users-table rows made for them);
- the app's sign-out (DELETE) -> 401 on A and B within 1 s; a role changed in "User" -> seen within 1 s;
- a cookie that is not a session token's shape is refused before any lookup; an unknown token is cached
  negatively, and the app inserting it makes it valid within 1 s; an expired row is no session;
- sliding as NextAuth slides: a session last extended more than updateAge ago is extended to now + maxAge by a
  poll, a fresh one is not written;
- tessera's own login answers 409 (sessions are made by the app's sign-in); Auth.js's cookie name with authjs.
SQLite, two cached processes on one file: the same lookups, both expiry encodings, a foreign delete in 1 s.
"""

import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (Browser, PostgresServer, ServerTestCase, TesseraServer, main,  # noqa: E402
                             shared_postgres, stop_shared_postgres, wait_until)

PRISMA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "prisma"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))
WITHIN = 1.0
DAY_MS = 86400 * 1000
ENV = {"SESSION_FORMAT": "nextauth", "NEXTAUTH_ROLE_COLUMN": "role", "CACHE_TTL": "300"}
COOKIE = "next-auth.session-token"


def tearDownModule():
    stop_shared_postgres()


def cuid():
    return "c" + secrets.token_hex(12)


def get(server, token, path="/api/auth/session", cookie=COOKIE):
    return Browser(server.port).get(path, cookies=f"{cookie}={token}")


def metric(server, name):
    return server.metrics().get(name, 0.0)


class _NextAuthDb:
    """What every store shows; a subclass supplies the database and the app's writes."""

    @classmethod
    def instance(cls, strategy="cached", env=None):
        e = dict(ENV)
        e.update(env or {})
        srv = TesseraServer(strategy=strategy, secret="nextauth-db-secret-0123456789abcdef", database=cls.database,
                            env=e)
        cls.track_class(srv)
        return srv.start()

    @classmethod
    def start_instances(cls):
        cls.a = cls.instance()
        cls.b = cls.instance()
        for s in (cls.a, cls.b):
            wait_until(lambda s=s: s.metrics().get("tessera_coherence_up") == 1, 15, f"watcher up on {s.port}")

    def new_session(self, role="visitor", expires_ms=None, **kw):
        uid = cuid()
        self.app_user(uid, role)
        token = str(uuid.uuid4())
        self.app_session(token, uid, expires_ms if expires_ms is not None else int(time.time() * 1000) + 30 * DAY_MS,
                         **kw)
        return token, uid

    def seen(self, servers, token, want, what):
        t0 = time.monotonic()
        for s in servers:
            wait_until(lambda s=s: get(s, token).status == want, max(0.0, WITHIN - (time.monotonic() - t0)) + 0.05,
                       f"{what}: {want} on port {s.port}")

    def test_adapter_session_is_a_tessera_session(self):
        token, uid = self.new_session(role="agent")
        for s in (self.a, self.b):
            r = get(s, token)
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["userId"], uid)
            self.assertEqual(r.json()["role"], "agent")
            r = get(s, token, path="/auth")
            self.assertStatus(r, 204)
            self.assertEqual(r.header("X-Session-User"), uid)
            self.assertEqual(r.header("X-Session-Role"), "agent")

    def test_default_role_when_the_column_is_null(self):
        token, _ = self.new_session(role=None)
        self.assertEqual(get(self.a, token).json()["role"], "visitor")

    def test_apps_users_run_a_prechat(self):
        vt, _ = self.new_session(role="visitor")
        at, _ = self.new_session(role="agent")
        v, ag = Browser(self.a.port), Browser(self.b.port)
        v.jar[COOKIE] = vt
        ag.jar[COOKIE] = at
        r = v.post("/api/prechats", {"topic": "billing"})
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        self.assertStatus(v.post(f"/api/prechats/{pid}/messages", {"body": "hello"}), 201)
        waiting = ag.get("/api/prechats")
        self.assertStatus(waiting, 200)
        self.assertIn(pid, [p["id"] for p in waiting.json()["prechats"]])
        self.assertStatus(ag.post(f"/api/prechats/{pid}/join"), 200)
        self.assertStatus(ag.post(f"/api/prechats/{pid}/messages", {"body": "hi, how can I help?"}), 201)
        msgs = v.get(f"/api/prechats/{pid}/messages")
        self.assertStatus(msgs, 200)
        self.assertEqual([m["body"] for m in msgs.json()["messages"]], ["hello", "hi, how can I help?"])

    def test_sign_out_by_the_app_is_seen_within_1s(self):
        token, _ = self.new_session()
        for s in (self.a, self.b):
            # the insert's own notification may drop the first copy: wait until one is served from the cache
            def hit(s=s):
                hits = metric(s, "tessera_cache_hits_total")
                self.assertStatus(get(s, token), 200)
                return metric(s, "tessera_cache_hits_total") > hits
            wait_until(hit, 5, f"served from the near-cache of port {s.port}")
        self.app_delete(token)
        self.seen((self.a, self.b), token, 401, "the app's sign-out")

    def test_role_change_in_user_is_seen_within_1s(self):
        token, uid = self.new_session(role="visitor")
        for s in (self.a, self.b):
            self.assertEqual(get(s, token).json()["role"], "visitor")
            self.assertEqual(get(s, token).json()["role"], "visitor")
        self.app_set_role(uid, "agent")
        t0 = time.monotonic()
        for s in (self.a, self.b):
            wait_until(lambda s=s: get(s, token).json().get("role") == "agent",
                       max(0.0, WITHIN - (time.monotonic() - t0)) + 0.05, f"new role on port {s.port}")

    def test_bad_shapes_never_reach_the_database(self):
        before = metric(self.a, "tessera_auth_store_lookups_total")
        early = metric(self.a, "tessera_auth_rejected_early_total")
        bad = ["x", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950g", "' OR 1=1 --",
               "s%3Aabc.def", "z" * 64, secrets.token_hex(33)]
        for t in bad:
            self.assertStatus(get(self.a, t), 401)
        self.assertEqual(metric(self.a, "tessera_auth_store_lookups_total"), before)
        self.assertEqual(metric(self.a, "tessera_auth_rejected_early_total"), early + len(bad))

    def test_unknown_token_cached_negatively_then_inserted(self):
        uid = cuid()
        self.app_user(uid, "visitor")
        token = secrets.token_hex(32)  # older NextAuth's randomBytes(32).toString("hex")
        self.assertStatus(get(self.a, token), 401)
        neg = metric(self.a, "tessera_cache_negative_hits_total")
        self.assertStatus(get(self.a, token), 401)
        self.assertGreater(metric(self.a, "tessera_cache_negative_hits_total"), neg)
        self.app_session(token, uid, int(time.time() * 1000) + DAY_MS)
        self.seen((self.a,), token, 200, "an inserted session")

    def test_expired_row_is_no_session(self):
        token, _ = self.new_session(expires_ms=int(time.time() * 1000) - 60000)
        self.assertStatus(get(self.a, token), 401)

    def test_slides_as_nextauth_does(self):
        now = int(time.time() * 1000)
        stale, _ = self.new_session(expires_ms=now + 30 * DAY_MS - 2 * DAY_MS)  # extended two days ago
        fresh, _ = self.new_session(expires_ms=now + 30 * DAY_MS - 3600 * 1000)  # an hour ago
        fresh_before = self.app_expires(fresh)
        self.assertStatus(get(self.a, stale), 200)
        self.assertStatus(get(self.a, fresh), 200)
        wait_until(lambda: self.app_expires(stale) > now + 30 * DAY_MS - 60000, 5, "the stale session extended")
        self.assertLess(self.app_expires(stale), int(time.time() * 1000) + 30 * DAY_MS + 60000)
        self.assertEqual(self.app_expires(fresh), fresh_before, "a session extended within updateAge is not written")

    def test_login_is_the_apps(self):
        r = Browser(self.a.port).post("/api/auth/login", {"username": "x", "password": "y"})
        self.assertJsonError(r, 409)
        self.assertEqual(r.json()["error"], "login_elsewhere")


@unittest.skipUnless(HAVE_PG, "PostgreSQL 15 missing")
class PgNextAuth(_NextAuthDb, ServerTestCase):
    DB = "nextauth_app"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = shared_postgres()
        cls.pg.psql(f"DROP DATABASE IF EXISTS {cls.DB}")
        cls.pg.psql(f"CREATE DATABASE {cls.DB}")
        with open(os.path.join(PRISMA, "postgresql.sql")) as f:
            cls.pg.psql(f.read(), db=cls.DB)
        cls.database = f"postgres://{cls.pg.db_user}@127.0.0.1:{cls.pg.port}/{cls.DB}"
        cls.start_instances()

    def psql(self, sql):
        return self.pg.psql(sql, db=self.DB)

    def app_user(self, uid, role):
        r = "NULL" if role is None else f"'{role}'"
        self.psql(f"INSERT INTO \"User\" (id, name, email, role) VALUES ('{uid}', 'n', '{uid}@example.com', {r})")

    def app_session(self, token, uid, expires_ms):
        self.psql(f"INSERT INTO \"Session\" (id, \"sessionToken\", \"userId\", expires) VALUES ('{cuid()}', '{token}', "
                  f"'{uid}', to_timestamp({expires_ms} / 1000.0) AT TIME ZONE 'UTC')")

    def app_delete(self, token):
        n = self.psql(f"WITH d AS (DELETE FROM \"Session\" WHERE \"sessionToken\" = '{token}' RETURNING 1) "
                      "SELECT count(*) FROM d")
        self.assertEqual(n.strip(), "1")

    def app_set_role(self, uid, role):
        self.psql(f"UPDATE \"User\" SET role = '{role}' WHERE id = '{uid}'")

    def app_expires(self, token):
        return int(self.psql("SELECT (extract(epoch FROM expires AT TIME ZONE 'UTC') * 1000)::bigint FROM \"Session\" "
                             f"WHERE \"sessionToken\" = '{token}'").strip())

    def test_db_strategy_and_authjs_cookie(self):
        """Strategy db (no near-cache) reads the same rows; with authjs the cookie is Auth.js's."""
        token, uid = self.new_session(role="agent")
        d = self.instance("db")
        self.assertEqual(get(d, token).json()["userId"], uid)
        j = self.instance("db", env={"SESSION_FORMAT": "authjs"})
        self.assertStatus(get(j, token), 401)  # not its cookie
        r = get(j, token, cookie="authjs.session-token")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["role"], "agent")
        self.app_delete(token)
        self.assertStatus(get(d, token), 401)


class SqliteNextAuth(_NextAuthDb, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="tessera-nextauth-")
        cls.path = os.path.join(cls.tmp, "app.db")
        with sqlite3.connect(cls.path) as c, open(os.path.join(PRISMA, "sqlite.sql")) as f:
            c.executescript(f.read())
        cls.database = f"sqlite:{cls.path}"
        cls.start_instances()

    def db(self):
        c = sqlite3.connect(self.path, timeout=10)
        c.isolation_level = None
        return c

    def app_user(self, uid, role):
        with self.db() as c:
            c.execute('INSERT INTO "User" (id, name, email, role) VALUES (?, ?, ?, ?)', (uid, "n", uid + "@x", role))

    def app_session(self, token, uid, expires_ms, iso=False):
        exp = expires_ms
        if iso:  # Prisma's driver adapters write ISO 8601 text
            exp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires_ms / 1000)) + f".{expires_ms % 1000:03d}Z"
        with self.db() as c:
            c.execute('INSERT INTO "Session" (id, "sessionToken", "userId", expires) VALUES (?, ?, ?, ?)',
                      (cuid(), token, uid, exp))

    def app_delete(self, token):
        with self.db() as c:
            self.assertEqual(c.execute('DELETE FROM "Session" WHERE "sessionToken" = ?', (token,)).rowcount, 1)

    def app_set_role(self, uid, role):
        with self.db() as c:
            c.execute('UPDATE "User" SET role = ? WHERE id = ?', (role, uid))

    def app_expires(self, token):
        with self.db() as c:
            (v,) = c.execute('SELECT expires FROM "Session" WHERE "sessionToken" = ?', (token,)).fetchone()
        return int(v)

    def test_iso_text_expiry(self):
        token, uid = self.new_session(iso=True)
        r = get(self.a, token)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["userId"], uid)
        gone, _ = self.new_session(expires_ms=int(time.time() * 1000) - 60000, iso=True)
        self.assertStatus(get(self.a, gone), 401)


if __name__ == "__main__":
    main()

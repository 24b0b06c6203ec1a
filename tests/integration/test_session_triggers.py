"""A near-cache that another app's writes cannot make stale: the session table's triggers (issue 9, part 3).

`cached` keeps sessions in an in-process near-cache (CACHE_TTL, 300 s here). Another writer of the session
table -- the Express app next to tessera (real express-session + connect-pg-simple), psql, another process on
the SQLite file -- used to leave that copy in place until it expired. Now tessera installs triggers on the table
(PostgreSQL: NOTIFY tessera_session; SQLite: rows in tess_session_event, followed through PRAGMA data_version)
and every instance follows them:

- PostgreSQL, two tessera instances A and B (cached, CACHE_TTL=300, no Redis; then the same with Redis and its L2
  copy), the table created by connect-pg-simple itself:
  * the Express app's logout (it deletes the row) -> 401 on A and B within 1 s, while a control instance C with
    --no-session-triggers still answers 200 from its copy (what every instance did before); with Redis, C hears
    of the tombstone A and B write over the L2 copy and answers 401 too;
  * a row inserted by the app for an id both instances had answered 401 for (a negative entry) -> 200 within 1 s;
  * the app changing the stored document (the role) -> the new role within 1 s;
  * TRUNCATE -> every copy gone;
  * the LISTEN connection killed (pg_terminate_backend) -> the near-cache is flushed and caching resumes only when
    the watcher listens again (tessera_coherence_up back to 1).
- SQLite, two tessera processes on one file: another process's DELETE -> 401 on both within 1 s (control C:
  200); its INSERT -> 200 within 1 s.

Deadlines are polled (wait_until); nothing sleeps blindly.
"""

import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop_express as tie  # noqa: E402
from tessera_harness import (Browser, ServerTestCase, TesseraServer, main, sign_express_cookie,  # noqa: E402
                             wait_until)

WITHIN = 1.0  # seconds: another writer's change is seen on every instance within this long
SECRET = tie.TESSERA_SECRETS
ENV = {"CACHE_TTL": "300", "SESSION_TOUCH_INTERVAL": "3600"}


def setUpModule():
    tie.setUpModule()


def tearDownModule():
    tie.tearDownModule()


def status(server, cookie, path="/api/auth/session"):
    return Browser(server.port).get(path, cookies=f"connect.sid={cookie}").status


def metric(server, name):
    return server.metrics().get(name, 0.0)


def seen_within(servers, cookie, want, what):
    """Every server answers `want` for `cookie` within WITHIN seconds (polled); returns the seconds it took."""
    t0 = time.monotonic()
    for s in servers:
        wait_until(lambda s=s: status(s, cookie) == want, max(0.0, WITHIN - (time.monotonic() - t0)) + 0.05,
                   f"{what}: {want} on port {s.port}")
    return time.monotonic() - t0


class _Triggers:
    """Scenarios shared by the stores; a subclass supplies the database and the foreign writes."""

    redis = False

    @classmethod
    def tessera(cls, *extra, env=None):
        e = dict(ENV)
        e.update(env or {})
        args = list(extra)
        if cls.redis:
            args += ["--redis", tie.REDIS.url]
        srv = TesseraServer(strategy="cached", secret=SECRET, database=cls.database, env=e, extra_args=args)
        cls.track_class(srv)
        return srv

    @classmethod
    def start_instances(cls):
        cls.a = cls.tessera()
        cls.a.add_user("vera", "visitor", "vera-pw")
        cls.a.start()
        cls.b = cls.tessera().start()
        cls.c = cls.tessera("--no-session-triggers").start()
        for s in (cls.a, cls.b):
            wait_until(lambda s=s: s.metrics().get("tessera_coherence_up") == 1, 15, f"watcher up on {s.port}")

    def login(self):
        b = Browser(self.a.port)
        r = b.login("vera", "vera-pw")
        self.assertStatus(r, 200)
        return b.jar["connect.sid"]

    def cached_everywhere(self, cookie, servers):
        """Each server answers 200 from its near-cache (a request moves the hit counter). The first answers may
        miss: a login's own insert comes back as a notification and drops the copies once."""
        for s in servers:
            def hit(s=s):
                hits = metric(s, "tessera_cache_hits_total")
                self.assertStatus(Browser(s.port).get("/api/auth/session", cookies=f"connect.sid={cookie}"), 200)
                return metric(s, "tessera_cache_hits_total") > hits
            wait_until(hit, 5, f"session served from the near-cache of port {s.port}")

    def check_control(self, cookie):
        """C follows no trigger. Alone (no Redis) it still serves its copy: what every instance did before, so
        the test would fail without the triggers. With Redis it hears of the tombstone A and B wrote over the
        L2 copy (client tracking), so one watching instance keeps every instance of the cluster coherent."""
        if self.redis:
            seen_within((self.c,), cookie, 401, "the tombstone of the L2 copy, on the instance without triggers")
        else:
            self.assertEqual(status(self.c, cookie), 200, "the control instance without triggers should still "
                             "serve its copy (else this test proves nothing)")

    def test_foreign_delete_is_seen_everywhere_within_1s(self):
        cookie = self.login()
        self.cached_everywhere(cookie, (self.a, self.b, self.c))
        self.foreign_delete(tie.sid_of(cookie))
        took = seen_within((self.a, self.b), cookie, 401, "a session deleted by another writer")
        self.check_control(cookie)
        sys.stderr.write(f"[delete seen on both instances after {took * 1000:.0f} ms] ")

    def test_foreign_insert_clears_a_negative_entry(self):
        sid = secrets.token_urlsafe(32)
        cookie = sign_express_cookie(sid, SECRET.split(",")[0])
        for s in (self.a, self.b):
            self.assertEqual(status(s, cookie), 401)
            neg = metric(s, "tessera_cache_negative_hits_total")
            self.assertEqual(status(s, cookie), 401)
            self.assertGreater(metric(s, "tessera_cache_negative_hits_total"), neg, "no negative entry")
        self.foreign_insert(sid, user_id="77", role="visitor")
        seen_within((self.a, self.b), cookie, 200, "a session inserted by another writer")

    def test_foreign_update_is_seen(self):
        cookie = self.login()
        self.cached_everywhere(cookie, (self.a, self.b))
        self.foreign_set_role(tie.sid_of(cookie), "agent")
        t0 = time.monotonic()
        for s in (self.a, self.b):
            def role(s=s):
                r = Browser(s.port).get("/api/auth/session", cookies=f"connect.sid={cookie}")
                return r.status == 200 and r.json().get("role") == "agent"
            wait_until(role, max(0.0, WITHIN - (time.monotonic() - t0)) + 0.05, f"new role on port {s.port}")


class PgTriggers(_Triggers, ServerTestCase):
    DB = "session_triggers"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if tie.PG is None:
            raise unittest.SkipTest("PostgreSQL 15 missing")
        if cls.redis and tie.REDIS is None:
            raise unittest.SkipTest("redis-server missing")
        tie.PG.psql(f"DROP DATABASE IF EXISTS {cls.DB}")
        tie.PG.psql(f"CREATE DATABASE {cls.DB}")
        cls.database = f"postgres://{tie.PG.db_user}@127.0.0.1:{tie.PG.port}/{cls.DB}"
        # The Express app creates the table (connect-pg-simple's createTableIfMissing), as an existing app has.
        cls.express = tie.ExpressApp("triggers", {"STORE": "pg", "DATABASE_URL": cls.database,
                                                  "PG_CREATE_TABLE": "1", "SESSION_SECRET": SECRET}).start()
        r = cls.express.browser().post("/login", {"userId": 1, "role": "visitor"})
        if r.status != 200:
            raise AssertionError(f"first Express login failed: {r!r}\n{cls.express.log_text()}")
        cls.start_instances()

    @classmethod
    def tearDownClass(cls):
        express = getattr(cls, "express", None)
        problem = express.cleanup() if express is not None else None
        super().tearDownClass()
        if problem:
            raise AssertionError(problem)

    def psql(self, sql):
        return tie.PG.psql(sql, db=self.DB)

    def foreign_delete(self, sid):
        n = self.psql(f"WITH d AS (DELETE FROM session WHERE sid = '{sid}' RETURNING 1) SELECT count(*) FROM d")
        self.assertEqual(n.strip(), "1")

    def foreign_insert(self, sid, user_id, role):
        doc = {"cookie": {"originalMaxAge": 86400000, "expires": "2099-01-01T00:00:00.000Z", "httpOnly": True,
                          "path": "/", "sameSite": "lax"}, "userId": user_id, "role": role}
        self.psql(f"INSERT INTO session (sid, sess, expire) VALUES ('{sid}', '{json.dumps(doc)}', "
                  "now() + interval '1 day')")

    def foreign_set_role(self, sid, role):
        self.psql(f"UPDATE session SET sess = jsonb_set(sess::jsonb, '{{role}}', '\"{role}\"')::json "
                  f"WHERE sid = '{sid}'")

    def test_express_logout_is_seen_everywhere_within_1s(self):
        eb = self.express.browser()
        self.assertStatus(eb.post("/login", {"userId": 5, "role": "visitor"}), 200)
        cookie = tie.jar_cookie(eb)
        self.cached_everywhere(cookie, (self.a, self.b, self.c))
        self.assertStatus(eb.post("/logout"), 204)
        seen_within((self.a, self.b), cookie, 401, "the Express app's logout")
        self.check_control(cookie)

    def test_truncate_drops_every_copy(self):
        cookies = [self.login() for _ in range(3)]
        for c in cookies:
            self.cached_everywhere(c, (self.a, self.b))
        self.psql("TRUNCATE session")
        for c in cookies:
            seen_within((self.a, self.b), c, 401, "TRUNCATE session")

    def test_a_dropped_listen_connection_flushes_the_cache(self):
        cookie = self.login()
        self.cached_everywhere(cookie, (self.a,))
        self.assertGreater(metric(self.a, "tessera_cache_entries"), 0)
        killed = self.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                           "query IN ('LISTEN tessera_session', 'SELECT 1 AS tessera_session_heartbeat')").strip()
        self.assertGreaterEqual(int(killed), 2, "the watchers of A and B")
        # Down: flushed and off; back: on again. Nothing polls meanwhile, so the entry count stays at 0.
        wait_until(lambda: metric(self.a, "tessera_cache_entries") == 0, 5, "near-cache flushed")
        wait_until(lambda: self.a.metrics().get("tessera_coherence_up") == 1, 15, "watcher back")
        self.cached_everywhere(cookie, (self.a,))


class PgTriggersWithRedis(PgTriggers):
    """The same with Redis: the L2 copy must go too (a tombstone for a deleted row)."""

    DB = "session_triggers_redis"
    redis = True


class SqliteTriggers(_Triggers, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="tessera-triggers-")
        cls.path = os.path.join(cls.tmp, "shared.db")
        cls.database = f"sqlite:{cls.path}"
        cls.start_instances()

    def db(self):
        c = sqlite3.connect(self.path, timeout=10)
        c.isolation_level = None
        return c

    def foreign_delete(self, sid):
        with self.db() as c:
            self.assertEqual(c.execute("DELETE FROM session WHERE sid = ?", (sid,)).rowcount, 1)

    def foreign_insert(self, sid, user_id, role):
        exp = int(time.time() * 1000) + 86400000
        doc = {"cookie": {"originalMaxAge": 86400000, "expires": "2099-01-01T00:00:00.000Z", "httpOnly": True,
                          "path": "/", "sameSite": "lax"}, "userId": user_id, "role": role}
        with self.db() as c:
            c.execute("INSERT INTO session (sid, sess, expire, user_id) VALUES (?, ?, ?, ?)",
                      (sid, json.dumps(doc), exp, user_id))

    def foreign_set_role(self, sid, role):
        with self.db() as c:
            (doc,) = c.execute("SELECT sess FROM session WHERE sid = ?", (sid,)).fetchone()
            d = json.loads(doc)
            d["role"] = role
            c.execute("UPDATE session SET sess = ? WHERE sid = ?", (json.dumps(d), sid))


if __name__ == "__main__":
    main()

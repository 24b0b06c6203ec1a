"""The whole pre-chat flow and the bad-input suite of test_prechat_flow.py, against the real session stores:

- `redis` strategy: sessions in Redis, app data in SQLite;
- `db` strategy on PostgreSQL (sessions and app data);
- `cached` strategy on PostgreSQL;
- `redis` strategy with its app data in PostgreSQL.

One redis-server and one PostgreSQL 15 cluster are started for the whole module (setUpModule) on free ports in
temp dirs; each test class gets its own Redis database number and its own PostgreSQL database, so user ids and
per-user indexes never collide between classes. On top of the reused suites, the classes here check what the
stores hold: `session:<sid>` with a TTL and the per-user set `session:user:<uid>` in Redis, the rows of the
connect-pg-simple `session` table in PostgreSQL, and that logout removes them.

The flow classes of test_prechat_flow.py build their server in setUpClass with `TesseraServer(strategy=...)`;
StoreSetup below swaps that name for the duration of the call so that the suites run unchanged against a server
set up here (see make_server).
"""

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_prechat_flow as flow  # noqa: E402
from tessera_harness import (PostgresServer, RedisClient, RedisServer, ServerTestCase,  # noqa: E402
                             TesseraServer, main)

HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))
NEED_REDIS = "redis-server not installed (scripts/setup.sh installs it)"
NEED_PG = "PostgreSQL 15 not installed (scripts/setup.sh installs it)"

REDIS = None  # RedisServer for the module
PG = None  # PostgresServer for the module
_redis_db = itertools.count(1)  # Redis database numbers handed out to the classes (0 stays unused)


def setUpModule():
    global REDIS, PG
    try:
        if HAVE_REDIS:
            REDIS = RedisServer().start()
        if HAVE_PG:
            PG = PostgresServer().start()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    global REDIS, PG
    for srv in (REDIS, PG):
        if srv is not None:
            srv.cleanup()
    REDIS = PG = None


def sid_of(cookie_value):
    """The session id inside an express-session cookie value (URL-encoded 's:<sid>.<sig>')."""
    raw = urllib.parse.unquote(cookie_value)
    if not raw.startswith("s:") or "." not in raw:
        raise AssertionError(f"cookie not in express-session shape: {cookie_value!r}")
    return raw[2:].rpartition(".")[0]


@contextlib.contextmanager
def server_factory(factory):
    """Makes test_prechat_flow's setUpClass build its server with factory(strategy=...) while the block runs."""
    saved = flow.TesseraServer
    flow.TesseraServer = factory
    try:
        yield
    finally:
        flow.TesseraServer = saved


class StoreSetup:
    """Mixed in before a suite of test_prechat_flow: the suite's server uses the module's Redis and/or a fresh
    PostgreSQL database instead of SQLite only."""

    strategy = None
    redis = False  # sessions in Redis (--redis)
    postgres = False  # DATABASE_URL on PostgreSQL (app data, and the sessions for db/cached)

    @classmethod
    def setUpClass(cls):
        if cls.redis and REDIS is None:
            raise unittest.SkipTest(NEED_REDIS)
        if cls.postgres and PG is None:
            raise unittest.SkipTest(NEED_PG)
        cls.redis_db = next(_redis_db) if cls.redis else None
        cls.pg_db = None
        if cls.postgres:
            cls.pg_db = re.sub(r"[^a-z0-9_]", "_", f"tess_{cls.__name__.lower()}")
            PG.psql(f"DROP DATABASE IF EXISTS {cls.pg_db}")
            PG.psql(f"CREATE DATABASE {cls.pg_db}")
        with server_factory(cls.make_server):
            super().setUpClass()

    @classmethod
    def make_server(cls, strategy):
        extra, database = [], None
        if cls.redis:
            extra += ["--redis", f"{REDIS.url}/{cls.redis_db}"]
        if cls.postgres:
            database = f"postgres://{PG.db_user}@127.0.0.1:{PG.port}/{cls.pg_db}"
        return TesseraServer(strategy=strategy, database=database, extra_args=extra)

    # -- looking into the stores
    def redis_client(self):
        c = RedisClient(REDIS.port)
        self.addCleanup(c.close)
        self.assertEqual(c.command("SELECT", self.redis_db), "OK")
        return c

    def pg_query(self, sql):
        return PG.psql(sql, db=self.pg_db).strip()


class RedisStoreChecks:
    """The connect-redis shape: `session:<sid>` = JSON with cookie + userId, TTL set; `session:user:<uid>` holds
    the sid; logout removes both."""

    def test_20_redis_keys_follow_login_and_logout(self):
        r_cli = self.redis_client()
        b = self.login("alice")
        uid = str(b.get("/api/auth/session").json()["userId"])
        sid = sid_of(b.jar[self.server.cookie_name])
        b2 = self.login("alice")
        sid2 = sid_of(b2.jar[self.server.cookie_name])
        key, idx = f"session:{sid}", f"session:user:{uid}"

        raw = r_cli.command("GET", key)
        self.assertIsNotNone(raw, f"no {key} in Redis after login")
        doc = json.loads(raw)
        self.assertIsInstance(doc.get("cookie"), dict, doc)
        self.assertIn("expires", doc["cookie"], doc)
        self.assertEqual(str(doc.get("userId")), uid, doc)
        ttl = r_cli.command("TTL", key)
        self.assertGreater(ttl, 0, f"TTL of {key}: {ttl} (a session key without expiry)")
        self.assertLessEqual(ttl, 30 * 86400, ttl)
        self.assertEqual(r_cli.command("SISMEMBER", idx, sid), 1, f"{sid} not in {idx}: "
                                                                   f"{r_cli.command('SMEMBERS', idx)}")
        self.assertEqual(r_cli.command("SISMEMBER", idx, sid2), 1)
        self.assertGreater(r_cli.command("TTL", idx), 0, f"{idx} never expires")

        self.assertStatus(b.post("/api/auth/logout"), 204)
        self.assertEqual(r_cli.command("EXISTS", key), 0, f"{key} still in Redis after logout")
        self.assertEqual(r_cli.command("SISMEMBER", idx, sid), 0, f"{sid} still in {idx} after logout")
        # the other session of the same user is untouched, in Redis and over HTTP
        self.assertEqual(r_cli.command("EXISTS", f"session:{sid2}"), 1)
        self.assertEqual(r_cli.command("SISMEMBER", idx, sid2), 1)
        self.assertStatus(b2.get("/api/auth/session"), 200)

    def test_21_session_deleted_in_redis_is_401(self):
        """Redis is the truth: a key deleted behind tessera's back (another app's logout) ends the session."""
        r_cli = self.redis_client()
        b = self.login("bob")
        sid = sid_of(b.jar[self.server.cookie_name])
        self.assertStatus(b.get("/api/auth/session"), 200)
        self.assertEqual(r_cli.command("DEL", f"session:{sid}"), 1)
        self.assertJsonError(b.get("/api/auth/session"), 401)
        self.assertStatus(b.get("/auth"), 401)


class PgSessionChecks:
    """The connect-pg-simple table: a row per session with its expiry; logout deletes it."""

    def session_rows(self, sid):
        return int(self.pg_query(f"SELECT count(*) FROM \"session\" WHERE sid = '{sid}'"))

    def test_20_session_rows_follow_login_and_logout(self):
        b = self.login("alice")
        uid = str(b.get("/api/auth/session").json()["userId"])
        sid = sid_of(b.jar[self.server.cookie_name])
        b2 = self.login("alice")
        sid2 = sid_of(b2.jar[self.server.cookie_name])
        self.assertEqual(self.session_rows(sid), 1, f"no session row for {sid} after login")
        row = self.pg_query(f"SELECT sess::text, expire > now() FROM \"session\" WHERE sid = '{sid}'")
        sess_text, _, live = row.rpartition("|")
        self.assertEqual(live, "t", f"expire not in the future: {row}")
        doc = json.loads(sess_text)
        self.assertIsInstance(doc.get("cookie"), dict, doc)
        self.assertEqual(str(doc.get("userId")), uid, doc)

        self.assertStatus(b.post("/api/auth/logout"), 204)
        self.assertEqual(self.session_rows(sid), 0, f"session row {sid} still there after logout")
        self.assertEqual(self.session_rows(sid2), 1, "logout removed the user's other session")
        self.assertStatus(b2.get("/api/auth/session"), 200)

    def test_21_session_deleted_in_postgres_is_401(self):
        """The table is the truth: a row deleted by another app ends the session (for cached: once the
        near-cache entry is gone, which the cached strategy bounds by CACHE_TTL; so db only)."""
        if self.strategy != "db":
            self.skipTest("the near-cache may keep a deleted row until its TTL")
        b = self.login("bob")
        sid = sid_of(b.jar[self.server.cookie_name])
        self.assertStatus(b.get("/api/auth/session"), 200)
        self.pg_query(f"DELETE FROM \"session\" WHERE sid = '{sid}'")
        self.assertJsonError(b.get("/api/auth/session"), 401)


# -- redis strategy, app data in SQLite
@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class RedisFlow(StoreSetup, RedisStoreChecks, flow.PrechatFlowTests, ServerTestCase):
    strategy, redis = "redis", True


@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class RedisBadInput(StoreSetup, flow.BadInputTests, ServerTestCase):
    strategy, redis = "redis", True


# -- db strategy on PostgreSQL
@unittest.skipUnless(HAVE_PG, NEED_PG)
class PgDbFlow(StoreSetup, PgSessionChecks, flow.PrechatFlowTests, ServerTestCase):
    strategy, postgres = "db", True


@unittest.skipUnless(HAVE_PG, NEED_PG)
class PgDbBadInput(StoreSetup, flow.BadInputTests, ServerTestCase):
    strategy, postgres = "db", True


# -- cached strategy on PostgreSQL
@unittest.skipUnless(HAVE_PG, NEED_PG)
class PgCachedFlow(StoreSetup, PgSessionChecks, flow.PrechatFlowTests, ServerTestCase):
    strategy, postgres = "cached", True


@unittest.skipUnless(HAVE_PG, NEED_PG)
class PgCachedBadInput(StoreSetup, flow.BadInputTests, ServerTestCase):
    strategy, postgres = "cached", True


# -- redis strategy, app data in PostgreSQL
@unittest.skipUnless(HAVE_REDIS and HAVE_PG, f"{NEED_REDIS}; {NEED_PG}")
class RedisPgFlow(StoreSetup, RedisStoreChecks, flow.PrechatFlowTests, ServerTestCase):
    strategy, redis, postgres = "redis", True, True


@unittest.skipUnless(HAVE_REDIS and HAVE_PG, f"{NEED_REDIS}; {NEED_PG}")
class RedisPgBadInput(StoreSetup, flow.BadInputTests, ServerTestCase):
    strategy, redis, postgres = "redis", True, True


if __name__ == "__main__":
    main()

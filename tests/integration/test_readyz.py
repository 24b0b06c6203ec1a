"""GET /readyz against real backends that go away and come back.

Ready means every backend the configuration needs answers: the database (SQLite file or PostgreSQL), Redis
when the strategy keeps sessions (redis) or token revocation (jwt) there, checked on the loop and bounded by
BACKEND_TIMEOUT_MS. The body is JSON and names each backend ("checks"), never a URL or its password. When Redis
only caches (db, cached) an outage of it is "degraded", not "unavailable" (200: requests are still answered
from the database, see test_coherence.py); "coherence" reports the invalidation listener.

Each case: ready (200) -> the backend stops -> 503 naming it, while requests that need it get 503 too ->
the backend comes back -> 200 again within a deadline (waited on, never slept).
"""

import json
import os
import shutil
import signal
import sys
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (HTTP_TIMEOUT, Browser, PostgresServer, RedisServer, ServerTestCase,  # noqa: E402
                             TesseraServer, main, wait_until)

HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))

BACKEND_TIMEOUT_MS = 500
PASSWORD = "ready-pw/s3cret"  # in the Redis URL: must never appear in a reply or the log
BACK_DEADLINE = 10.0  # seconds from the backend answering again to /readyz 200 (reconnects back off <= 500 ms)
DOWN_DEADLINE = 10.0  # seconds from the backend stopping to /readyz 503
# A readiness check is bounded by BACKEND_TIMEOUT_MS: /readyz must answer (not hang) well within this.
READYZ_TIMEOUT = max(HTTP_TIMEOUT, 10.0)


class ReadyzCase(ServerTestCase):
    def setUp(self):
        self.backends = []

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for b in getattr(self, "backends", []):
                sys.stderr.write(f"\n===== log of {type(b).__name__} (port {b.port}) =====\n{b.log_text()}\n")
        return out

    def start_redis(self):
        redis = RedisServer(password=PASSWORD)
        self.addCleanup(redis.cleanup)
        self.backends.append(redis)
        redis.start()
        return redis

    @staticmethod
    def redis_url(redis):
        return f"redis://:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:{redis.port}"

    def serve(self, strategy, redis=None, database=None):
        env = {"BACKEND_TIMEOUT_MS": str(BACKEND_TIMEOUT_MS)}
        if redis is not None:
            env["REDIS_URL"] = self.redis_url(redis)
        srv = self.track(TesseraServer(strategy=strategy, env=env, database=database))
        srv.add_user("rita", "visitor", "rita-pass-1")
        srv.start()
        return srv

    @staticmethod
    def fetch(srv):
        """One GET /readyz: (status, parsed body or None, response)."""
        r = Browser(srv.port).get("/readyz", cookies=False, timeout=READYZ_TIMEOUT)
        try:
            doc = json.loads(r.body.decode())
        except ValueError:
            doc = None
        return r.status, doc, r

    def check_shape(self, r):
        """The JSON shape of a /readyz answer, and no secret or URL in it."""
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json", repr(r))
        text = r.body.decode()
        for secret in (PASSWORD, urllib.parse.quote(PASSWORD, safe=""), "redis://", "postgres://"):
            self.assertNotIn(secret, text, "a password or URL in /readyz")
        doc = json.loads(text)
        self.assertIsInstance(doc.get("checks"), dict, text)
        self.assertIn(doc.get("status"), ("ready", "degraded", "unavailable"), text)
        if r.status == 503:
            self.assertEqual(doc.get("error"), "unavailable", text)
            self.assertIsInstance(doc.get("message"), str, text)
            self.assertEqual(r.header("Retry-After"), "1", repr(r))
        return doc

    def readyz(self, srv):
        st, _, r = self.fetch(srv)
        return st, self.check_shape(r)

    def wait_ready(self, srv, status, what, deadline, cond=None):
        """Polls /readyz until it answers `status` (and cond(body) holds); returns the checked body."""
        got = []

        def check():
            st, doc, r = self.fetch(srv)
            got.append((st, doc))
            return r if st == status and (cond is None or (doc is not None and cond(doc))) else None
        try:
            r = wait_until(check, deadline, what, interval=0.05)
        except Exception:
            self.fail(f"{what}: last answers {got[-3:]}")
        return self.check_shape(r)

    def login(self, srv):
        b = srv.browser("rita")
        self.assertStatus(b.login("rita", "rita-pass-1"), 200, "login")
        self.assertStatus(b.get("/api/auth/session"), 200, "session")
        return b

    def assert_clean_log(self, srv):
        self.assertNotIn(PASSWORD, srv.log_text(), "the Redis password in the server log")
        self.assertNotIn(urllib.parse.quote(PASSWORD, safe=""), srv.log_text(), "the Redis password in the log")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RedisNeeded(ReadyzCase):
    """Strategies that cannot answer without Redis: jwt (revocation) and redis (the sessions)."""

    def outage(self, strategy):
        redis = self.start_redis()
        srv = self.serve(strategy, redis=redis)
        b = self.login(srv)
        doc = self.wait_ready(srv, 200, "ready before the outage", BACK_DEADLINE)
        self.assertEqual(doc["status"], "ready", doc)
        self.assertEqual(doc["checks"].get("redis"), "ok", doc)
        self.assertEqual(doc["checks"].get("database"), "ok", doc)

        redis.stop()
        doc = self.wait_ready(srv, 503, "/readyz 503 with Redis stopped", DOWN_DEADLINE)
        self.assertEqual(doc["checks"].get("redis"), "down", doc)
        self.assertEqual(doc["checks"].get("database"), "ok", doc)
        self.assertIn("redis", doc["message"], doc)
        # The point of readiness: what it says matches what requests get.
        self.assertJsonError(b.get("/api/auth/session"), 503, "a session check while Redis is down")
        st, doc = self.readyz(srv)
        self.assertEqual(st, 503, f"still down: {doc}")

        redis.start()
        doc = self.wait_ready(srv, 200, "/readyz 200 after Redis came back", BACK_DEADLINE)
        self.assertEqual(doc["checks"].get("redis"), "ok", doc)
        if strategy == "jwt":
            self.assertStatus(b.get("/api/auth/session"), 200, "the token works again")
        else:  # no persistence: the session went with Redis's data; never a 200 for it
            self.assertJsonError(b.get("/api/auth/session"), 401, "a session lost with Redis's data")
        self.assert_clean_log(srv)

    def test_jwt_revocation_store_down(self):
        self.outage("jwt")

    def test_redis_session_store_down(self):
        self.outage("redis")

    def test_paused_redis_is_bounded(self):
        """SIGSTOP: no connection closes, the PING times out (BACKEND_TIMEOUT_MS): /readyz answers 503, it does
        not hang; SIGCONT: 200 again."""
        redis = self.start_redis()
        self.addCleanup(lambda: redis.proc.poll() is None and redis.proc.send_signal(signal.SIGCONT))
        srv = self.serve("jwt", redis=redis)
        self.wait_ready(srv, 200, "ready before the pause", BACK_DEADLINE)
        redis.proc.send_signal(signal.SIGSTOP)
        doc = self.wait_ready(srv, 503, "/readyz 503 with Redis paused", DOWN_DEADLINE)
        self.assertEqual(doc["checks"].get("redis"), "down", doc)
        redis.proc.send_signal(signal.SIGCONT)
        self.wait_ready(srv, 200, "/readyz 200 after SIGCONT", BACK_DEADLINE)


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RedisCaches(ReadyzCase):
    """cached with Redis: Redis is the L2 copy and the coherence channel, not the truth. Its outage is
    'degraded' (200, checks name redis and coherence down): requests are still answered from the database."""

    def test_cached_redis_down_is_degraded(self):
        redis = self.start_redis()
        srv = self.serve("cached", redis=redis)
        b = self.login(srv)
        doc = self.wait_ready(srv, 200, "ready", BACK_DEADLINE)
        self.wait_ready(srv, 200, "the coherence listener up", BACK_DEADLINE,
                        lambda d: d["checks"].get("coherence") == "ok")

        redis.stop()
        doc = self.wait_ready(srv, 200, "redis down, degraded", DOWN_DEADLINE,
                              lambda d: d["checks"].get("redis") == "down")
        self.assertEqual(doc["status"], "degraded", doc)
        self.assertEqual(doc["checks"].get("database"), "ok", doc)
        self.assertStatus(b.get("/api/auth/session"), 200, "cached answers from the database without Redis")

        redis.start()

        self.wait_ready(srv, 200, "ready (redis and coherence ok) after Redis came back", BACK_DEADLINE,
                        lambda d: d == {"status": "ready",
                                        "checks": {"database": "ok", "redis": "ok", "coherence": "ok"}})
        self.assert_clean_log(srv)


@unittest.skipUnless(HAVE_PG, "PostgreSQL not installed")
class PostgresNeeded(ReadyzCase):
    def test_postgres_stopped_and_restarted(self):
        pg = PostgresServer()
        self.addCleanup(pg.cleanup)
        self.backends.append(pg)
        pg.start()
        srv = self.serve("db", database=pg.url)
        b = self.login(srv)
        doc = self.wait_ready(srv, 200, "ready", BACK_DEADLINE)
        self.assertEqual(doc, {"status": "ready", "checks": {"database": "ok"}})

        pg.stop()
        doc = self.wait_ready(srv, 503, "/readyz 503 with PostgreSQL stopped", DOWN_DEADLINE)
        self.assertEqual(doc["checks"], {"database": "down"}, doc)
        self.assertIn("database", doc["message"], doc)
        self.assertJsonError(b.get("/api/auth/session"), 503, "a session check while PostgreSQL is down")

        pg.start()
        self.wait_ready(srv, 200, "/readyz 200 after PostgreSQL came back", BACK_DEADLINE)
        # Each loop reconnects on its own (backoff <= 500 ms): the loop that answers /readyz may be back before
        # the one that serves the next request, so the session is waited on, within the same deadline.
        last = []
        wait_until(lambda: last.append(b.get("/api/auth/session")) or last[-1].status != 503, BACK_DEADLINE,
                   "a session check answered after PostgreSQL came back")
        self.assertStatus(last[-1], 200, "the session is still there")


class SqliteOnly(ReadyzCase):
    def test_sqlite_ready(self):
        srv = self.serve("db")
        st, doc = self.readyz(srv)
        self.assertEqual((st, doc), (200, {"status": "ready", "checks": {"database": "ok"}}))


if __name__ == "__main__":
    main()

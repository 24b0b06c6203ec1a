"""Logout, "log out everywhere" and `tessera session revoke` seen by a second instance within 1 s, for every
strategy (issue 4).

Each class starts its own redis-server and two `tessera serve` processes A and B with --redis on one database
(a shared SQLite file; PostgreSQL for CachedPostgres). The caches are warm before every change: the session has
been answered on both instances (for cached: a near-cache hit on each, and a copy in Redis (L2); for jwt: a
revocation-cache hit on B). Then:

- test_1: POST /api/auth/logout on A -> the old cookie is 401 on B (and A) within 1 s of the 204, never 200
  again; the user's other session is untouched. jwt: the token's jti is on the deny list until its exp plus the
  verification leeway (JWT_LEEWAY, default 30 s) and a second: as long as the token could still be accepted.
- test_2: POST /api/auth/logout?everywhere=1 on A with one of two sessions of a user (one used on A, one on
  B) -> both 401 on both instances within 1 s; another user is untouched; a new login works (jwt: a token issued
  in a later second than the cut-off).
- test_3: `tessera session revoke --user NAME --database URL --redis URL` -> the same, measured from the
  command's exit; an unknown user is a one-line error and a non-zero exit. The subcommand is required:
  `session revoke --help` must exit 0 with its usage, or the test fails (it is never skipped).

See test_coherence.py for the shared helpers (Cluster, watch).
"""

import base64
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_coherence as coh  # noqa: E402
from tessera_harness import Browser, main, tessera_bin, wait_until  # noqa: E402


def tearDownModule():
    coh.stop_postgres()


def jwt_claims(cookie_header):
    token = cookie_header.partition("=")[2]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class RevocationTests:
    """Mixed into a ClusterCase per strategy."""

    strategy = None
    postgres_db = False

    @classmethod
    def setUpClass(cls):
        cls.c = cls.class_cluster(cls.strategy, postgres_db=cls.postgres_db)

    @classmethod
    def tearDownClass(cls):
        cls.finish_class_clusters()

    def setUp(self):
        self.assertTrue(self.c.a.alive() and self.c.b.alive(), "a server died in an earlier test")

    # -- warm caches
    def warm(self, server, cookie):
        """Answers the session on `server` until it comes from that server's caches where it has any."""
        if self.strategy == "cached":
            self.warm_l1(server, cookie)
        elif self.strategy == "jwt":
            def hit():
                before = coh.metric(server, "tessera_revocation_cache_hits_total")
                self.session_ok(server, cookie, what="warm-up")
                return coh.metric(server, "tessera_revocation_cache_hits_total") > before
            wait_until(hit, 5, f"a revocation-cache hit on port {server.port}")
        else:
            for _ in range(3):
                self.session_ok(server, cookie, what="warm-up")

    def warm_everywhere(self, *cookies):
        for ck in cookies:
            for srv in (self.c.a, self.c.b):
                self.warm(srv, ck)
            if self.strategy == "cached":
                key = f"tessera:l2:{coh.sid_of(ck)}"
                wait_until(lambda key=key: (self.c.redis_cmd("GET", key) or b"!")[:1].isdigit(), 2,
                           f"an L2 copy in {key}")
            elif self.strategy == "redis":
                self.assertEqual(self.c.redis_cmd("EXISTS", f"session:{coh.sid_of(ck)}"), 1)

    def targets(self, **cookies):
        return [(f"{name}@{tag}", srv, ck) for name, ck in cookies.items()
                for tag, srv in (("A", self.c.a), ("B", self.c.b))]

    def wait_next_second(self, t_wall):
        """Waits (by condition) until the wall clock is in a later second than t_wall."""
        wait_until(lambda: int(time.time()) > int(t_wall), 2.5, "the next second")

    # -- tests
    def test_1_logout_seen_on_b_within_1s(self):
        a, b = self.c.a, self.c.b
        s1, doc = self.login(a, "alice")
        s2, _ = self.login(b, "alice")  # another session of the same user, on B
        self.warm_everywhere(s1, s2)
        r = Browser(a.port).post("/api/auth/logout", cookies=s1)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout on A")
        self.watch_logged_out([("s1@B", b, s1), ("s1@A", a, s1)], t_ack)
        for srv in (a, b):
            self.session_ok(srv, s2, doc["userId"], "the user's other session")
        if self.strategy == "jwt":
            jti, exp = jwt_claims(s1)["jti"], jwt_claims(s1)["exp"]
            key = f"tessera:deny:{jti}"
            self.assertEqual(self.c.redis_cmd("EXISTS", key), 1, f"{key} not on the deny list")
            pttl = self.c.redis_cmd("PTTL", key)
            accepted_for = (exp + 30) * 1000 - time.time() * 1000  # verification accepts until exp + leeway
            self.assertGreater(pttl, 0, f"{key} never expires")
            self.assertGreaterEqual(pttl, accepted_for - 1000, f"{key} PTTL {pttl} ms, token accepted {accepted_for:.0f} ms")
            self.assertLess(pttl - accepted_for, 10000, f"{key} PTTL {pttl} ms, token accepted {accepted_for:.0f} ms")

    def test_2_logout_everywhere_seen_on_both_within_1s(self):
        a, b = self.c.a, self.c.b
        s1, doc = self.login(a, "bob")
        s2, _ = self.login(b, "bob")
        other, other_doc = self.login(a, "dave")
        self.warm_everywhere(s1, s2, other)
        r = Browser(a.port).post("/api/auth/logout?everywhere=1", cookies=s1)
        t_ack, t_wall = time.monotonic(), time.time()
        self.assertStatus(r, 204, "logout everywhere on A")
        self.watch_logged_out(self.targets(s1=s1, s2=s2), t_ack)
        for srv in (a, b):
            self.session_ok(srv, other, other_doc["userId"], "another user's session")
        cut = self.c.redis_cmd("GET", f"tessera:nbf:{doc['userId']}")
        self.assertIsNotNone(cut, "no per-user cut-off in Redis")
        self.assertLessEqual(int(cut) / 1000, t_wall + 1, cut)
        if self.strategy == "jwt":
            self.wait_next_second(int(cut) / 1000)
        s3, _ = self.login(b, "bob")
        for srv in (a, b):
            self.session_ok(srv, s3, doc["userId"], "a new login after logging out everywhere")
            self.session_401(srv, s1)
            self.session_401(srv, s2)

    def test_3_cli_session_revoke(self):
        a, b = self.c.a, self.c.b
        r = subprocess.run([tessera_bin(), "session", "revoke", "--help"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, f"`tessera session revoke --help`: {r.stdout!r} {r.stderr!r}")
        self.assertIn(b"usage: tessera session revoke", r.stdout, "no usage text from session revoke --help")
        s1, doc = self.login(a, "erin")
        s2, _ = self.login(b, "erin")
        other, other_doc = self.login(b, "frank")
        self.warm_everywhere(s1, s2, other)
        r = a.run_cli("session", "revoke", "--user", "erin", "--database", self.c.database, "--redis",
                      self.c.redis.url)
        t_ack, t_wall = time.monotonic(), time.time()
        self.assertEqual(r.returncode, 0, f"session revoke: {r.stdout!r} {r.stderr!r}")
        self.watch_logged_out(self.targets(s1=s1, s2=s2), t_ack)
        for srv in (a, b):
            self.session_ok(srv, other, other_doc["userId"], "another user's session")
        if self.strategy == "jwt":
            self.wait_next_second(t_wall)
        s3, _ = self.login(a, "erin")
        for srv in (a, b):
            self.session_ok(srv, s3, doc["userId"], "a new login after the revocation")
        # unknown user: one line on stderr, non-zero exit, nothing revoked
        r = a.run_cli("session", "revoke", "--user", "nobody-here", "--database", self.c.database, "--redis",
                      self.c.redis.url)
        self.assertNotEqual(r.returncode, 0, f"unknown user accepted: {r.stdout!r} {r.stderr!r}")
        err = r.stderr.decode(errors="replace").strip()
        self.assertTrue(err, "no error message")
        self.assertEqual(len(err.splitlines()), 1, f"not a one-line error: {err!r}")
        self.session_ok(b, s3, doc["userId"], "after a failed revoke of another name")


@unittest.skipUnless(coh.HAVE_REDIS, coh.NEED_REDIS)
class DbRevocation(RevocationTests, coh.ClusterCase):
    strategy = "db"


@unittest.skipUnless(coh.HAVE_REDIS, coh.NEED_REDIS)
class RedisRevocation(RevocationTests, coh.ClusterCase):
    strategy = "redis"


@unittest.skipUnless(coh.HAVE_REDIS, coh.NEED_REDIS)
class JwtRevocation(RevocationTests, coh.ClusterCase):
    strategy = "jwt"


@unittest.skipUnless(coh.HAVE_REDIS, coh.NEED_REDIS)
class CachedRevocation(RevocationTests, coh.ClusterCase):
    strategy = "cached"


@unittest.skipUnless(coh.HAVE_REDIS and coh.HAVE_PG, f"{coh.NEED_REDIS}; {coh.NEED_PG}")
class CachedPostgresRevocation(RevocationTests, coh.ClusterCase):
    strategy, postgres_db = "cached", True


if __name__ == "__main__":
    main()

"""JWT revocation everywhere, with the note's own token (the real npm jsonwebtoken signs every token here).

The token: jwt.sign({ userId }, NEXTAUTH_SECRET, { expiresIn: '30d' }) in cookie `session-token`: no jti, no
role. tessera is given NEXTAUTH_SECRET only (no SESSION_SECRET). For each deployment, two `tessera serve --strategy
jwt` instances A and B share one database:

- SqlitePair: one SQLite file, no Redis (revocation in the file's table, each instance's mirror following it);
- PostgresPair: one PostgreSQL database, no Redis (LISTEN/NOTIFY);
- RedisPair: Redis (the deny list and cut-offs as Redis keys), one SQLite file.

Each checks:
- test_1: the note's token is accepted on both (with REDIS_URL too), its role read from the users table;
- test_2: POST /api/auth/logout on A -> 401 on B (and A) within 1 s of the 204, never 200 again; another token
  of the same user still works;
- test_3: POST /api/auth/logout?everywhere=1 on B -> every token of the user issued so far 401 on A and B
  within 1 s; a token issued in a later second works;
- test_4: a revoked short-lived token stays refused through the leeway (JWT_LEEWAY=3): after its exp, until
  exp + leeway, an unrevoked twin is still accepted and the revoked one never is.
- test_5: a role change in the users table (plain SQL, as another app would write it) is seen within 1 s on both
  instances (without Redis: the table's trigger publishes the change event);
- test_9: a logout on A ends the token's event stream on B within 1 s.
SqlitePair also: `tessera session revoke` without Redis; JWT_USER_CLAIM=sub / JWT_ROLE_CLAIM. PostgresPair also:
the LISTEN connections killed while a logout happens (503 meanwhile, the table reloaded on reconnect). RedisPair
also: the deny key's TTL covers the leeway.

Needs node + npm: setUpModule installs tests/interop's packages (npm ci, pinned by its lockfile) when they are
missing, and skips the module with the reason when that is impossible.
"""

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_coherence as coh  # noqa: E402
from test_push import EventStream  # noqa: E402
from tessera_harness import Browser, RedisServer, TesseraServer, b64url, main, wait_until  # noqa: E402

INTEROP_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
NEXTAUTH_SECRET = "nextauth-secret-for-the-jwt-revocation-test"
LEEWAY = 3
USERS = {"alice": ("visitor", "alice-pass-1"), "bob": ("visitor", "bob-pass-1"), "carol": ("agent", "carol-pass-1")}
NODE = None

SIGN_JS = r"""
const jwt = require('jsonwebtoken');
const out = [];
for (const [payload, opts] of JSON.parse(process.argv[1])) out.push(jwt.sign(payload, process.argv[2], opts));
process.stdout.write(JSON.stringify(out));
"""


def _node_env():
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    return env


def _have_jsonwebtoken():
    r = subprocess.run([NODE, "-e", "require.resolve('jsonwebtoken')"], cwd=INTEROP_DIR, capture_output=True,
                       env=_node_env(), timeout=60)
    return r.returncode == 0


def setUpModule():
    global NODE
    NODE, npm = shutil.which("node"), shutil.which("npm")
    if not NODE or not npm:
        raise unittest.SkipTest("node/npm not installed: the jsonwebtoken tests need them")
    if not _have_jsonwebtoken():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR, capture_output=True,
                           env=_node_env(), timeout=600)
        if r.returncode != 0 or not _have_jsonwebtoken():
            raise unittest.SkipTest(f"npm ci in tests/interop failed ({r.returncode}): "
                                    f"{(r.stdout + r.stderr).decode(errors='replace')[-600:]}")


def tearDownModule():
    coh.stop_postgres()


def sign(*items, secret=NEXTAUTH_SECRET):
    """items: (payload, options) pairs -> tokens, from the real jsonwebtoken."""
    r = subprocess.run([NODE, "-e", SIGN_JS, json.dumps(items), secret], cwd=INTEROP_DIR, capture_output=True,
                       env=_node_env(), timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"jsonwebtoken failed: {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def note_token(user_id, **payload):
    """The note's token: jwt.sign({ userId }, NEXTAUTH_SECRET, { expiresIn: '30d' })."""
    return sign(({"userId": user_id, **payload}, {"expiresIn": "30d"}))[0]


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def cookie(token):
    return f"session-token={token}"


def get_session(server, token):
    return Browser(server.port).get("/api/auth/session", cookies=cookie(token))


class Pair:
    """Servers A and B (strategy jwt, NEXTAUTH_SECRET) on one database, with or without Redis."""

    def __init__(self, database=None, redis=None, env=None, database_b=None):
        self.tmpdir = tempfile.mkdtemp(prefix="tessera-jwtrev-")
        self.database = database or f"sqlite:{os.path.join(self.tmpdir, 'shared.db')}"
        self.database_b = database_b or self.database  # the same database, e.g. under another application_name
        self.redis = redis
        self.env = {"NEXTAUTH_SECRET": NEXTAUTH_SECRET, "JWT_LEEWAY": str(LEEWAY)}
        self.env.update(env or {})
        self.servers = []

    @property
    def sqlite_path(self):
        return self.database[len("sqlite:"):] if self.database.startswith("sqlite:") else None

    def new_server(self, env=None, database=None):
        e = dict(self.env)
        e.update(env or {})
        extra = ["--redis", self.redis.url] if self.redis is not None else []
        srv = TesseraServer(strategy="jwt", secret=None, env=e, database=database or self.database, extra_args=extra)
        self.servers.append(srv)
        return srv

    def start(self, track):
        self.a = track(self.new_server())
        self.b = track(self.new_server(database=self.database_b))
        for name, (role, password) in USERS.items():
            self.a.add_user(name, role, password)
        self.a.start()
        self.b.start()
        if self.redis is not None:
            coh.Cluster.wait_coherent(self.a, self.b)
        return self

    def user_id(self, name):
        """The user's id, from a password login (the one way the API tells it)."""
        r = self.a.browser(name).login(name, USERS[name][1])
        assert r.status == 200, r
        return int(r.json()["userId"])

    def finish(self):
        problems = []
        for s in self.servers:
            try:
                s.finish()
            except Exception as exc:  # noqa: BLE001 - every server is finished, then the first problem raised
                problems.append(str(exc))
        if not os.environ.get("TESS_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems))


class JwtRevocationTests:
    """Mixed into a ClusterCase per deployment."""

    @classmethod
    def make_pair(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.backends = []
        cls.pair = cls.make_pair()
        try:
            cls.pair.start(cls.track_class)
        except Exception:
            cls.tearDownClass()
            raise
        cls.ids = {name: cls.pair.user_id(name) for name in USERS}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.pair.finish()
        finally:
            for b in cls.backends:
                b()

    def setUp(self):
        self.assertTrue(self.pair.a.alive() and self.pair.b.alive(), "a server died in an earlier test")

    def session_ok(self, server, token, what=""):
        r = get_session(server, token)
        self.assertStatus(r, 200, f"{what} on port {server.port}")
        return r.json()

    def test_1_note_token_accepted_role_from_users_table(self):
        for name in ("alice", "carol"):
            token = note_token(self.ids[name])
            self.assertEqual(len(token.split(".")), 3, token)
            header, payload = (b64json(p) for p in token.split(".")[:2])
            self.assertEqual(header, {"alg": "HS256", "typ": "JWT"})
            self.assertEqual(sorted(payload), ["exp", "iat", "userId"], "the note's token: no jti, no role")
            for srv in (self.pair.a, self.pair.b):
                body = self.session_ok(srv, token, f"{name}'s note token")
                self.assertEqual(body["userId"], str(self.ids[name]))
                self.assertEqual(body["role"], USERS[name][0], "the role comes from the users table")
        # a role claim, when there is one, is taken as it is
        token = sign(({"userId": self.ids["alice"], "role": "agent"}, {"expiresIn": "1h"}))[0]
        self.assertEqual(self.session_ok(self.pair.b, token)["role"], "agent")
        # a token signed with another secret is still refused
        forged = sign(({"userId": self.ids["alice"]}, {"expiresIn": "30d"}), secret="not-the-secret")[0]
        self.assertJsonError(get_session(self.pair.a, forged), 401)

    def test_2_logout_on_a_refused_on_b_within_1s(self):
        uid = self.ids["bob"]
        token, other = sign(({"userId": uid}, {"expiresIn": "30d"}), ({"userId": uid, "n": 2}, {"expiresIn": "30d"}))
        for srv in (self.pair.a, self.pair.b):
            self.session_ok(srv, token, "before logout")
            self.session_ok(srv, other, "before logout")
        r = Browser(self.pair.a.port).post("/api/auth/logout", cookies=cookie(token))
        self.assertStatus(r, 204)
        t_ack = time.monotonic()
        self.watch_logged_out([("B", self.pair.b, cookie(token)), ("A", self.pair.a, cookie(token))], t_ack)
        for srv in (self.pair.a, self.pair.b):
            self.session_ok(srv, other, "the user's other token")

    def test_3_everywhere_on_b_refuses_every_earlier_token_within_1s(self):
        uid = self.ids["carol"]
        now = int(time.time())
        old, older = sign(({"userId": uid}, {"expiresIn": "30d"}),
                          ({"userId": uid, "iat": now - 3600}, {"expiresIn": "30d"}))
        bystander = note_token(self.ids["alice"])
        for srv in (self.pair.a, self.pair.b):
            self.session_ok(srv, old)
            self.session_ok(srv, older)
        r = Browser(self.pair.b.port).post("/api/auth/logout?everywhere=1", cookies=cookie(old))
        self.assertStatus(r, 204)
        t_ack = time.monotonic()
        cut_s = int(time.time())
        self.watch_logged_out([("A old", self.pair.a, cookie(old)), ("A older", self.pair.a, cookie(older)),
                               ("B older", self.pair.b, cookie(older))], t_ack)
        self.session_ok(self.pair.a, bystander, "another user")
        # a token issued in a later second than the cut-off is accepted (iat within the leeway)
        fresh = sign(({"userId": uid, "iat": cut_s + 1}, {"expiresIn": "30d"}))[0]
        for srv in (self.pair.a, self.pair.b):
            self.session_ok(srv, fresh, "a token issued after the cut-off")

    def test_4_revoked_token_stays_refused_through_the_leeway(self):
        uid = self.ids["alice"]
        revoked, twin = sign(({"userId": uid, "n": "r"}, {"expiresIn": 2}), ({"userId": uid, "n": "t"}, {"expiresIn": 2}))
        exp = b64json(revoked.split(".")[1])["exp"]
        self.session_ok(self.pair.a, revoked)
        self.assertStatus(Browser(self.pair.a.port).post("/api/auth/logout", cookies=cookie(revoked)), 204)
        wait_until(lambda: get_session(self.pair.b, revoked).status == 401, 2.0, "the logout reaching B")
        # From exp until exp + leeway the twin is still accepted: the revoked token must not be.
        wait_until(lambda: time.time() >= exp + 0.2, exp + 5 - time.time(), "the tokens' exp")
        samples = 0
        while time.time() < exp + LEEWAY - 0.3:
            for srv in (self.pair.a, self.pair.b):
                r_twin = get_session(srv, twin)
                r_rev = get_session(srv, revoked)
                if time.time() < exp + LEEWAY - 0.3:
                    self.assertStatus(r_twin, 200, f"the unrevoked twin inside the leeway ({time.time() - exp:.2f}s)")
                    samples += 1
                self.assertJsonError(r_rev, 401, f"revoked token {time.time() - exp:.2f}s after its exp")
            time.sleep(0.05)
        self.assertGreater(samples, 5)
        wait_until(lambda: get_session(self.pair.a, twin).status == 401, LEEWAY + 2, "the twin's end")


    def test_5_role_change_seen_within_1s(self):
        uid = self.ids["bob"]
        token = note_token(uid)
        for srv in (self.pair.a, self.pair.b):
            self.assertEqual(self.session_ok(srv, token)["role"], "visitor")
        self.set_role(uid, "agent")  # another app writing the table
        t_ack = time.monotonic()

        def classify(lbl, r):
            self.assertStatus(r, 200, lbl)
            return "new" if r.json()["role"] == "agent" else "old"
        self.watch([(lbl, (lambda s=srv: get_session(s, token))) for lbl, srv in (("A", self.pair.a),
                                                                                 ("B", self.pair.b))],
                   t_ack, classify)
        self.set_role(uid, "visitor")
        wait_until(lambda: get_session(self.pair.a, token).json()["role"] == "visitor", 2.0, "the role back")

    def test_9_logout_ends_a_stream_on_the_other_instance(self):
        uid = self.ids["alice"]
        token = sign(({"userId": uid, "n": "stream"}, {"expiresIn": "1h"}))[0]
        r = Browser(self.pair.a.port).post("/api/prechats", {"topic": "streamed"}, cookies=cookie(token))
        self.assertStatus(r, 201, "a pre-chat of the token's user")
        pid = r.json()["id"]
        s = EventStream(self.pair.b.port, f"/api/prechats/{pid}/events", cookie(token))
        self.addCleanup(s.close)
        s.wait(lambda x: x.status is not None, 5, "the stream's status line")
        self.assertEqual(s.status, 200, s.body[:300])
        s.wait(lambda x: len(x.events("meta")) >= 1, 5, "the first meta event")
        self.assertStatus(Browser(self.pair.a.port).post("/api/auth/logout", cookies=cookie(token)), 204)
        t_ack = time.monotonic()
        s.wait_end(3, "the stream of the logged-out token on B")
        self.assertLessEqual(s.t_end - t_ack, 1.0, "the stream ended more than 1 s after the logout")


class SqlitePair(JwtRevocationTests, coh.ClusterCase):
    @classmethod
    def make_pair(cls):
        return Pair()

    def set_role(self, uid, role):
        with sqlite3.connect(self.pair.sqlite_path, timeout=5) as db:
            db.execute("UPDATE app_user SET role = ? WHERE id = ?", (role, uid))

    def test_8_session_revoke_cli_without_redis(self):
        uid = self.ids["bob"]
        token = sign(({"userId": uid, "iat": int(time.time()) - 5}, {"expiresIn": "30d"}))[0]
        for srv in (self.pair.a, self.pair.b):
            self.session_ok(srv, token)
        r = self.pair.a.run_cli("session", "revoke", "--user", "bob", "--database", self.pair.database)
        t_ack = time.monotonic()
        self.assertEqual(r.returncode, 0, r)
        self.watch_logged_out([("A", self.pair.a, cookie(token)), ("B", self.pair.b, cookie(token))], t_ack)

    def test_6_claim_names(self):
        srv = self.track(TesseraServer(strategy="jwt", secret=None, database=self.pair.database,
                                       env={"NEXTAUTH_SECRET": NEXTAUTH_SECRET, "JWT_USER_CLAIM": "sub",
                                            "JWT_ROLE_CLAIM": "https://example.com/role"}))
        srv.start()
        token = sign(({"https://example.com/role": "agent"}, {"expiresIn": "1h", "subject": str(self.ids["alice"])}))[0]
        body = self.session_ok(srv, token, "sub + a namespaced role claim")
        self.assertEqual((body["userId"], body["role"]), (str(self.ids["alice"]), "agent"))
        self.assertJsonError(get_session(srv, note_token(self.ids["alice"])), 401, "userId is not the user claim here")
        # logout of such a token reaches the other instances too (same table)
        self.assertStatus(Browser(srv.port).post("/api/auth/logout", cookies=cookie(token)), 204)
        self.assertJsonError(get_session(srv, token), 401)
        srv.finish()
        bad = TesseraServer(strategy="jwt", secret=None, env={"NEXTAUTH_SECRET": NEXTAUTH_SECRET,
                                                              "JWT_USER_CLAIM": "exp"})
        try:
            r = bad.run_cli("serve", "--listen", "127.0.0.1:1", "--database", bad.database)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(b"JWT_USER_CLAIM", r.stderr)
            self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        finally:
            bad.cleanup()


@unittest.skipUnless(coh.HAVE_PG, coh.NEED_PG)
class PostgresPair(JwtRevocationTests, coh.ClusterCase):
    @classmethod
    def make_pair(cls):
        pg = coh.postgres()
        name = f"tess_jwtrev_{os.getpid()}"
        pg.psql(f"DROP DATABASE IF EXISTS {name}")
        pg.psql(f"CREATE DATABASE {name}")
        cls.backends.append(lambda: pg.psql(f"DROP DATABASE IF EXISTS {name}"))
        cls.pg, cls.pg_name = pg, name
        url = f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{name}"
        return Pair(database=f"{url}?application_name=tessera_a", database_b=f"{url}?application_name=tessera_b")

    def set_role(self, uid, role):
        self.pg.psql(f"UPDATE app_user SET role = '{role}' WHERE id = {int(uid)}", db=self.pg_name)

    def test_8_listen_connection_lost(self):
        """A's LISTEN connection is killed and a logout happens on B meanwhile: A's mirror reloads on reconnect;
        the revoked token is refused on A (401, or 503 while its mirror is not current) within 1 s, never 200
        again."""
        uid = self.ids["alice"]
        token, other = sign(({"userId": uid, "n": "pg1"}, {"expiresIn": "1h"}),
                            ({"userId": uid, "n": "pg2"}, {"expiresIn": "1h"}))
        self.session_ok(self.pair.a, token)
        killed = self.pg.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'tessera_a' AND (query LIKE 'LISTEN tessera_revocation%'"
            " OR query LIKE 'SELECT 1 AS tessera_revocation_heartbeat%'"
            " OR query LIKE 'SELECT kind, key, value, expires_ms FROM tess_revocation%')", db=self.pg_name)
        self.assertEqual(killed.strip(), "1", "A's one LISTEN connection")
        self.assertStatus(Browser(self.pair.b.port).post("/api/auth/logout", cookies=cookie(token)), 204)
        t_ack = time.monotonic()

        def classify(lbl, r):
            if r.status == 200:
                return "old"
            if r.status in (401, 503):
                return "new"
            self.fail(f"{lbl}: unexpected {r!r}")
        self.watch([("A", lambda: get_session(self.pair.a, token))], t_ack, classify)
        # both come back: the other token is accepted again, the revoked one stays refused
        wait_until(lambda: get_session(self.pair.a, other).status == 200, 10, "A's mirror current again")
        self.assertJsonError(get_session(self.pair.a, token), 401)
        self.assertStatus(Browser(self.pair.a.port).get("/readyz"), 200)


@unittest.skipUnless(coh.HAVE_REDIS, coh.NEED_REDIS)
class RedisPair(JwtRevocationTests, coh.ClusterCase):
    @classmethod
    def make_pair(cls):
        redis = RedisServer().start()
        cls.backends.append(redis.cleanup)
        cls.redis = redis
        return Pair(redis=redis)

    def set_role(self, uid, role):
        self.skipTest("with Redis, a write to the users table by another app is not heard: the cache's TTL bounds it")

    def test_7_deny_key_outlives_acceptance(self):
        token = sign(({"userId": self.ids["bob"], "n": "ttl"}, {"expiresIn": 60}))[0]
        exp = b64json(token.split(".")[1])["exp"]
        self.assertStatus(Browser(self.pair.a.port).post("/api/auth/logout", cookies=cookie(token)), 204)
        # a token without a jti is denied by the digest of the whole token
        key = "tessera:deny:sha256:" + b64url(hashlib.sha256(token.encode()).digest())
        with self.redis.client() as c:
            pttl = int(c.command("PTTL", key))
        self.assertGreater(pttl, 0, f"no deny key {key}")
        self.assertGreaterEqual(time.time() + pttl / 1000, exp + LEEWAY, "the deny key must live until exp + leeway")


if __name__ == "__main__":
    main()

"""
Interop with a real Express app: tessera and tests/interop/express_app.js (express + express-session with
connect-redis v7 / redis v4, or connect-pg-simple / pg, the REAL npm packages) share one store and one
SESSION_SECRET list, and each accepts the other's `connect.sid` sessions:

  a) Express -> tessera: an Express login is a tessera session (/api/auth/session, /auth); tessera reading it
     leaves the stored document intact, so Express still reads its app fields (cart) afterwards;
  b) tessera -> Express: a tessera login is an Express session (GET /me), and an app field Express adds to it
     survives a tessera touch;
  c) logging out on either side ends the session on the other;
  d) rotation: Express signing with the old secret only, tessera configured "new,old";
  e) a cookie signed with a secret tessera does not know is refused even though its session is in the store.

Once per store: Redis (`--strategy redis`, same SESSION_PREFIX) and PostgreSQL (`--strategy db`, connect-pg-simple's
`session` table in the same database). Needs node + npm: setUpModule installs tests/interop's packages when
node_modules lacks them (`npm ci`), and skips the module with the reason when that is impossible.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (START_TIMEOUT, STOP_TIMEOUT, Browser, HarnessError, PostgresServer,  # noqa: E402
                             RedisClient, RedisServer, ServerTestCase, TesseraServer, _die_with_parent,
                             _stop_process, free_port, wait_until)

INTEROP_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
APP = os.path.join(INTEROP_DIR, "express_app.js")
PACKAGES = ("express", "express-session", "connect-redis", "redis", "connect-pg-simple", "pg")

NEW, OLD, STRANGER = "interop-new-secret", "interop-old-secret", "a-secret-tessera-never-saw"
TESSERA_SECRETS = f"{NEW},{OLD}"
PREFIX = "session:"

REDIS = None
PG = None


def _node_env():
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    return env


def _packages_present(node):
    probe = ";".join(f"require.resolve({json.dumps(p)})" for p in PACKAGES)
    r = subprocess.run([node, "-e", probe], cwd=INTEROP_DIR, capture_output=True, env=_node_env(), timeout=60)
    return r.returncode == 0


def setUpModule():
    global REDIS, PG
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise unittest.SkipTest("node/npm not installed: the Express interop test needs them")
    if not _packages_present(node):
        try:
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR, capture_output=True,
                               env=_node_env(), timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise unittest.SkipTest(f"npm ci in tests/interop failed: {exc!r}")
        if r.returncode != 0 or not _packages_present(node):
            tail = (r.stdout + r.stderr).decode(errors="replace")[-600:]
            raise unittest.SkipTest(f"npm ci in tests/interop failed ({r.returncode}): {tail}")
    if shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server"):
        REDIS = RedisServer().start()
    if os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres")):
        PG = PostgresServer()
        try:
            PG.start()
        except Exception:
            PG.cleanup()
            PG = None
            raise


def tearDownModule():
    for srv in (REDIS, PG):
        if srv is not None:
            srv.cleanup()


class ExpressApp:
    """One `node express_app.js` process; start() waits for GET /healthz; stop() is SIGTERM and expects exit 0."""

    def __init__(self, name, env):
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix=f"express-{name}-")
        self.log_path = os.path.join(self.tmpdir, "express.log")
        self.env = _node_env()
        self.env.update(env)
        self.port = None
        self.proc = None

    def start(self):
        self.port = free_port()
        self.env["PORT"] = str(self.port)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([shutil.which("node"), APP], cwd=INTEROP_DIR, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)

        def up():
            if self.proc.poll() is not None:
                raise HarnessError(f"express app {self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
            return Browser(self.port).get("/healthz", timeout=2).status == 200

        try:
            wait_until(up, START_TIMEOUT, f"express app {self.name} /healthz on port {self.port}")
        except HarnessError as exc:
            self.stop()
            raise HarnessError(f"{exc}\n--- express log ---\n{self.log_text()}") from None
        return self

    def browser(self):
        return Browser(self.port, name=f"express-{self.name}")

    def stop(self):
        """Returns a problem description, or None when it exited 0 within the deadline."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            return None if rc in (None, 0) else f"express app {self.name} had exited with {rc}"
        rc, exited = _stop_process(self.proc, signal.SIGTERM, STOP_TIMEOUT)
        if not exited:
            return f"express app {self.name} still running {STOP_TIMEOUT:.0f}s after SIGTERM (killed)"
        if rc != 0:
            return f"express app {self.name} exited with {rc} on SIGTERM:\n{self.log_text()}"
        return None

    def cleanup(self):
        problem = self.stop()
        if not os.environ.get("TESS_KEEP_TMP"):
            self._saved = self.log_text()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return problem

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-10000:].decode(errors="replace")
        except OSError:
            return getattr(self, "_saved", "")


def sid_of(cookie_value):
    """The session id in a connect.sid value: decodeURIComponent, then 's:<sid>.<signature>'."""
    raw = urllib.parse.unquote(cookie_value)
    assert raw.startswith("s:"), raw
    return raw[2:].rpartition(".")[0]


def jar_cookie(browser):
    value = browser.jar.get("connect.sid")
    if not value:
        raise AssertionError(f"no connect.sid in {browser.name}'s jar: {browser.jar} / {browser.last_set_cookies}")
    return value


class _Interop:
    """The scenarios; a subclass supplies the store (start_store / raw / set_expiry_in)."""

    strategy = None
    store_name = None
    EXPRESS_A = None  # express apps, created in setUpClass
    EXPRESS_OLD = None
    EXPRESS_STRANGER = None

    # -- set-up
    @classmethod
    def express_env(cls):
        raise NotImplementedError

    @classmethod
    def tessera_server(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls._apps = []
        try:
            cls.before_tessera()
            cls.tessera = cls.track_class(cls.tessera_server())
            cls.tessera.add_user("tina", "agent", "tina-pw")
            cls.tessera.add_user("ursula", "visitor", "ursula-pw")
            cls.tessera.start()
            cls.EXPRESS_A = cls.app("new-old", TESSERA_SECRETS)
            cls.EXPRESS_OLD = cls.app("old-only", OLD)
            cls.EXPRESS_STRANGER = cls.app("stranger", STRANGER)
        except Exception:
            cls._teardown()
            raise

    @classmethod
    def before_tessera(cls):
        pass

    @classmethod
    def app(cls, name, secrets, **extra):
        env = dict(cls.express_env(), SESSION_SECRET=secrets, **extra)
        a = ExpressApp(f"{cls.store_name}-{name}", env)
        cls._apps.append(a)
        return a.start()

    @classmethod
    def _teardown(cls):
        problems = [p for p in (a.cleanup() for a in cls._apps) if p]
        if getattr(cls, "tessera", None) is not None:
            try:
                cls.tessera.finish()
            except HarnessError as exc:
                problems.append(str(exc))
        return problems

    @classmethod
    def tearDownClass(cls):
        problems = cls._teardown()
        if problems:
            raise HarnessError("\n".join(problems))

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for a in type(self).__dict__.get("_apps", []):
                sys.stderr.write(f"\n===== log of express app {a.name} =====\n{a.log_text()}\n===== end =====\n")
        return out

    # -- helpers
    def tget(self, path, cookie):
        return Browser(self.tessera.port, name="tessera").get(path, cookies=f"connect.sid={cookie}")

    def eget(self, app, path, cookie):
        return Browser(app.port, name=app.name).get(path, cookies=f"connect.sid={cookie}")

    def epost(self, app, path, body, cookie):
        return Browser(app.port, name=app.name).post(path, body, cookies=f"connect.sid={cookie}")

    def express_login(self, app, user_id, role):
        b = app.browser()
        self.assertStatus(b.post("/login", {"userId": user_id, "role": role}), 200, f"login on {app.name}")
        return jar_cookie(b)

    def tessera_login(self, name, password):
        b = self.tessera.browser()
        r = self.assertStatus(b.login(name, password), 200, "tessera login")
        return jar_cookie(b), r.json()["userId"]

    def touches(self):
        return self.tessera.metrics().get("tessera_auth_touches_total", 0)

    # -- a) Express -> tessera
    def test_express_session_is_a_tessera_session(self):
        cookie = self.express_login(self.EXPRESS_A, 42, "agent")
        sid = sid_of(cookie)
        doc_before, _ = self.raw(sid)
        self.assertEqual(doc_before["userId"], 42, doc_before)  # express-session writes the number as is
        self.assertEqual(doc_before["cart"], [1, 2], doc_before)

        r = self.assertStatus(self.tget("/api/auth/session", cookie), 200, f"stored: {doc_before}")
        self.assertEqual(r.json()["userId"], "42")
        self.assertEqual(r.json()["role"], "agent")
        r = self.assertStatus(self.tget("/auth", cookie), 204)
        self.assertEqual(r.header("X-Session-User"), "42")

        # tessera read it (twice, touch interval 0): the document is unchanged and Express still reads it all.
        doc_after, _ = self.raw(sid)
        self.assertEqual(doc_after, doc_before)
        me = self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200)
        self.assertEqual(me.json(), {"userId": 42, "role": "agent", "cart": [1, 2]})
        # and Express writing it again (a modified session) is still a tessera session
        self.assertStatus(self.epost(self.EXPRESS_A, "/cart", {"cart": [3]}, cookie), 200)
        self.assertEqual(self.tget("/api/auth/session", cookie).json()["userId"], "42")
        self.assertEqual(self.eget(self.EXPRESS_A, "/me", cookie).json()["cart"], [3])

    # -- b) tessera -> Express
    def test_tessera_session_is_an_express_session(self):
        cookie, uid = self.tessera_login("tina", "tina-pw")
        me = self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200, f"stored: {self.raw(sid_of(cookie))}")
        self.assertEqual(me.json().get("userId"), uid)
        self.assertEqual(me.json().get("role"), "agent")
        # Express touched it (unmodified session): tessera still has it
        self.assertStatus(self.tget("/api/auth/session", cookie), 200)

    def test_app_field_added_by_express_survives_a_tessera_touch(self):
        cookie, uid = self.tessera_login("ursula", "ursula-pw")
        sid = sid_of(cookie)
        self.assertStatus(self.epost(self.EXPRESS_A, "/cart", {"cart": [7, 8]}, cookie), 200)
        doc, _ = self.raw(sid)
        self.assertEqual(doc.get("cart"), [7, 8], doc)
        self.assertEqual(doc.get("userId"), uid, doc)
        # Time passes: one hour left (Express's save set the expiry to now + cookie.originalMaxAge).
        self.set_expiry_in(sid, 3600 * 1000)
        before = self.touches()
        self.assertStatus(self.tget("/api/auth/session", cookie), 200)
        wait_until(lambda: self.touches() > before, 5, "tessera to touch the session")
        wait_until(lambda: self.raw(sid)[1] > 2 * 3600 * 1000, 5, "the touch to move the store's expiry")
        me = self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200)
        self.assertEqual(me.json(), {"userId": uid, "role": "visitor", "cart": [7, 8]})

    def test_tessera_polling_extends_an_express_session(self):
        # A document written by express-session has no absoluteExpiresAt: tessera then sets no absolute bound
        # and extends it by its own originalMaxAge on a (throttled) touch, as express-session does, so a visitor
        # who logged in on Express and then only polls tessera stays logged in. (Was a bug: the current expiry
        # was taken as the absolute one and nothing could ever move it.)
        cookie = self.express_login(self.EXPRESS_A, 43, "agent")
        sid = sid_of(cookie)
        self.set_expiry_in(sid, 3600 * 1000)
        before = self.touches()
        self.assertStatus(self.tget("/api/auth/session", cookie), 200)
        try:
            wait_until(lambda: self.touches() > before and self.raw(sid)[1] > 2 * 3600 * 1000, 3,
                       "tessera to extend the Express session's expiry")
        except HarnessError:
            doc, left = self.raw(sid)
            self.fail(f"tessera did not extend the Express session: {left} ms left, touches {before} -> "
                      f"{self.touches()}, stored {json.dumps(doc)}")

    def test_express_touch_keeps_tessera_idle_window(self):
        # express-session touches the store with now + cookie.originalMaxAge on every request it serves: tessera
        # writes originalMaxAge = its idle window, so an Express request keeps a tessera session's idle window.
        # (Was a bug: originalMaxAge was the 30-day absolute lifetime.)
        cookie, uid = self.tessera_login("ursula", "ursula-pw")
        sid = sid_of(cookie)
        idle_ms = 7 * 86400 * 1000
        self.assertLessEqual(self.raw(sid)[1], idle_ms)
        self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200)
        doc, left = self.raw(sid)
        self.assertLessEqual(left, idle_ms + 60000,
                             f"Express's touch moved the expiry to {left} ms from now; stored {json.dumps(doc)}")

    # -- c) logout on either side
    def test_express_logout_ends_the_tessera_session(self):
        cookie = self.express_login(self.EXPRESS_A, 44, "visitor")
        self.assertStatus(self.tget("/api/auth/session", cookie), 200)
        r = Browser(self.EXPRESS_A.port).post("/logout", cookies=f"connect.sid={cookie}")
        self.assertStatus(r, 204)
        self.assertIsNone(self.raw(sid_of(cookie))[0])
        self.assertStatus(self.tget("/api/auth/session", cookie), 401)
        self.assertStatus(self.tget("/auth", cookie), 401)

    def test_tessera_logout_ends_the_express_session(self):
        cookie, uid = self.tessera_login("tina", "tina-pw")
        self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200)
        r = Browser(self.tessera.port).post("/api/auth/logout", cookies=f"connect.sid={cookie}")
        self.assertIn(r.status, (200, 204), r)
        self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 401)
        self.assertStatus(self.tget("/api/auth/session", cookie), 401)

    # -- d) rotation
    def test_old_secret_of_express_is_accepted_by_tessera(self):
        cookie = self.express_login(self.EXPRESS_OLD, 45, "agent")
        r = self.assertStatus(self.tget("/api/auth/session", cookie), 200)
        self.assertEqual(r.json()["userId"], "45")
        # and the other way: tessera signs with the new secret, an Express app knowing both reads it
        cookie, uid = self.tessera_login("tina", "tina-pw")
        self.assertEqual(self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 200).json()["userId"], uid)
        self.assertStatus(self.eget(self.EXPRESS_OLD, "/me", cookie), 401)  # old-only Express: not its signature

    # -- e) unknown secret
    def test_cookie_signed_with_an_unknown_secret_is_refused(self):
        cookie = self.express_login(self.EXPRESS_STRANGER, 46, "agent")
        self.assertIsNotNone(self.raw(sid_of(cookie))[0], "the session is in the shared store")
        self.assertStatus(self.tget("/api/auth/session", cookie), 401)
        self.assertStatus(self.tget("/auth", cookie), 401)
        self.assertStatus(self.eget(self.EXPRESS_A, "/me", cookie), 401)
        self.assertStatus(self.eget(self.EXPRESS_STRANGER, "/me", cookie), 200)  # the cookie itself is fine


@unittest.skipUnless(shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server"), "redis-server missing")
class ExpressRedisInterop(_Interop, ServerTestCase):
    strategy = "redis"
    store_name = "redis"

    @classmethod
    def express_env(cls):
        return {"STORE": "redis", "REDIS_URL": REDIS.url, "SESSION_PREFIX": PREFIX}

    @classmethod
    def tessera_server(cls):
        return TesseraServer(strategy="redis", secret=TESSERA_SECRETS,
                             env={"REDIS_URL": REDIS.url, "SESSION_PREFIX": PREFIX, "SESSION_TOUCH_INTERVAL": "0"})

    def raw(self, sid):
        """(stored document or None, store expiry in ms from now)."""
        with RedisClient(REDIS.port) as c:
            val = c.command("GET", PREFIX + sid)
            pttl = c.command("PTTL", PREFIX + sid)
        return (json.loads(val) if val is not None else None), pttl

    def set_expiry_in(self, sid, ms):
        with RedisClient(REDIS.port) as c:
            self.assertEqual(c.command("PEXPIRE", PREFIX + sid, str(ms)), 1)


@unittest.skipUnless(os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres")), "PostgreSQL 15 missing")
class ExpressPgInterop(_Interop, ServerTestCase):
    """connect-pg-simple creates the table (createTableIfMissing, as an existing Express app would have), then
    tessera starts on the same database and adds its index."""

    strategy = "db"
    store_name = "pg"
    DB = "interop_express_first"

    @classmethod
    def url(cls):
        return f"postgres://{PG.db_user}@127.0.0.1:{PG.port}/{cls.DB}"

    @classmethod
    def express_env(cls):
        return {"STORE": "pg", "DATABASE_URL": cls.url(), "PG_CREATE_TABLE": "1"}

    @classmethod
    def before_tessera(cls):
        PG.psql(f"CREATE DATABASE {cls.DB}")
        first = cls.app("table-maker", TESSERA_SECRETS)
        b = first.browser()
        r = b.post("/login", {"userId": 1, "role": "visitor"})  # connect-pg-simple creates the table lazily
        if r.status != 200:
            raise HarnessError(f"first Express login failed: {r!r}\n{first.log_text()}")

    @classmethod
    def tessera_server(cls):
        return TesseraServer(strategy="db", secret=TESSERA_SECRETS, database=cls.url(),
                             env={"SESSION_TOUCH_INTERVAL": "0"})

    def raw(self, sid):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", sid):
            raise AssertionError(f"unexpected sid {sid!r}")
        out = PG.psql("SELECT sess::text, (extract(epoch FROM expire::timestamptz - now()) * 1000)::bigint "
                      f"FROM session WHERE sid = '{sid}'", db=self.DB).strip()
        if not out:
            return None, -2
        sess, _, left = out.rpartition("|")
        return json.loads(sess), int(left)

    def set_expiry_in(self, sid, ms):
        PG.psql(f"UPDATE session SET expire = (now() + interval '{int(ms)} milliseconds')::timestamp "
                f"WHERE sid = '{sid}'", db=self.DB)

    def test_schema_is_connect_pg_simple_plus_the_user_index(self):
        cols = PG.psql("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                       "WHERE table_name = 'session' ORDER BY ordinal_position", db=self.DB).splitlines()
        self.assertEqual(cols, ["sid|character varying|NO", "sess|json|NO", "expire|timestamp without time zone|NO"])
        idx = PG.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'session' ORDER BY 1", db=self.DB).split()
        self.assertIn("session_pkey", idx)
        self.assertIn("IDX_session_expire", idx)
        self.assertTrue(any("user" in i for i in idx), idx)

    def test_tessera_first_then_connect_pg_simple(self):
        """The other order: tessera creates the table in an empty database, connect-pg-simple (createTableIfMissing)
        finds it and uses it; sessions still cross both ways."""
        db = "interop_tessera_first"
        PG.psql(f"CREATE DATABASE {db}")
        url = f"postgres://{PG.db_user}@127.0.0.1:{PG.port}/{db}"
        srv = self.track(TesseraServer(strategy="db", secret=TESSERA_SECRETS, database=url))
        srv.add_user("vera", "agent", "vera-pw")
        srv.start()
        app = ExpressApp("pg-after-tessera", {"STORE": "pg", "DATABASE_URL": url, "PG_CREATE_TABLE": "1",
                                              "SESSION_SECRET": TESSERA_SECRETS})
        self.addCleanup(lambda: self.assertIsNone(app.cleanup()))
        app.start()
        b = app.browser()
        self.assertStatus(b.post("/login", {"userId": 7, "role": "agent"}), 200, app.log_text())
        cookie = jar_cookie(b)
        r = Browser(srv.port).get("/api/auth/session", cookies=f"connect.sid={cookie}")
        self.assertEqual(self.assertStatus(r, 200).json()["userId"], "7")
        tb = srv.browser()
        self.assertStatus(tb.login("vera", "vera-pw"), 200)
        self.assertStatus(Browser(app.port).get("/me", cookies=f"connect.sid={jar_cookie(tb)}"), 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)

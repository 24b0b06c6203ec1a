"""The command line (issue 12 §3): `tessera user list|passwd|del`, `tessera session list|revoke`, `tessera check`,
against each store: SQLite and PostgreSQL with the db strategy, with Redis the cached strategy on both, the redis
strategy, and jwt (with Redis, and with the database's revocation table).

Every class starts a real `tessera serve` (and redis-server / a PostgreSQL database of the module's shared
cluster where it needs them) and runs the real binary against the same database:
- users: add, list (text and --json), passwd (the new password logs in, the old one is refused), del (gone from
  the list; its live session is refused by the running server);
- sessions: two logins are listed by handle (the session id never appears in the output); revoking one by its
  handle, another by its id, and the rest with --user, each is refused (401) by the running server within a
  deadline while the untouched session keeps working;
- bad input: unknown user, unknown handle -> one line on stderr, exit 1; missing/extra arguments, bad options ->
  one line, exit 2;
- check: ok lines and exit 0 on a good configuration, --json parses; a bad flag value, an unreachable PostgreSQL
  or Redis, a refused Redis password, an unknown PostgreSQL role, a SQLite directory that cannot be written, and
  a schema newer than the binary each give exit 1 and a line naming the problem.
"""

import hashlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (PostgresServer, RedisServer, ServerTestCase, TesseraServer, free_port,  # noqa: E402
                             main, shared_postgres, stop_shared_postgres, tessera_bin, wait_until)

HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))
REVOKE_DEADLINE = 10.0  # seconds for a running server to refuse a revoked session (waited on; generous for a loaded CI)
_dbs = itertools.count(1)


def tearDownModule():
    stop_shared_postgres()


def one_line(text):
    lines = [ln for ln in text.decode(errors="replace").splitlines() if ln.strip()]
    return len(lines) == 1


class CliTests:
    """Mixed into a ServerTestCase per store."""

    strategy = "db"
    postgres = False
    redis = False

    @classmethod
    def setUpClass(cls):
        cls.redis_server = RedisServer().start() if cls.redis else None
        database = None
        if cls.postgres:
            pg = shared_postgres()
            name = f"tess_cli_{os.getpid()}_{next(_dbs)}"
            pg.psql(f"CREATE DATABASE {name}")
            database = f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{name}"
        extra = ["--redis", cls.redis_server.url] if cls.redis else []
        cls.server = TesseraServer(strategy=cls.strategy, database=database, extra_args=extra)
        cls.track_class(cls.server)
        cls.server.start()
        cls.env_extra = {"DATABASE_URL": cls.server.database}
        if cls.redis:
            cls.env_extra["REDIS_URL"] = cls.redis_server.url

    @classmethod
    def tearDownClass(cls):
        cls.server.finish()
        if cls.redis_server is not None:
            cls.redis_server.cleanup()

    # -- helpers
    def cli(self, *args, input=None):
        env = dict(self.server.env, **self.env_extra)
        r = subprocess.run([tessera_bin(), *args], input=input, capture_output=True, env=env, timeout=60,
                           cwd=self.server.tmpdir)
        for marker in (b"Sanitizer", b"runtime error:", b"LeakSanitizer"):  # an ASan/UBSan build's report
            self.assertNotIn(marker, r.stderr, f"{args}: {r.stderr.decode(errors='replace')}")
        return r

    def ok(self, *args, input=None):
        r = self.cli(*args, input=input)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr.decode(errors='replace')}")
        return r

    def fails(self, code, *args, input=None):
        r = self.cli(*args, input=input)
        self.assertEqual(r.returncode, code, f"{args}: exit {r.returncode}, stderr {r.stderr!r}")
        self.assertTrue(one_line(r.stderr), f"{args}: not one line on stderr: {r.stderr!r}")
        return r

    def new_user(self, prefix, password="pw-one"):
        name = f"{prefix}{next(_dbs)}"
        self.server.add_user(name, "visitor", password)
        return name

    def login(self, name, password="pw-one"):
        b = self.server.browser(name)
        self.assertStatus(b.login(name, password), 200)
        self.assertStatus(b.get("/api/auth/session"), 200)
        return b

    def sid_of(self, browser):
        value = urllib.parse.unquote(browser.jar[self.server.cookie_name])
        self.assertTrue(value.startswith("s:"), value)
        return value[2:].rpartition(".")[0]

    def assert_refused(self, browser):
        # A fresh browser with the same cookie: the jar of `browser` would drop a cleared cookie.
        cookie = "; ".join(f"{k}={v}" for k, v in browser.jar.items())
        wait_until(lambda: browser.get("/api/auth/session", cookies=cookie).status == 401, REVOKE_DEADLINE,
                   "the revoked session refused")

    def sessions(self, name):
        r = self.ok("session", "list", "--user", name, "--json")
        doc = json.loads(r.stdout)
        self.assertEqual(doc["user"], name)
        return doc["sessions"]

    # -- users
    def test_user_list_passwd_del(self):
        name = self.new_user("lu")
        text = self.ok("user", "list").stdout.decode()
        self.assertIn(name, text)
        users = json.loads(self.ok("user", "list", "--json").stdout)["users"]
        mine = [u for u in users if u["name"] == name]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["role"], "visitor")
        self.assertIsInstance(mine[0]["id"], int)

        self.ok("user", "passwd", name, "--password-stdin", input=b"pw-two\n")
        self.assertStatus(self.server.browser().login(name, "pw-one"), 401)
        b = self.login(name, "pw-two")

        self.ok("user", "del", name)
        self.assert_refused(b)
        users = json.loads(self.ok("user", "list", "--json").stdout)["users"]
        self.assertNotIn(name, [u["name"] for u in users])
        self.assertStatus(self.server.browser().login(name, "pw-two"), 401)

    def test_user_del_refused_while_referenced(self):
        name = self.new_user("pc")
        b = self.login(name)
        self.assertIn(b.post("/api/prechats", {"topic": "refers to the user"}).status, (200, 201))
        r = self.fails(1, "user", "del", name)
        self.assertIn("pre-chats", r.stderr.decode())
        users = json.loads(self.ok("user", "list", "--json").stdout)["users"]
        self.assertIn(name, [u["name"] for u in users])

    def test_user_errors(self):
        self.fails(1, "user", "passwd", "nosuchuser", "--password-stdin", input=b"x\n")
        self.fails(1, "user", "del", "nosuchuser")
        self.fails(2, "user", "passwd", "someone")  # no --password-stdin
        self.fails(2, "user", "passwd", "--password-stdin", input=b"x\n")  # no NAME
        self.fails(2, "user", "del")
        self.fails(2, "user", "del", "a", "b")
        self.fails(2, "user", "list", "--bogus")
        self.fails(2, "user", "list", "extra")
        self.fails(2, "user", "passwd", "x", "--password-stdin", input=b"")  # no password
        self.fails(2, "nosuchcommand")

    # -- sessions
    def test_session_list_and_revoke(self):
        name, other = self.new_user("sl"), self.new_user("so")
        b1, b2, b3 = self.login(name), self.login(name), self.login(name)
        keep = self.login(other)
        rows = self.sessions(name)
        self.assertEqual(len(rows), 3, rows)
        sids = [self.sid_of(b) for b in (b1, b2, b3)]
        listing = self.ok("session", "list", "--user", name).stdout.decode()
        for sid in sids:
            self.assertNotIn(sid, listing)
        for row in rows:
            self.assertRegex(row["handle"], r"^[0-9a-f]{16}$")
            self.assertRegex(row["expires"], r"^\d{4}-\d\d-\d\dT")
            self.assertEqual(row["store"], "database")
            self.assertIn(row["handle"], listing)
        handles = {row["handle"] for row in rows}

        # by handle: b1's, computed from its id as the CLI does
        h1 = hashlib.sha256(sids[0].encode()).hexdigest()[:16]
        self.assertIn(h1, handles)
        r = self.ok("session", "revoke", h1)
        self.assertNotIn(sids[0], r.stdout.decode())
        self.assert_refused(b1)
        self.assertStatus(b2.get("/api/auth/session"), 200)
        self.assertEqual(len(self.sessions(name)), 2)

        # by id (after --: a random id may start with '-')
        self.ok("session", "revoke", "--", sids[1])
        self.assert_refused(b2)
        self.assertStatus(b3.get("/api/auth/session"), 200)

        # the same handle again: gone
        self.fails(1, "session", "revoke", h1)

        # --user: the rest
        self.ok("session", "revoke", "--user", name)
        self.assert_refused(b3)
        self.assertEqual(self.sessions(name), [])
        self.assertStatus(keep.get("/api/auth/session"), 200)

    def test_session_errors(self):
        self.fails(1, "session", "list", "--user", "nosuchuser")
        self.fails(1, "session", "revoke", "--user", "nosuchuser")
        self.fails(1, "session", "revoke", "0123456789abcdef")
        self.fails(2, "session", "list")
        self.fails(2, "session", "revoke")
        self.fails(2, "session", "revoke", "-Wabc")  # an id that starts with "-" goes after --
        self.fails(2, "session", "revoke", "abc", "--user", "x")
        self.fails(2, "session", "revoke", "a", "b")
        self.fails(2, "session", "list", "--user", "x", "--bogus")

    # -- check
    def test_check_ok(self):
        args = ["check", "--strategy", self.strategy] + (["--redis", self.redis_server.url] if self.redis else [])
        r = self.ok(*args)
        lines = r.stdout.decode().splitlines()
        self.assertTrue(lines and all(ln.startswith("ok: ") for ln in lines), lines)
        self.assertTrue(any(ln.startswith("ok: database:") for ln in lines), lines)
        if self.redis:
            self.assertTrue(any(ln.startswith("ok: redis:") for ln in lines), lines)
        doc = json.loads(self.ok(*args, "--json").stdout)
        self.assertTrue(doc["ok"])
        self.assertTrue(all(c["ok"] for c in doc["checks"]))

    def check_fails(self, *args, what):
        r = self.cli("check", *args)
        self.assertEqual(r.returncode, 1, f"{args}: {r.stdout!r} {r.stderr!r}")
        errors = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("error: ")]
        self.assertEqual(len(errors), 1, r.stdout)
        self.assertIn(what, errors[0])
        doc = json.loads(self.cli("check", *args, "--json").stdout)
        self.assertFalse(doc["ok"])
        return errors[0]

    def test_check_problems(self):
        self.check_fails("--strategy", "bogus", what="config")
        self.check_fails("--threads", "0", what="config")
        self.check_fails("--redis", f"redis://127.0.0.1:{free_port()}", what="redis")
        if self.postgres:
            pg = shared_postgres()
            self.check_fails("--database", f"postgres://postgres@127.0.0.1:{free_port()}/postgres",
                             what="database")
            self.check_fails("--database", f"postgres://nosuchrole@127.0.0.1:{pg.port}/postgres", what="database")
        else:
            self.check_fails("--database", "sqlite:/nonexistent-dir/x/t.db", what="database")


class SqliteDb(CliTests, ServerTestCase):
    strategy = "db"


class SqliteCachedRedis(CliTests, ServerTestCase):
    strategy = "cached"
    redis = True

    def test_check_redis_password(self):
        locked = RedisServer(password="right-one").start()
        try:
            line = self.check_fails("--redis", f"redis://:wrong-one@127.0.0.1:{locked.port}", what="redis")
            self.assertNotIn("wrong-one", line)
            self.ok("check", "--redis", f"redis://:right-one@127.0.0.1:{locked.port}")
        finally:
            locked.cleanup()

    def test_check_schema_newer(self):
        path = os.path.join(self.server.tmpdir, "newer.db")
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 999")
        db.close()
        self.check_fails("--database", f"sqlite:{path}", what="newer")


@unittest.skipUnless(HAVE_PG, "PostgreSQL binaries not installed")
class PostgresDb(CliTests, ServerTestCase):
    strategy = "db"
    postgres = True


@unittest.skipUnless(HAVE_PG, "PostgreSQL binaries not installed")
class PostgresCachedRedis(CliTests, ServerTestCase):
    strategy = "cached"
    postgres = True
    redis = True


class SqliteRedisStrategy(CliTests, ServerTestCase):
    """The redis strategy keeps its sessions in Redis only: `session list` reads them from Redis (the user's set);
    revoking by id (with --redis) and by --user reach them."""

    strategy = "redis"
    redis = True

    def test_session_list_and_revoke(self):
        name, other = self.new_user("rl"), self.new_user("ro")
        b1, b2 = self.login(name), self.login(name)
        keep = self.login(other)
        rows = self.sessions(name)
        self.assertEqual(sorted(r["handle"] for r in rows),
                         sorted(hashlib.sha256(self.sid_of(b).encode()).hexdigest()[:16] for b in (b1, b2)))
        self.assertEqual({r["store"] for r in rows}, {"redis"})
        self.assertNotIn(self.sid_of(b1), self.ok("session", "list", "--user", name).stdout.decode())
        self.ok("session", "revoke", "--", self.sid_of(b1))
        self.assert_refused(b1)
        self.assertStatus(b2.get("/api/auth/session"), 200)
        self.ok("session", "revoke", "--user", name)
        self.assert_refused(b2)
        self.assertStatus(keep.get("/api/auth/session"), 200)


class JwtTests(CliTests):
    """jwt keeps no sessions: `session list` shows none, an id names nothing; --user (and user del) go through
    the revocation cut-off, which the running server follows (Redis, or the database's revocation table)."""

    strategy = "jwt"

    def test_session_list_and_revoke(self):
        name, other = self.new_user("jl"), self.new_user("jo")
        b1, b2 = self.login(name), self.login(name)
        keep = self.login(other)
        self.assertEqual(self.sessions(name), [])
        self.fails(1, "session", "revoke", "0123456789abcdef")
        self.ok("session", "revoke", "--user", name)
        self.assert_refused(b1)
        self.assert_refused(b2)
        self.assertStatus(keep.get("/api/auth/session"), 200)


class SqliteJwtRedis(JwtTests, ServerTestCase):
    redis = True


class SqliteJwt(JwtTests, ServerTestCase):
    pass


if __name__ == "__main__":
    main()

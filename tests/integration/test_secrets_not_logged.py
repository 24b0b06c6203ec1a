"""
Secrets are never logged: the cookie/JWT secrets, users' passwords, session ids and cookie values, and the
passwords in Redis and PostgreSQL URLs. Each strategy is run through logins (right and wrong), forged and garbage
cookies, logouts and backend failures (a Redis that refuses the password, a PostgreSQL that is not there), and
every line the server and the CLI wrote is searched for each secret, raw and in the encodings a log line could
carry them (percent-encoded, base64 for the parts of a cookie).
"""
import os
import sys
import unittest
from urllib.parse import quote, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (HarnessError, RedisServer, ServerTestCase, TesseraServer, free_port,  # noqa: E402
                             make_jwt, sign_express_cookie, wait_until)

SECRET = "Kx9-first-secret-3b1f0d7e5a2c4b6d8e0f1a3c"   # >= 32 bytes: production accepts it
OLD_SECRET = "Qm4-older-secret-9e8d7c6b5a4f3e2d1c0b9a8f"
USER_PW = "Pw-of-ann-8d0c2e4f"
WRONG_PW = "Wrong-pw-of-ann-1a3b5c"
REDIS_PW = "Redis-pw-5e7f9a1b"
PG_PW = "Pg-pw-2c4e6a8b"


def variants(s):
    """The spellings of s a log line might hold."""
    return {s, quote(s, safe=""), quote(s)}


class SecretsNotLogged(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        with cls.redis.client() as c:
            c.command("CONFIG", "SET", "requirepass", REDIS_PW)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.redis.cleanup()

    def redis_url(self, pw=REDIS_PW):
        return f"redis://:{quote(pw, safe='')}@127.0.0.1:{self.redis.port}/0"

    def exercise(self, srv):
        """Traffic that touches every path that might log: returns the session ids and cookie values seen."""
        seen = set()
        anon = srv.browser("anon")
        self.assertJsonError(anon.login("ann", WRONG_PW), 401)
        self.assertJsonError(anon.login("nobody", WRONG_PW), 401)
        b = srv.browser("ann")
        self.assertStatus(b.login("ann", USER_PW), 200)
        value = b.jar[srv.cookie_name]
        seen.add(value)
        seen.add(unquote(value))
        if srv.strategy != "jwt":
            # s:<sid>.<sig>: the id and the signature alone, too
            raw = unquote(value)
            self.assertTrue(raw.startswith("s:"), raw)
            sid, _, sig = raw[2:].partition(".")
            seen.update({sid, sig})
        self.assertStatus(b.get("/api/auth/session"), 200)
        self.assertStatus(b.post("/api/prechats", {"topic": "billing"}), 201)
        # forged and garbage cookies: one signed with a secret the server does not know, one with a known secret
        # for a session that does not exist, one that is not a cookie at all
        forged = sign_express_cookie("f" * 43, "not-the-secret-of-this-server")
        unknown = sign_express_cookie("u" * 43, SECRET)
        jwt_forged = make_jwt({"userId": "1", "role": "agent"}, secret="not-the-secret-of-this-server")
        for cookie in (forged, unknown, jwt_forged, "s%3Agarbage", "%7F%01"):
            r = anon.get("/api/auth/session", cookies=f"{srv.cookie_name}={cookie}")
            self.assertIn(r.status, (400, 401), r)
        seen.add(unquote(unknown).split(".")[0][2:])
        self.assertStatus(b.post("/api/auth/logout"), 204)
        # a second session, ended everywhere
        c = srv.browser("ann2")
        self.assertStatus(c.login("ann", USER_PW), 200)
        seen.add(c.jar[srv.cookie_name])
        self.assertStatus(c.post("/api/auth/logout?everywhere=1"), 204)
        return seen

    def assertClean(self, text, secrets, where):
        for s in secrets:
            if len(s) < 8:
                continue
            for v in variants(s):
                self.assertNotIn(v, text, f"{where} holds a secret ({s[:4]}…)")

    def check_strategy(self, strategy, env):
        srv = self.track(TesseraServer(strategy=strategy, secret=f"{SECRET},{OLD_SECRET}",
                                       env={"TESSERA_ENV": "production", **env}))
        r = srv.add_user("ann", "visitor", USER_PW)
        cli_out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        srv.start()
        # production cookies are Secure: the harness's jar keeps them over plain HTTP on loopback
        seen = self.exercise(srv)
        srv.stop()
        text = srv.log_text() + cli_out
        self.assertTrue(text.strip(), "the server logged nothing at all: the test would prove nothing")
        self.assertClean(text, {SECRET, OLD_SECRET, USER_PW, WRONG_PW, REDIS_PW, PG_PW} | seen,
                         f"{strategy}: the log")

    def test_db(self):
        self.check_strategy("db", {})

    def test_redis(self):
        self.check_strategy("redis", {"REDIS_URL": self.redis_url()})

    def test_jwt_with_redis(self):
        self.check_strategy("jwt", {"REDIS_URL": self.redis_url()})

    def test_cached(self):
        self.check_strategy("cached", {"REDIS_URL": self.redis_url()})

    def test_backend_failures(self):
        """A Redis that refuses the password and a PostgreSQL that is not listening: the errors are logged, the
        passwords in their URLs are not."""
        srv = self.track(TesseraServer(strategy="redis", secret=SECRET,
                                       env={"REDIS_URL": self.redis_url("Wrong-redis-pw-7d9f1b")}))
        srv.add_user("ann", "visitor", USER_PW)
        srv.start()
        self.assertStatus(srv.browser().login("ann", USER_PW), 503)
        self.assertStatus(srv.browser().get("/readyz"), 503)
        wait_until(lambda: "redis" in srv.log_text().lower(), 10, "the Redis failure in the log")
        srv.stop()
        self.assertClean(srv.log_text(), {"Wrong-redis-pw-7d9f1b", REDIS_PW, USER_PW, SECRET}, "redis failure log")

        port = free_port()
        url = f"postgres://tessera:{PG_PW}@127.0.0.1:{port}/tessera"
        r = srv.run_cli("user", "add", "bob", "--role", "agent", "--password-stdin", "--database", url,
                        input=USER_PW.encode())
        self.assertNotEqual(r.returncode, 0, "user add against a PostgreSQL that is not there")
        err = r.stderr.decode(errors="replace")
        self.assertTrue(err.strip(), "no error message")
        self.assertEqual(len(err.strip().splitlines()), 1, f"one line: {err!r}")
        self.assertClean(err + r.stdout.decode(errors="replace"), {PG_PW, USER_PW}, "CLI error")

        pg = self.track(TesseraServer(strategy="db", secret=SECRET, database=url))
        with self.assertRaises(HarnessError):
            pg.start()  # it needs its database at start: exits at once, with one line
        pg.problems.clear()  # that exit is what this test expects
        with open(pg.log_paths[-1], encoding="utf-8", errors="replace") as f:
            lines = f.read().strip().splitlines()
        self.assertEqual(pg.proc.returncode, 1, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("PostgreSQL", pg.log_text())
        self.assertClean(pg.log_text(), {PG_PW, SECRET}, "PostgreSQL failure log")

if __name__ == "__main__":
    unittest.main(verbosity=2)

"""The command line and configuration: --help, bad configuration (one line, exit 2), `user add`, production
mode, cookie name and TTL, secret rotation (the first secret signs, all verify) and the development secret that
survives restarts. Cookies and tokens are checked against the algorithms of cookie-signature and jsonwebtoken."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse

from tessera_harness import ServerTestCase, TesseraServer, free_port, main, tessera_bin


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Cli(ServerTestCase):
    def setUp(self):
        self.bin = tessera_bin()
        self.tmp = tempfile.mkdtemp(prefix="tessera-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db = f"sqlite:{os.path.join(self.tmp, 'tessera.db')}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SESSION_SECRET", "NEXTAUTH_SECRET", "TESSERA_ENV", "DATABASE_URL", "TESSERA_LISTEN",
                                 "SESSION_STRATEGY", "SESSION_TTL", "SESSION_COOKIE")}

    def run_bin(self, *args, env=None, input=None, timeout=10):
        e = dict(self.env)
        e.update(env or {})
        try:
            return subprocess.run([self.bin, *args], env=e, input=input, capture_output=True, timeout=timeout,
                                  cwd=self.tmp)
        except subprocess.TimeoutExpired:
            self.fail(f"`tessera {' '.join(args)}` did not exit within {timeout}s (it should have refused)")

    def assertOneLineError(self, r, code=2, what=""):
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, code, f"{what}: exit {r.returncode}, stderr {err!r}")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, f"{what}: expected a one-line error, got {err!r}")

    def test_help(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0, r)
        out = (r.stdout + r.stderr).decode()
        self.assertIn("serve", out)
        self.assertIn("user", out)
        r = self.run_bin("serve", "--help")
        self.assertEqual(r.returncode, 0, r)
        out = (r.stdout + r.stderr).decode()
        for word in ("--listen", "--metrics-listen", "TESSERA_METRICS_LISTEN", "--database", "--strategy", "--threads", "TESSERA_LISTEN", "DATABASE_URL",
                     "SESSION_STRATEGY", "SESSION_SECRET", "SESSION_TTL", "SESSION_COOKIE", "TESSERA_ENV"):
            self.assertIn(word, out, f"`tessera serve --help` does not document {word}")

    def test_bad_configuration_exits_2_with_one_line(self):
        port = free_port()
        ok = ["--listen", f"127.0.0.1:{port}", "--database", self.db, "--strategy", "db", "--threads", "1"]

        def with_(flag, value):
            args = list(ok)
            args[args.index(flag) + 1] = value
            return args

        cases = [
            ("listen garbage", with_("--listen", "nope"), {}),
            ("listen port out of range", with_("--listen", "127.0.0.1:99999"), {}),
            ("listen no port", with_("--listen", "127.0.0.1:"), {}),
            ("metrics listen garbage", ok + ["--metrics-listen", "nope"], {}),
            ("metrics listen port zero", ok + ["--metrics-listen", "127.0.0.1:0"], {}),
            ("metrics listen port out of range", ok + ["--metrics-listen", "127.0.0.1:70000"], {}),
            ("metrics listen empty", ok + ["--metrics-listen", ""], {}),
            ("metrics listen on the main port", ok + ["--metrics-listen", f"127.0.0.1:{port}"], {}),
            ("metrics listen garbage in env", ok, {"TESSERA_METRICS_LISTEN": ":9100x"}),
            ("unknown strategy", with_("--strategy", "bogus"), {}),
            ("bad database URL", with_("--database", "mysql://localhost/x"), {}),
            ("empty database URL", with_("--database", ""), {}),
            ("threads zero", with_("--threads", "0"), {}),
            ("threads garbage", with_("--threads", "many"), {}),
            ("unknown flag", ok + ["--no-such-flag"], {}),
            ("production without secret", ok, {"TESSERA_ENV": "production"}),
            ("production with a one-byte secret", ok, {"TESSERA_ENV": "production", "SESSION_SECRET": "x"}),
            ("production with one short secret of two", ok,
             {"TESSERA_ENV": "production", "SESSION_SECRET": "y" * 40 + "," + "z" * 31}),
            ("bad TTL", ok, {"SESSION_TTL": "soon", "SESSION_SECRET": "x" * 32}),
            ("wait close not above the wait timeout", ok + ["--prechat-wait-timeout", "60", "--prechat-wait-close", "60"],
             {}),
            ("wait close below the default wait timeout in env", ok, {"TESSERA_PRECHAT_WAIT_CLOSE": "30"}),
            ("bad strategy in env", [a for a in ok if a not in ("--strategy", "db")], {"SESSION_STRATEGY": "nope"}),
        ]
        for label, args, env in cases:
            with self.subTest(label):
                self.assertOneLineError(self.run_bin("serve", *args, env=env, timeout=5), 2, label)

    def test_user_add(self):
        add = ("user", "add", "zoe", "--role", "visitor", "--password-stdin", "--database", self.db)
        r = self.run_bin(*add, input=b"zoe-pass")
        self.assertEqual(r.returncode, 0, r)
        r = self.run_bin(*add, input=b"other-pass")
        self.assertNotEqual(r.returncode, 0, "duplicate user accepted")
        lines = [ln for ln in r.stderr.decode().splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, r.stderr)
        r = self.run_bin("user", "add", "yan", "--role", "admin", "--password-stdin", "--database", self.db,
                         input=b"pw")
        self.assertNotEqual(r.returncode, 0, "unknown role accepted")
        # the password is stored hashed: not in the database file in clear
        with open(self.db[len("sqlite:"):], "rb") as f:
            self.assertNotIn(b"zoe-pass", f.read())


class ServeConfig(ServerTestCase):
    def server(self, **kw):
        srv = self.track(TesseraServer(**kw))
        return srv

    def test_production_cookie_is_secure(self):
        srv = self.server(strategy="db", env={"TESSERA_ENV": "production"}, secret="p" * 32 + ",q" + "r" * 40)
        srv.add_user("ann", "visitor", "ann-pass")
        srv.start()
        b = srv.browser()
        self.assertStatus(b.login("ann", "ann-pass"), 200)
        (name, _, attrs), = [c for c in b.last_set_cookies if c[0] == "connect.sid"]
        self.assertIs(attrs.get("secure"), True, b.last_set_cookies)
        self.assertIs(attrs.get("httponly"), True)

    def test_cookie_name_and_ttl(self):
        for strategy in ("db", "jwt"):
            with self.subTest(strategy):
                srv = self.server(strategy=strategy, env={"SESSION_COOKIE": "my.sid", "SESSION_TTL": "120"})
                srv.add_user("ann", "visitor", "ann-pass")
                srv.start()
                b = srv.browser()
                self.assertStatus(b.login("ann", "ann-pass"), 200)
                self.assertEqual(list(b.jar), ["my.sid"])
                (_, _, attrs), = b.last_set_cookies
                self.assertTrue(0 < int(attrs["max-age"]) <= 120, attrs)
                self.assertStatus(b.get("/api/auth/session"), 200)
                self.assertStatus(b.get("/api/auth/session", cookies=f"connect.sid={b.jar['my.sid']}"), 401)
                srv.stop()

    def test_express_cookie_rotation(self):
        srv = self.server(strategy="db", secret="old-secret")
        srv.add_user("ann", "visitor", "ann-pass")
        srv.start()
        b_old = srv.browser()
        self.assertStatus(b_old.login("ann", "ann-pass"), 200)
        raw = urllib.parse.unquote(b_old.jar["connect.sid"])
        self.assertTrue(raw.startswith("s:"), raw)
        sid, _, sig = raw[2:].rpartition(".")
        want = base64.b64encode(hmac.new(b"old-secret", sid.encode(), hashlib.sha256).digest()).decode().rstrip("=")
        self.assertEqual(sig, want, "cookie is not signed as cookie-signature signs it")
        self.assertGreaterEqual(len(b64url_decode(sid)), 32, "session id shorter than 256 bits")
        self.assertEqual(srv.stop()[1], True, "SIGTERM did not stop the server")

        srv.env["SESSION_SECRET"] = "new-secret,old-secret"
        srv.start()
        self.assertStatus(b_old.get("/api/auth/session"), 200, "a cookie signed with the second secret")
        b_new = srv.browser()
        self.assertStatus(b_new.login("ann", "ann-pass"), 200)
        sid2, _, sig2 = urllib.parse.unquote(b_new.jar["connect.sid"])[2:].rpartition(".")
        want = base64.b64encode(hmac.new(b"new-secret", sid2.encode(), hashlib.sha256).digest()).decode().rstrip("=")
        self.assertEqual(sig2, want, "the first secret must sign")
        srv.stop()

        srv.env["SESSION_SECRET"] = "new-secret"
        srv.start()
        self.assertJsonError(b_old.get("/api/auth/session"), 401, "old secret retired")
        self.assertStatus(b_new.get("/api/auth/session"), 200)

    def test_jwt_rotation_and_shape(self):
        srv = self.server(strategy="jwt", secret="old-secret")
        srv.add_user("ann", "visitor", "ann-pass")
        srv.start()
        b_old = srv.browser()
        r = self.assertStatus(b_old.login("ann", "ann-pass"), 200)
        token = b_old.jar["session-token"]
        head, claims, sig = token.split(".")
        self.assertEqual(json.loads(b64url_decode(head)), {"alg": "HS256", "typ": "JWT"})
        c = json.loads(b64url_decode(claims))
        for k in ("userId", "iat", "exp"):
            self.assertIn(k, c, c)
        self.assertEqual(c["userId"], r.json()["userId"])
        self.assertGreater(c["exp"], c["iat"])
        mac = hmac.new(b"old-secret", f"{head}.{claims}".encode(), hashlib.sha256).digest()
        self.assertEqual(b64url_decode(sig), mac, "not HS256 over header.claims with the secret")
        srv.stop()

        srv.env["SESSION_SECRET"] = "new-secret,old-secret"
        srv.start()
        self.assertStatus(b_old.get("/api/auth/session"), 200)
        b_new = srv.browser()
        self.assertStatus(b_new.login("ann", "ann-pass"), 200)
        h2, c2, s2 = b_new.jar["session-token"].split(".")
        self.assertEqual(b64url_decode(s2), hmac.new(b"new-secret", f"{h2}.{c2}".encode(), hashlib.sha256).digest())
        srv.stop()

        srv.env["SESSION_SECRET"] = "new-secret"
        srv.start()
        self.assertJsonError(b_old.get("/api/auth/session"), 401)
        self.assertStatus(b_new.get("/api/auth/session"), 200)

    def test_login_time_does_not_reveal_users(self):
        """Unknown user and wrong password take about as long (a password hash is computed either way). Coarse
        on purpose: a short cut for unknown users is tens of times faster, not 3x."""
        srv = self.server(strategy="db")
        srv.add_user("ann", "visitor", "ann-pass")
        srv.start()
        b = srv.browser()
        known, unknown = [], []
        for _ in range(5):
            for user, out in (("ann", known), ("nobody", unknown)):
                t = time.perf_counter()
                self.assertStatus(b.login(user, "wrong"), 401)
                out.append(time.perf_counter() - t)
        k, u = statistics.median(known), statistics.median(unknown)
        self.assertLess(max(k, u) / min(k, u), 3.0, f"median wrong password {k * 1e3:.1f} ms, unknown user "
                                                    f"{u * 1e3:.1f} ms")

    def test_development_secret_survives_restart(self):
        srv = self.server(strategy="db", secret=None)
        srv.add_user("ann", "visitor", "ann-pass")
        srv.start()
        b = srv.browser()
        self.assertStatus(b.login("ann", "ann-pass"), 200)
        srv.stop()
        srv.start()
        self.assertStatus(b.get("/api/auth/session"), 200, "generated secret not kept next to the database")


if __name__ == "__main__":
    main()

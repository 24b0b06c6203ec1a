"""NextAuth v4 and Auth.js v5 JWT sessions (SESSION_FORMAT=nextauth | authjs, strategy jwt), with the REAL npm
packages: next-auth 4.24 (`next-auth/jwt`) and @auth/core (`@auth/core/jwt`), driven by tests/interop/jwe_tool.mjs.

For each format a `tessera serve --strategy jwt --session-format F` (SQLite, no Redis: revocation in the database's
table) is checked:
- test_1: the package's encode() cookie (sub, name, email) is accepted on /api/auth/session, /auth (X-Session-User)
  and a pre-chat route; a token without a role claim gets the users table's role, one with a role keeps it;
- test_2: a cookie too large for one, split by the package's own SessionStore (`<name>.0`, `<name>.1`), is joined;
  a missing chunk is 401;
- test_3: tessera's own login cookie (name, attributes) is decoded by the package's decode(); stale chunks the
  browser holds are cleared;
- test_4: tampered, expired, wrong-secret and wrong-enc tokens: 401 from tessera, and refused by the package too;
- test_5: the secret list rotates (a token of the older secret is accepted);
- test_6: logout revokes the token (401 afterwards; cookie and chunks cleared);
- test_7: TESSERA_ENV=production: the `__Secure-` cookie (Auth.js: its salt too), read and written.
ConfigRefusals: redis / db / cached with a JWE format, and an unknown format: exit 2 with one line.

Needs node + npm: setUpModule installs tests/interop's packages (npm ci, pinned by its lockfile) when they are
missing, and skips the module with the reason when that is impossible.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import Browser, ServerTestCase, TesseraServer, main, parse_set_cookie, tessera_bin, wait_until  # noqa: E402

INTEROP_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
TOOL = os.path.join(INTEROP_DIR, "jwe_tool.mjs")
SECRET = "tessera-nextauth-integration-secret-0123456789"
OLD = "an-older-secret-of-the-rotation-list-0123456789"
OTHER = "not-the-apps-secret-0123456789-0123456789"
USERS = {"alice": ("visitor", "alice-pass-1"), "carol": ("agent", "carol-pass-1")}
NODE = None


def _node_env():
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    return env


def _have_packages():
    r = subprocess.run([NODE, "--input-type=module", "-e", "await import('next-auth/jwt'); await import('@auth/core/jwt')"],
                       cwd=INTEROP_DIR, capture_output=True, env=_node_env(), timeout=60)
    return r.returncode == 0


def setUpModule():
    global NODE
    NODE, npm = shutil.which("node"), shutil.which("npm")
    if not NODE or not npm:
        raise unittest.SkipTest("node/npm not installed: the NextAuth / Auth.js tests need them")
    if not _have_packages():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR, capture_output=True,
                           env=_node_env(), timeout=600)
        if r.returncode != 0 or not _have_packages():
            raise unittest.SkipTest(f"npm ci in tests/interop failed ({r.returncode}): "
                                    f"{(r.stdout + r.stderr).decode(errors='replace')[-600:]}")


def tool(**req):
    r = subprocess.run([NODE, TOOL, json.dumps(req)], cwd=INTEROP_DIR, capture_output=True, env=_node_env(),
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"jwe_tool {req.get('op')} failed: {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def flip(token, part, at):
    """The token with one base64url character of part `part` changed."""
    parts = token.split(".")
    p = parts[part]
    parts[part] = p[:at] + ("A" if p[at] != "A" else "B") + p[at + 1:]
    return ".".join(parts)


class JweFormat:
    """Mixed into a ServerTestCase: FORMAT, COOKIE, SECRET_VAR."""

    FORMAT = None
    COOKIE = None
    SECRET_VAR = None
    WRONG_ENC = None
    PRODUCTION = False

    @classmethod
    def setUpClass(cls):
        env = {"SESSION_FORMAT": cls.FORMAT, cls.SECRET_VAR: f"{SECRET},{OLD}"}
        if cls.PRODUCTION:
            env["TESSERA_ENV"] = "production"
        cls.srv = TesseraServer(strategy="jwt", secret=None, env=env)
        cls.track_class(cls.srv)
        for name, (role, pw) in USERS.items():
            cls.srv.add_user(name, role, pw)
        cls.srv.start()
        cls.ids = {}
        for name, (_, pw) in USERS.items():
            r = cls.srv.browser().login(name, pw)
            assert r.status == 200, r
            cls.ids[name] = r.json()["userId"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    # -- helpers
    def salt(self):
        return self.COOKIE if self.FORMAT == "authjs" else None

    def encode(self, token, secret=SECRET, max_age=None):
        req = dict(op="encode", format=self.FORMAT, token=token, secret=secret, salt=self.salt())
        if max_age is not None:
            req["maxAge"] = max_age
        return tool(**req)["token"]

    def decode(self, token, secret=SECRET):
        return tool(op="decode", format=self.FORMAT, token=token, secret=secret, salt=self.salt())["payload"]

    def session(self, cookie_header):
        return Browser(self.srv.port).get("/api/auth/session", cookies=cookie_header)

    def cookie(self, token):
        return f"{self.COOKIE}={token}"

    # -- tests
    def test_1_package_cookie_accepted_role_from_users_table(self):
        uid = self.ids["alice"]
        token = self.encode({"name": "Alice", "email": "alice@example.com", "picture": None, "sub": uid})
        self.assertEqual(self.decode(token)["sub"], uid, "the package reads its own token")
        r = self.assertStatus(self.session(self.cookie(token)), 200)
        self.assertEqual(r.json()["userId"], uid)
        self.assertEqual(r.json()["role"], "visitor", "no role claim: the users table's role")
        r = self.assertStatus(Browser(self.srv.port).get("/auth", cookies=self.cookie(token)), 204)
        self.assertEqual(r.header("X-Session-User"), uid)
        b = Browser(self.srv.port)
        pid = self.assertStatus(b.post("/api/prechats", {"topic": "from next"}, cookies=self.cookie(token)),
                                201).json()["id"]
        self.assertStatus(b.get(f"/api/prechats/{pid}/meta", cookies=self.cookie(token)), 200)
        self.assertJsonError(b.get(f"/api/prechats/{pid}/meta", cookies=False), 401)
        # a role claim is taken as it is
        token = self.encode({"sub": uid, "role": "agent"})
        self.assertEqual(self.assertStatus(self.session(self.cookie(token)), 200).json()["role"], "agent")
        # the other format's cookie name is not read
        other = "authjs.session-token" if self.FORMAT == "nextauth" else "next-auth.session-token"
        self.assertJsonError(self.session(f"{other}={token}"), 401)

    def test_2_chunked_cookie_joined(self):
        uid = self.ids["carol"]
        token = self.encode({"sub": uid, "picture": "https://img.example.com/" + "p" * 5000})
        chunks = tool(op="chunk", format=self.FORMAT, name=self.COOKIE, value=token)["cookies"]
        self.assertEqual([n for n, _ in chunks], [f"{self.COOKIE}.0", f"{self.COOKIE}.1"], "split by the package")
        header = "; ".join(f"{n}={v}" for n, v in chunks)
        r = self.assertStatus(self.session(f"other=1; {header}"), 200)
        self.assertEqual((r.json()["userId"], r.json()["role"]), (uid, "agent"))
        # the order of the Cookie header does not matter, the indexes do
        self.assertStatus(self.session("; ".join(f"{n}={v}" for n, v in reversed(chunks))), 200)
        self.assertJsonError(self.session(f"{chunks[1][0]}={chunks[1][1]}"), 401)  # .0 missing
        self.assertJsonError(self.session(f"{chunks[0][0]}={chunks[0][1]}"), 401)  # .1 missing
        # the unchunked cookie wins over stale chunks
        small = self.encode({"sub": self.ids["alice"]})
        r = self.assertStatus(self.session(f"{header}; {self.cookie(small)}"), 200)
        self.assertEqual(r.json()["userId"], self.ids["alice"])

    def test_3_tessera_login_decoded_by_package(self):
        b = self.srv.browser()
        b.jar[f"{self.COOKIE}.0"] = "stale"
        b.jar[f"{self.COOKIE}.1"] = "stale"
        r = self.assertStatus(b.login("carol", USERS["carol"][1]), 200)
        sets = {n: (v, a) for n, v, a in b.last_set_cookies}
        self.assertIn(self.COOKIE, sets, b.last_set_cookies)
        value, attrs = sets[self.COOKIE]
        self.assertTrue(attrs.get("httponly") and attrs.get("path") == "/" and attrs.get("samesite") == "Lax", attrs)
        self.assertEqual(bool(attrs.get("secure")), self.PRODUCTION)
        for stale in (f"{self.COOKIE}.0", f"{self.COOKIE}.1"):
            self.assertIn(stale, sets, "stale chunks are cleared")
            self.assertEqual(sets[stale][1].get("max-age"), "0")
        payload = self.decode(value)
        self.assertIsNotNone(payload, "the package's decode() accepts tessera's token")
        self.assertEqual(payload["sub"], self.ids["carol"])
        self.assertEqual(payload["role"], "agent")
        self.assertTrue(payload["jti"])
        self.assertEqual(payload["exp"] - payload["iat"], 30 * 86400)
        self.assertIsNone(self.decode(value, secret=OLD), "encrypted with the first secret only")
        self.assertEqual(self.assertStatus(b.get("/api/auth/session"), 200).json()["userId"], self.ids["carol"])

    def test_4_bad_tokens_refused_by_both(self):
        uid = self.ids["alice"]
        good = self.encode({"sub": uid})
        bad = {
            "tampered ciphertext": flip(good, 3, 5),
            "tampered tag": flip(good, 4, 3),
            "tampered iv": flip(good, 2, 2),
            "expired": self.encode({"sub": uid}, max_age=-20),
            "wrong secret": self.encode({"sub": uid}, secret=OTHER),
            "wrong enc": tool(op="raw", format=self.FORMAT, secret=SECRET, salt=self.salt(), enc=self.WRONG_ENC,
                              payload={"sub": uid})["token"],
        }
        for what, token in bad.items():
            self.assertJsonError(self.session(self.cookie(token)), 401, what)
            self.assertJsonError(Browser(self.srv.port).get("/auth", cookies=self.cookie(token)), 401, what)
            self.assertIsNone(self.decode(token), f"{what}: the package refuses it too")
        self.assertStatus(self.session(self.cookie(good)), 200)

    def test_5_rotation(self):
        token = self.encode({"sub": self.ids["alice"]}, secret=OLD)
        self.assertStatus(self.session(self.cookie(token)), 200)

    def test_6_logout_revokes(self):
        uid = self.ids["alice"]
        token = self.encode({"sub": uid, "picture": "x" * 5000})
        chunks = tool(op="chunk", format=self.FORMAT, name=self.COOKIE, value=token)["cookies"]
        header = "; ".join(f"{n}={v}" for n, v in chunks)
        other = self.encode({"sub": uid})
        self.assertStatus(self.session(header), 200)
        b = Browser(self.srv.port)
        self.assertStatus(b.post("/api/auth/logout", cookies=header), 204)
        cleared = {n for n, v, a in b.last_set_cookies if a.get("max-age") == "0"}
        self.assertEqual(cleared, {self.COOKIE, f"{self.COOKIE}.0", f"{self.COOKIE}.1"})
        wait_until(lambda: self.session(header).status == 401, 1.0, "the logged-out token refused")
        self.assertStatus(self.session(self.cookie(other)), 200, "another token of the user")

    def test_7_cookie_name(self):
        want = ("__Secure-" if self.PRODUCTION else "") + ("next-auth" if self.FORMAT == "nextauth" else "authjs")
        self.assertEqual(self.COOKIE, want + ".session-token")


class NextAuth(JweFormat, ServerTestCase):
    FORMAT = "nextauth"
    COOKIE = "next-auth.session-token"
    SECRET_VAR = "NEXTAUTH_SECRET"
    WRONG_ENC = "A256CBC-HS512"


class AuthJs(JweFormat, ServerTestCase):
    FORMAT = "authjs"
    COOKIE = "authjs.session-token"
    SECRET_VAR = "AUTH_SECRET"
    WRONG_ENC = "A128CBC-HS256"


class NextAuthProduction(NextAuth):
    COOKIE = "__Secure-next-auth.session-token"
    PRODUCTION = True


class AuthJsProduction(AuthJs):
    COOKIE = "__Secure-authjs.session-token"
    PRODUCTION = True


class ConfigRefusals(unittest.TestCase):
    def serve(self, *args, env=None):
        tmp = tempfile.mkdtemp(prefix="tessera-jwe-cfg-")
        try:
            e = dict(os.environ)
            for k in ("SESSION_SECRET", "NEXTAUTH_SECRET", "AUTH_SECRET", "SESSION_FORMAT", "SESSION_STRATEGY"):
                e.pop(k, None)
            e.update({"NEXTAUTH_SECRET": SECRET, **(env or {})})
            return subprocess.run([tessera_bin(), "serve", "--listen", "127.0.0.1:1", "--database",
                                   f"sqlite:{os.path.join(tmp, 't.db')}", *args], env=e, capture_output=True,
                                  timeout=30, cwd=tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def refused(self, r, *words):
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        for w in words:
            self.assertIn(w, err)

    def test_redis_refused(self):
        for f in ("nextauth", "authjs"):
            self.refused(self.serve("--strategy", "redis", "--redis", "redis://127.0.0.1:1", "--session-format", f),
                         f"SESSION_FORMAT={f}", "redis")

    def test_database_sessions_need_the_apps_tables(self):
        """db / cached read NextAuth's Prisma tables: without them (no app migrated this database) tessera does
        not start, with one line naming what is missing (test_nextauth_db.py runs them with the tables)."""
        for s in ("db", "cached"):
            r = self.serve("--strategy", s, env={"SESSION_FORMAT": "nextauth"})
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 1, err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn('"Session"', err)
            self.assertIn("Prisma migrations", err)

    def test_unknown_format(self):
        self.refused(self.serve("--strategy", "jwt", "--session-format", "nextauth5"), "--session-format",
                     "express, nextauth or authjs")
        self.refused(self.serve("--strategy", "jwt", env={"SESSION_FORMAT": "Express"}), "SESSION_FORMAT")


if __name__ == "__main__":
    main()

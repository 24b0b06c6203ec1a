"""Cross-site request forgery and identity fields, over HTTP.

- CrossSite: a page on another site holds the victim's cookie (SameSite=Lax sends it on top-level POSTs and
  same-site requests) but cannot set Content-Type: application/json or an Origin of ours. Every state-changing
  request (pre-chats, messages, join, close, logout everywhere, login) from another origin is 403, and a body of
  another type (text/plain, a form) is 415, so nothing is created, changed or logged out; the same requests
  from our own origin, or from curl without an Origin, keep working. GET and HEAD change nothing.
- AllowedOrigins: TESSERA_ALLOWED_ORIGINS / --allowed-origins replace the own-host default and pin the scheme;
  bad values are refused at start-up in one line.
- Identity: a stored session (SQLite, PostgreSQL, Redis; db, cached and redis strategies) or a signed JWT whose
  userId or role holds "\\r\\nX-Evil: 1" is no session: 401 on /auth (no X-Evil header line reaches nginx) and
  on an API route, and one line in the log that names neither the value nor the session.
"""
import json
import os
import shutil
import sqlite3
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (PostgresServer, RedisClient, RedisServer, ServerTestCase, TesseraServer,  # noqa: E402
                             make_jwt, raw_http, sign_express_cookie, tessera_bin, wait_until)

SIGNING_SECRET = "integration-secret-1"  # the first of the harness's DEFAULT_SECRET
EVIL_SITE = "https://evil.example"
EVIL = "\r\nX-Evil: 1"
HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))


class CrossSite(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db"))
        cls.srv.add_user("vera", "visitor", "vera-pw")
        cls.srv.add_user("adam", "agent", "adam-pw")
        cls.srv.add_user("mallory", "visitor", "mallory-pw")
        cls.srv.start()
        cls.own = f"http://127.0.0.1:{cls.srv.port}"

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    @property
    def server(self):
        return self.srv

    def user(self, name, pw):
        b = self.srv.browser(name)
        self.assertStatus(b.login(name, pw), 200)
        return b

    def new_prechat(self, b):
        return self.assertStatus(b.post("/api/prechats", {"topic": "t"}), 201).json()["id"]

    def assertRefused(self, r, status):
        doc = self.assertJsonError(r, status)
        self.assertEqual(r.header_all("Set-Cookie"), [], r)
        return doc

    # -- what the review found, one by one
    def test_text_plain_cross_site_posts_create_nothing(self):
        b = self.user("vera", "vera-pw")
        first = self.new_prechat(b)
        body = '{"topic":"forged"}'
        for headers in ({"Origin": EVIL_SITE, "Content-Type": "text/plain"},
                        {"Origin": EVIL_SITE, "Content-Type": "application/json"},
                        {"Origin": EVIL_SITE, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}):
            with self.subTest(headers):
                self.assertRefused(b.request("POST", "/api/prechats", body=body, headers=headers), 403)
        # no Origin at all (an old browser, a form): the body type alone keeps it out
        for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x"):
            with self.subTest(ctype):
                r = b.request("POST", "/api/prechats", body=body, headers={"Content-Type": ctype})
                self.assertEqual(self.assertRefused(r, 415)["error"], "unsupported_media_type")
        self.assertEqual(self.new_prechat(b), first + 1, "a refused request created a pre-chat")

        msgs = f"/api/prechats/{first}/messages"
        self.assertRefused(b.request("POST", msgs, body='{"body":"forged"}', headers={"Content-Type": "text/plain"}),
                           415)
        self.assertRefused(b.request("POST", msgs, body='{"body":"forged"}',
                                     headers={"Content-Type": "application/json", "Origin": EVIL_SITE}), 403)
        self.assertEqual(b.get(f"/api/prechats/{first}/meta").json()["messageCount"], 0)
        self.assertStatus(b.post(msgs, {"body": "mine"}), 201)  # and the real one works
        self.assertEqual(b.get(f"/api/prechats/{first}/meta").json()["messageCount"], 1)

    def test_bodyless_posts_from_another_site(self):
        vera, adam = self.user("vera", "vera-pw"), self.user("adam", "adam-pw")
        pid = self.new_prechat(vera)
        for headers in ({"Origin": EVIL_SITE}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"},
                        {"Origin": f"http://127.0.0.1:{self.srv.port + 1 if self.srv.port < 65535 else 1}"}):
            with self.subTest(headers):
                self.assertRefused(adam.request("POST", f"/api/prechats/{pid}/join", headers=headers), 403)
                self.assertRefused(vera.request("POST", f"/api/prechats/{pid}/close", headers=headers), 403)
                self.assertRefused(vera.request("POST", "/api/auth/logout?everywhere=1", headers=headers), 403)
                self.assertRefused(vera.request("POST", "/api/auth/logout", headers=headers), 403)
        self.assertEqual(vera.get(f"/api/prechats/{pid}").json()["status"], "waiting")
        self.assertStatus(vera.get("/api/auth/session"), 200)  # still logged in
        # from our own page (or curl, without Origin) the same requests work
        self.assertStatus(adam.request("POST", f"/api/prechats/{pid}/join", headers={"Origin": self.own}), 200)
        self.assertStatus(vera.request("POST", f"/api/prechats/{pid}/close", headers={"Sec-Fetch-Site": "same-origin"}),
                          200)
        self.assertStatus(vera.post("/api/auth/logout?everywhere=1"), 204)
        self.assertJsonError(vera.get("/api/auth/session", cookies=True), 401)

    def test_login_csrf(self):
        """The attacker's own credentials in a text/plain body shaped as JSON: the victim must not end up
        logged into the attacker's account."""
        body = '{"username":"mallory","password":"mallory-pw","x":"="}'
        victim = self.srv.browser("victim")
        for headers, status in (({"Origin": EVIL_SITE, "Content-Type": "text/plain"}, 403),
                                ({"Content-Type": "text/plain"}, 415),
                                ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
                                ({"Origin": EVIL_SITE, "Content-Type": "application/json"}, 403),
                                ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, 403)):
            with self.subTest(headers):
                self.assertRefused(victim.request("POST", "/api/auth/login", body=body, headers=headers), status)
                self.assertEqual(victim.jar, {})
        r = victim.request("POST", "/api/auth/login", body=body,
                           headers={"Origin": self.own, "Content-Type": "application/json; charset=utf-8"})
        self.assertStatus(r, 200)

    # -- the origin rule's corners
    def test_own_origin_by_host_header(self):
        b = self.user("vera", "vera-pw")
        port = self.srv.port
        ok = [(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"), (f"localhost:{port}", f"http://LOCALHOST:{port}"),
              ("chat.example", "https://chat.example"),  # behind a proxy that ends TLS and forwards Host
              ("chat.example:443", "https://chat.example"), ("Chat.Example", "http://chat.example:80")]
        for host, origin in ok:
            with self.subTest(host=host, origin=origin):
                r = b.request("POST", "/api/prechats", body={"topic": "t"}, headers={"Host": host, "Origin": origin})
                self.assertStatus(r, 201)
        bad = [("chat.example", "https://chat.example:8443"),  # the proxy dropped the port: forward $http_host
               ("chat.example", "https://blog.chat.example"),  # a subdomain is another origin
               ("chat.example", "https://example"),
               ("chat.example", "https://chat.example.evil.example"),
               ("chat.example", "https://chat.example/"),
               ("chat.example", "chat.example")]
        for host, origin in bad:
            with self.subTest(host=host, origin=origin):
                r = b.request("POST", "/api/prechats", body={"topic": "t"}, headers={"Host": host, "Origin": origin})
                self.assertRefused(r, 403)
        # two Origin headers
        status, raw = raw_http(port, (f"POST /api/auth/logout HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                      f"Origin: http://127.0.0.1:{port}\r\nOrigin: {EVIL_SITE}\r\n"
                                      "Content-Length: 0\r\nConnection: close\r\n\r\n").encode())
        self.assertEqual(status, 403, raw)

    def test_sec_fetch_site_without_origin(self):
        b = self.user("vera", "vera-pw")
        for site, status in (("same-origin", 201), ("none", 201), ("same-site", 403), ("cross-site", 403),
                             ("CROSS-SITE", 403), ("bogus", 403)):
            with self.subTest(site):
                self.assertStatus(b.request("POST", "/api/prechats", body={"topic": "t"},
                                            headers={"Sec-Fetch-Site": site}), status)
        # same-site with the sibling's Origin: the Origin decides, and a sibling is not us
        r = b.request("POST", "/api/prechats", body={"topic": "t"},
                      headers={"Sec-Fetch-Site": "same-site", "Origin": "http://blog.127.0.0.1"})
        self.assertRefused(r, 403)

    def test_get_and_head_change_nothing(self):
        vera, adam = self.user("vera", "vera-pw"), self.user("adam", "adam-pw")
        pid = self.new_prechat(vera)
        for method in ("GET", "HEAD"):
            for b, path in ((adam, f"/api/prechats/{pid}/join"), (vera, f"/api/prechats/{pid}/close"),
                            (vera, "/api/auth/logout"), (vera, "/api/auth/logout?everywhere=1"),
                            (vera, f"/api/prechats/{pid}/messages?body=x")):
                with self.subTest(method=method, path=path):
                    r = b.request(method, path, headers={"Origin": EVIL_SITE})
                    if path.endswith("/messages?body=x"):
                        self.assertStatus(r, 200)  # the message list: a read
                    else:
                        self.assertStatus(r, 405)
        for method in ("PUT", "PATCH", "DELETE"):
            with self.subTest(method):
                self.assertStatus(vera.request(method, f"/api/prechats/{pid}", body={"status": "closed"}), 405)
        meta = vera.get(f"/api/prechats/{pid}/meta").json()
        self.assertEqual((meta["status"], meta["messageCount"]), ("waiting", 0))
        self.assertStatus(vera.get("/api/auth/session"), 200)
        # reads from another site's page pass (the browser keeps the answer from that page: no CORS here)
        r = vera.get(f"/api/prechats/{pid}/meta", headers={"Origin": EVIL_SITE, "Sec-Fetch-Site": "cross-site"})
        self.assertStatus(r, 200)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))

    def test_curl_without_origin_keeps_working(self):
        """The README's curl calls: JSON bodies with -H 'Content-Type: application/json', bodyless -X POST."""
        b = self.srv.browser("curl")
        r = b.request("POST", "/api/auth/login", body='{"username":"vera","password":"vera-pw"}',
                      headers={"Content-Type": "application/json"})
        self.assertStatus(r, 200)
        pid = self.assertStatus(b.request("POST", "/api/prechats", body='{"topic":"billing question"}',
                                          headers={"Content-Type": "application/json"}), 201).json()["id"]
        self.assertStatus(b.request("POST", f"/api/prechats/{pid}/close"), 200)
        self.assertStatus(b.request("POST", "/api/auth/logout"), 204)


class AllowedOrigins(ServerTestCase):
    def start(self, env=None, args=()):
        srv = self.track(TesseraServer(strategy="db", env=env, extra_args=args))
        srv.add_user("vera", "visitor", "vera-pw")
        srv.start()
        b = srv.browser()
        self.assertStatus(b.login("vera", "vera-pw"), 200)  # no Origin: as curl
        return srv, b

    def post(self, b, origin):
        return b.request("POST", "/api/prechats", body={"topic": "t"},
                         headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})

    def test_list_replaces_own_host_and_pins_scheme(self):
        srv, b = self.start({"TESSERA_ALLOWED_ORIGINS": "https://app.example.com , http://localhost:3000"})
        self.assertStatus(self.post(b, "https://app.example.com"), 201)
        self.assertStatus(self.post(b, "https://APP.example.com:443"), 201)
        self.assertStatus(self.post(b, "http://localhost:3000"), 201)
        for origin in ("http://app.example.com", "https://api.example.com", f"http://127.0.0.1:{srv.port}",
                       "http://localhost:3001", "null"):
            with self.subTest(origin):
                self.assertJsonError(self.post(b, origin), 403)

    def test_flag_overrides_environment(self):
        srv, b = self.start({"TESSERA_ALLOWED_ORIGINS": "https://env.example"}, ["--allowed-origins",
                                                                               "https://flag.example"])
        self.assertStatus(self.post(b, "https://flag.example"), 201)
        self.assertJsonError(self.post(b, "https://env.example"), 403)

    def test_bad_lists_exit_2_with_one_line(self):
        env = {k: v for k, v in os.environ.items() if k not in ("TESSERA_ALLOWED_ORIGINS",)}
        env["SESSION_SECRET"] = "x" * 32
        tmp = f"sqlite:/tmp/tessera-csrf-{uuid.uuid4().hex}.db"
        for value in ("*", "null", "https://a.example/", "https://a.example,", "a.example", "https://*.example",
                      ",".join(f"https://h{i}.example" for i in range(17))):
            for how in ("env", "flag"):
                with self.subTest(value=value, how=how):
                    e = dict(env)
                    args = [tessera_bin(), "serve", "--listen", "127.0.0.1:1", "--database", tmp]
                    if how == "env":
                        e["TESSERA_ALLOWED_ORIGINS"] = value
                    else:
                        args += ["--allowed-origins", value]
                    import subprocess
                    r = subprocess.run(args, env=e, capture_output=True, timeout=10)
                    err = r.stderr.decode(errors="replace")
                    self.assertEqual(r.returncode, 2, err)
                    lines = [ln for ln in err.splitlines() if ln.strip()]
                    self.assertEqual(len(lines), 1, err)
                    self.assertIn("TESSERA_ALLOWED_ORIGINS" if how == "env" else "--allowed-origins", lines[0])


class Identity(ServerTestCase):
    """A session whose identity would split a header line is no session, in every strategy and store."""

    def check_refused(self, srv, cookie, source):
        """`cookie` ("name=value") carries a bad identity: 401 everywhere, no injected header, one log line."""
        port = srv.port
        status, raw = raw_http(port, (f"GET /auth HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                                      "Connection: close\r\n\r\n").encode())
        self.assertEqual(status, 401, raw)
        self.assertNotIn(b"x-evil", raw.lower())
        b = srv.browser()
        for path in ("/api/auth/session", "/api/prechats/1/meta", "/api/prechats?status=waiting"):
            with self.subTest(path):
                self.assertJsonError(b.get(path, cookies=cookie), 401)
        line = f"tessera: session refused: {source}"
        wait_until(lambda: line in srv.log_text(), 5, f"'{line}' in the log")
        log = srv.log_text()
        self.assertNotIn("X-Evil", log)
        self.assertNotIn(cookie.partition("=")[2][:20], log)

    def docs(self):
        exp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))
        cookie = {"originalMaxAge": 3600000, "expires": exp, "httpOnly": True, "path": "/"}
        return [{"cookie": cookie, "userId": "1" + EVIL, "role": "visitor"},
                {"cookie": cookie, "userId": "1", "role": EVIL}]

    def forge_all(self, srv, write):
        """Writes each bad document under a fresh id with `write(sid, doc)` and checks it is refused."""
        for doc in self.docs():
            sid = uuid.uuid4().hex
            write(sid, json.dumps(doc))
            with self.subTest(doc=doc):
                self.check_refused(srv, f"{srv.cookie_name}={sign_express_cookie(sid, SIGNING_SECRET)}",
                                   "a stored session")

    def sqlite_writer(self, srv):
        path = srv.database.partition(":")[2]

        def write(sid, doc):
            with sqlite3.connect(path, timeout=10) as db:
                db.execute("INSERT INTO session (sid, sess, expire, user_id) VALUES (?, ?, ?, ?)",
                           (sid, doc, int(time.time() * 1000) + 3600000, "1"))
        return write

    def test_sqlite_db_and_cached(self):
        for strategy in ("db", "cached"):
            with self.subTest(strategy):
                srv = self.track(TesseraServer(strategy=strategy))
                srv.add_user("vera", "visitor", "vera-pw")
                srv.start()
                self.forge_all(srv, self.sqlite_writer(srv))
                # a good session of the same server still works, on /auth and the API
                b = srv.browser()
                self.assertStatus(b.login("vera", "vera-pw"), 200)
                r = self.assertStatus(b.get("/auth"), 204)
                self.assertEqual((r.header("X-Session-User"), r.header("X-Session-Role")), ("1", "visitor"))

    def test_jwt_claims(self):
        srv = self.track(TesseraServer(strategy="jwt"))
        srv.start()
        now = int(time.time())
        for claims in ({"userId": "1" + EVIL, "iat": now, "exp": now + 3600},
                       {"userId": "1", "role": EVIL, "iat": now, "exp": now + 3600},
                       {"userId": "1", "role": "agent\n", "iat": now, "exp": now + 3600}):
            with self.subTest(claims=claims):
                self.check_refused(srv, f"session-token={make_jwt(claims, SIGNING_SECRET)}", "a token")
        good = make_jwt({"userId": "1", "role": "visitor", "iat": now, "exp": now + 3600}, SIGNING_SECRET)
        r = self.assertStatus(srv.browser().get("/auth", cookies=f"session-token={good}"), 204)
        self.assertEqual(r.header("X-Session-User"), "1")

    @unittest.skipUnless(HAVE_PG, "PostgreSQL 15 not installed (scripts/setup.sh installs it)")
    def test_postgres_store(self):
        pg = PostgresServer()
        self.addCleanup(pg.cleanup)
        pg.start()
        srv = self.track(TesseraServer(strategy="db", database=pg.url))
        srv.start()

        def write(sid, doc):
            pg.psql(f"INSERT INTO session (sid, sess, expire) VALUES ('{sid}', "
                    f"'{doc.replace(chr(39), chr(39) * 2)}'::json, now() + interval '1 hour')")
        self.forge_all(srv, write)

    @unittest.skipUnless(HAVE_REDIS, "redis-server not installed (scripts/setup.sh installs it)")
    def test_redis_store(self):
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.start()
        srv = self.track(TesseraServer(strategy="redis", extra_args=["--redis", redis.url]))
        srv.start()
        client = RedisClient(redis.port)
        self.addCleanup(client.close)
        self.forge_all(srv, lambda sid, doc: client.command("SET", f"session:{sid}", doc, "EX", "3600"))


if __name__ == "__main__":
    unittest.main(verbosity=2)

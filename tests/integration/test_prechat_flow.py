"""The whole pre-chat flow over HTTP against a real `tessera serve`, and the bad-input cases, once per session
strategy (db, jwt, cached), each with its own server and SQLite database.

Users: two visitors (alice, bob) and two agents (carol, dave). alice opens pre-chats, carol takes them; bob and
dave are the "anyone else" who must get 404.
"""

import re
import socket
import threading
import time
import urllib.parse

from tessera_harness import (Browser, HarnessError, ServerTestCase, TesseraServer, main, make_jwt, raw_http,
                             send_large_body, sign_express_cookie)

USERS = {
    "alice": ("visitor", "alice-pass-1"),
    "bob": ("visitor", "bob-pass-1"),
    "carol": ("agent", "carol-pass-1"),
    "dave": ("agent", "dave-pass-1"),
}
STRONG_ETAG = re.compile(r'^"[^"]*"$')


class PrechatFlowTests:
    """Mixed into one TestCase per strategy (below)."""

    strategy = None

    @classmethod
    def setUpClass(cls):
        cls.server = cls.track_class(TesseraServer(strategy=cls.strategy))
        try:
            for name, (role, password) in USERS.items():
                cls.server.add_user(name, role, password)
            cls.server.start()
        except Exception:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.finish()

    def setUp(self):
        self.assertTrue(self.server.alive(), "server died in an earlier test")

    def tearDown(self):
        # every test leaves the server up and answering
        if self.server.alive():
            r = self.server.browser().get("/healthz", cookies=False)
            self.assertEqual(r.status, 200, f"/healthz after the test: {r!r}")
        else:
            self.fail(f"server exited with {self.server.proc.returncode}")

    # -- helpers
    def login(self, name):
        b = self.server.browser(name)
        r = b.login(name, USERS[name][1])
        self.assertStatus(r, 200, f"login {name}")
        self.assertIn(self.server.cookie_name, b.jar, f"login {name} set no {self.server.cookie_name} cookie: {r!r}")
        return b

    def open_prechat(self, browser, topic="billing"):
        r = browser.post("/api/prechats", {"topic": topic})
        self.assertStatus(r, 201, "open pre-chat")
        doc = r.json()
        self.assertIn("id", doc, r)
        self.assertEqual(doc.get("status"), "waiting", r)
        return doc["id"]

    def post_message(self, browser, pid, body):
        r = browser.post(f"/api/prechats/{pid}/messages", {"body": body})
        self.assertStatus(r, 201, "post message")
        return r.json()

    def meta(self, browser, pid, **kw):
        return browser.get(f"/api/prechats/{pid}/meta", **kw)

    def assertNoPosition(self, doc):
        self.assertIn("queuePosition", doc)
        self.assertIn(doc["queuePosition"], (None, 0), f"queuePosition when not waiting: {doc}")

    # -- the flow
    def test_01_ops_endpoints(self):
        b = self.server.browser()
        self.assertStatus(b.get("/healthz"), 200)
        self.assertStatus(b.get("/readyz"), 200)
        r = self.assertStatus(b.get("/metrics"), 200)
        text = r.body.decode()
        self.assertRegex(text, r"(?m)^tessera_store_gets_total(\{[^}]*\})? \d+")
        self.assertRegex(text, r"(?m)^tessera_auth_rejected_early_total(\{[^}]*\})? \d+")

    def test_02_login_session_logout(self):
        anon = self.server.browser("anon")
        self.assertJsonError(anon.get("/api/auth/session"), 401)
        self.assertStatus(anon.get("/auth"), 401)
        # bad credentials: wrong password and unknown user look the same
        self.assertJsonError(anon.login("alice", "wrong"), 401)
        self.assertJsonError(anon.login("nobody", "whatever"), 401)
        self.assertNotIn(self.server.cookie_name, anon.jar)

        b = self.server.browser("alice")
        r = b.login("alice", USERS["alice"][1])
        self.assertStatus(r, 200)
        doc = r.json()
        self.assertEqual(doc.get("role"), "visitor", r)
        self.assertIn("userId", doc, r)
        user_id = doc["userId"]
        cookies = [c for c in b.last_set_cookies if c[0] == self.server.cookie_name]
        self.assertEqual(len(cookies), 1, r)
        _, value, attrs = cookies[0]
        self.assertTrue(value)
        self.assertIs(attrs.get("httponly"), True, f"HttpOnly: {r!r}")
        self.assertEqual(str(attrs.get("samesite", "")).lower(), "lax", r)
        self.assertEqual(attrs.get("path"), "/", r)
        self.assertRegex(str(attrs.get("max-age", "")), r"^[1-9]\d*$", r)
        self.assertNotIn("secure", attrs, "Secure outside production")

        r = self.assertStatus(b.get("/api/auth/session"), 200)
        s = r.json()
        self.assertEqual(s.get("userId"), user_id, r)
        self.assertEqual(s.get("role"), "visitor", r)
        self.assertIn("expiresAt", s, r)
        self.assertTrue(s["expiresAt"], r)

        r = self.assertStatus(b.get("/auth"), 204)
        self.assertEqual(r.header("X-Session-User"), str(user_id), r)
        self.assertEqual(r.header("X-Session-Role"), "visitor", r)
        self.assertEqual(r.body, b"")

        # a new session id on every login, also for the same user
        b2 = self.login("alice")
        self.assertNotEqual(b2.jar[self.server.cookie_name], value)
        b.post("/api/auth/login", {"username": "alice", "password": USERS["alice"][1]})
        self.assertNotEqual(b.jar[self.server.cookie_name], value, "login did not rotate the session id")
        value = b.jar[self.server.cookie_name]

        # logout: 204, cookie cleared, old cookie refused (jwt: its id on the database's deny list)
        r = b.post("/api/auth/logout")
        self.assertStatus(r, 204)
        cleared = [c for c in b.last_set_cookies if c[0] == self.server.cookie_name]
        self.assertEqual(len(cleared), 1, f"logout must clear the cookie: {r!r}")
        self.assertEqual(cleared[0][2].get("max-age"), "0", r)
        self.assertNotIn(self.server.cookie_name, b.jar)
        self.assertJsonError(b.get("/api/auth/session"), 401)
        old = f"{self.server.cookie_name}={value}"
        self.assertJsonError(b.get("/api/auth/session", cookies=old), 401)
        self.assertStatus(b.get("/auth", cookies=old), 401)
        # the other session of the same user is untouched
        self.assertStatus(b2.get("/api/auth/session"), 200)

    def test_03_full_prechat_flow(self):
        alice, bob, carol, dave = (self.login(n) for n in ("alice", "bob", "carol", "dave"))
        anon = self.server.browser("anon")

        # roles: agents do not open, visitors do not list the queue
        self.assertJsonError(carol.post("/api/prechats", {"topic": "x"}), 403)
        self.assertJsonError(alice.get("/api/prechats?status=waiting"), 403)
        self.assertJsonError(anon.post("/api/prechats", {"topic": "x"}), 401)

        pa = self.open_prechat(alice, "billing")
        pb = self.open_prechat(alice, "shipping")
        self.assertNotEqual(pa, pb)

        # the queue, oldest first, 1-based positions
        r = self.assertStatus(carol.get("/api/prechats?status=waiting"), 200)
        queue = r.json().get("prechats")
        self.assertIsInstance(queue, list, r)
        ids = [p.get("id") for p in queue]
        self.assertIn(pa, ids)
        self.assertIn(pb, ids)
        self.assertLess(ids.index(pa), ids.index(pb), "queue must be oldest first")
        for i, p in enumerate(queue):
            self.assertEqual(p.get("queuePosition"), i + 1, queue)
            self.assertIn("topic", p)
        self.assertEqual(queue[ids.index(pa)]["topic"], "billing")

        # meta while waiting: visitor and any agent may read, another visitor and anonymous may not
        r = self.assertStatus(self.meta(alice, pa), 200)
        m = r.json()
        for k in ("id", "status", "queuePosition", "messageCount", "lastMessageId", "updatedAt"):
            self.assertIn(k, m, r)
        self.assertEqual(m["id"], pa)
        self.assertEqual(m["status"], "waiting")
        self.assertEqual(m["queuePosition"], ids.index(pa) + 1)
        self.assertEqual(m["messageCount"], 0)
        self.assertIn(m["lastMessageId"], (None, 0))
        etag = r.header("ETag")
        self.assertIsNotNone(etag, r)
        self.assertRegex(etag, STRONG_ETAG, "strong ETag expected")
        pos_b = self.meta(alice, pb).json()["queuePosition"]
        self.assertEqual(pos_b, m["queuePosition"] + 1)
        self.assertStatus(self.meta(dave, pa), 200, "any agent may read a waiting pre-chat")
        self.assertJsonError(self.meta(bob, pa), 404, "another visitor")
        self.assertJsonError(self.meta(anon, pa), 401, "no session")

        # carol takes pa; dave cannot take it any more
        r = self.assertStatus(carol.post(f"/api/prechats/{pa}/join"), 200)
        self.assertEqual(r.json().get("status"), "active", r)
        self.assertEqual(r.json().get("id"), pa, r)
        # another agent may not see it any more: not found and not yours look the same
        self.assertJsonError(dave.post(f"/api/prechats/{pa}/join"), 404, "another agent's pre-chat")
        self.assertJsonError(carol.post(f"/api/prechats/{pa}/join"), 409, "her own: she may see it")
        self.assertJsonError(alice.post(f"/api/prechats/{pb}/join"), 403, "visitors do not join")

        r = self.assertStatus(self.meta(alice, pa), 200)
        m2 = r.json()
        self.assertEqual(m2["status"], "active")
        self.assertNoPosition(m2)
        self.assertNotEqual(r.header("ETag"), etag, "status change must change the ETag")
        self.assertEqual(self.meta(alice, pb).json()["queuePosition"], pos_b - 1, "pb moves up once pa is taken")
        self.assertNotIn(pa, [p["id"] for p in carol.get("/api/prechats?status=waiting").json()["prechats"]])
        self.assertStatus(self.meta(carol, pa), 200)
        self.assertJsonError(self.meta(dave, pa), 404, "another agent after the join")
        self.assertJsonError(self.meta(bob, pa), 404)

        # messages both ways
        m_a = self.post_message(alice, pa, "hello, my invoice is wrong")
        for k in ("id", "prechatId", "sender", "body", "createdAt"):
            self.assertIn(k, m_a)
        self.assertEqual(m_a["prechatId"], pa)
        self.assertEqual(m_a["body"], "hello, my invoice is wrong")
        m_c = self.post_message(carol, pa, "hi! let me check \u00e9\u00e8 \u2603")
        self.assertEqual(m_c["body"], "hi! let me check \u00e9\u00e8 \u2603")
        self.assertGreater(m_c["id"], m_a["id"])
        self.assertNotEqual(m_a["sender"], m_c["sender"])
        self.assertJsonError(dave.post(f"/api/prechats/{pa}/messages", {"body": "x"}), (403, 404),
                             "an agent who did not join")
        self.assertJsonError(bob.post(f"/api/prechats/{pa}/messages", {"body": "x"}), (403, 404),
                             "another visitor")

        r = self.assertStatus(carol.get(f"/api/prechats/{pa}/messages?after=0"), 200)
        msgs = r.json().get("messages")
        self.assertEqual([x["id"] for x in msgs], [m_a["id"], m_c["id"]], r)
        self.assertEqual([x["body"] for x in msgs], [m_a["body"], m_c["body"]])
        r = self.assertStatus(alice.get(f"/api/prechats/{pa}/messages?after={m_a['id']}"), 200)
        self.assertEqual([x["id"] for x in r.json()["messages"]], [m_c["id"]])
        r = self.assertStatus(alice.get(f"/api/prechats/{pa}/messages?after=0&limit=1"), 200)
        self.assertEqual([x["id"] for x in r.json()["messages"]], [m_a["id"]])
        r = self.assertStatus(alice.get(f"/api/prechats/{pa}/messages"), 200)
        self.assertEqual(len(r.json()["messages"]), 2)
        self.assertJsonError(bob.get(f"/api/prechats/{pa}/messages"), 404)

        # the polled endpoint: unchanged -> 304 without a body; a new message -> 200 and a new tag
        r = self.assertStatus(self.meta(alice, pa), 200)
        m3, etag = r.json(), r.header("ETag")
        self.assertEqual(m3["messageCount"], 2)
        self.assertEqual(m3["lastMessageId"], m_c["id"])
        for i in range(50):
            r = self.meta(alice, pa, headers={"If-None-Match": etag})
            self.assertEqual(r.status, 304, f"poll {i}: {r!r}")
            self.assertEqual(r.body, b"", f"poll {i}: 304 with a body")
        self.assertStatus(self.meta(carol, pa, headers={"If-None-Match": etag}), 304, "same tag for the agent")
        self.assertStatus(self.meta(alice, pa, headers={"If-None-Match": '"not-the-tag"'}), 200)
        m_new = self.post_message(carol, pa, "found it")
        r = self.assertStatus(self.meta(alice, pa, headers={"If-None-Match": etag}), 200)
        self.assertRegex(r.header("ETag"), STRONG_ETAG)
        self.assertNotEqual(r.header("ETag"), etag)
        self.assertEqual(r.json()["messageCount"], 3)
        self.assertEqual(r.json()["lastMessageId"], m_new["id"])
        self.assertEqual(self.meta(alice, pa, headers={"If-None-Match": r.header("ETag")}).status, 304)

        # body limits
        self.assertJsonError(alice.post(f"/api/prechats/{pa}/messages", {"body": ""}), 400, "empty body")
        self.assertJsonError(alice.post(f"/api/prechats/{pa}/messages", {"body": "x" * 4097}), (400, 413),
                             "body over 4096 bytes")
        self.assertJsonError(alice.post(f"/api/prechats/{pa}/messages", {"body": "\u00e9" * 2049}), (400, 413),
                             "4098 bytes in 2049 characters")
        self.post_message(alice, pa, "y" * 4096)

        # close: then no more messages, meta says closed
        r = self.assertStatus(alice.post(f"/api/prechats/{pa}/close"), 200)
        self.assertEqual(r.json().get("status"), "closed", r)
        self.assertJsonError(alice.post(f"/api/prechats/{pa}/messages", {"body": "still there?"}), 409)
        self.assertJsonError(carol.post(f"/api/prechats/{pa}/messages", {"body": "bye"}), 409)
        r = self.assertStatus(self.meta(carol, pa), 200)
        self.assertEqual(r.json()["status"], "closed")
        self.assertNoPosition(r.json())
        self.assertJsonError(dave.post(f"/api/prechats/{pa}/join"), 404, "join another agent's closed pre-chat")
        self.assertJsonError(carol.post(f"/api/prechats/{pa}/join"), 409, "join her own closed pre-chat")
        # the history stays readable
        self.assertEqual(len(alice.get(f"/api/prechats/{pa}/messages").json()["messages"]), 4)

        # the agent closes the other one after joining it
        self.assertStatus(dave.post(f"/api/prechats/{pb}/join"), 200)
        self.assertJsonError(carol.post(f"/api/prechats/{pb}/close"), (403, 404), "not its agent")
        r = self.assertStatus(dave.post(f"/api/prechats/{pb}/close"), 200)
        self.assertEqual(r.json().get("status"), "closed")

        # logout: the visitor's cookie no longer opens anything
        saved = f"{self.server.cookie_name}={alice.jar[self.server.cookie_name]}"
        self.assertStatus(alice.post("/api/auth/logout"), 204)
        self.assertJsonError(self.meta(alice, pa), 401)
        self.assertJsonError(alice.post("/api/prechats", {"topic": "x"}), 401)
        self.assertJsonError(self.meta(alice, pa, cookies=saved), 401, "old cookie after logout")

    def test_04_waiting_visitor_can_close_and_queue_positions(self):
        alice, carol = self.login("alice"), self.login("carol")
        pids = [self.open_prechat(alice, f"t{i}") for i in range(3)]
        pos = [self.meta(alice, p).json()["queuePosition"] for p in pids]
        self.assertEqual(pos, [pos[0], pos[0] + 1, pos[0] + 2])
        r = self.assertStatus(alice.post(f"/api/prechats/{pids[0]}/close"), 200)
        self.assertEqual(r.json()["status"], "closed")
        self.assertJsonError(carol.post(f"/api/prechats/{pids[0]}/join"), 404, "closed before anyone joined")
        self.assertEqual(self.meta(alice, pids[1]).json()["queuePosition"], pos[0])
        self.assertEqual(self.meta(alice, pids[2]).json()["queuePosition"], pos[0] + 1)
        for p in pids[1:]:
            self.assertStatus(alice.post(f"/api/prechats/{p}/close"), 200)

    def test_05_message_paging(self):
        alice, carol = self.login("alice"), self.login("carol")
        pid = self.open_prechat(alice)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200)
        ids = [self.post_message(alice if i % 2 else carol, pid, f"m{i}")["id"] for i in range(60)]
        self.assertEqual(ids, sorted(ids))
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages"), 200)
        self.assertEqual([m["id"] for m in r.json()["messages"]], ids[:50], "default limit 50")
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages?after={ids[49]}&limit=200"), 200)
        self.assertEqual([m["id"] for m in r.json()["messages"]], ids[50:])
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages?after={ids[9]}&limit=5"), 200)
        self.assertEqual([m["id"] for m in r.json()["messages"]], ids[10:15])
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages?after={ids[-1]}"), 200)
        self.assertEqual(r.json()["messages"], [])
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages?after=1000000000"), 200)
        self.assertEqual(r.json()["messages"], [])
        # above the maximum: refused or capped at 200, never more
        r = alice.get(f"/api/prechats/{pid}/messages?limit=201")
        if r.status != 200:
            self.assertJsonError(r, 400)
        else:
            self.assertLessEqual(len(r.json()["messages"]), 200)
        m = self.meta(alice, pid).json()
        self.assertEqual(m["messageCount"], 60)
        self.assertEqual(m["lastMessageId"], ids[-1])
        self.assertStatus(alice.post(f"/api/prechats/{pid}/close"), 200)

    def test_06_concurrent_pollers_and_writers(self):
        """Several browsers poll meta while both sides write: every reply is 200/304/201, never 5xx."""
        alice, carol = self.login("alice"), self.login("carol")
        pid = self.open_prechat(alice)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200)
        errors = []
        stop = threading.Event()

        def poller(b):
            tag = None
            while not stop.is_set():
                r = self.meta(b, pid, headers={"If-None-Match": tag} if tag else None)
                if r.status == 200:
                    tag = r.header("ETag")
                elif r.status != 304:
                    errors.append(r)
                    return

        threads = [threading.Thread(target=poller, args=(b,)) for b in (alice, carol, alice, carol)]
        for t in threads:
            t.start()
        try:
            for i in range(20):
                r = (alice if i % 2 else carol).post(f"/api/prechats/{pid}/messages", {"body": f"c{i}"})
                if r.status != 201:
                    errors.append(r)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(errors, [])
        self.assertEqual(self.meta(alice, pid).json()["messageCount"], 20)


class BadInputTests:
    """Hostile and malformed requests: each gets a JSON 4xx, never a 5xx or a hang, and the server stays up."""

    strategy = None

    @classmethod
    def setUpClass(cls):
        cls.server = cls.track_class(TesseraServer(strategy=cls.strategy))
        try:
            for name, (role, password) in USERS.items():
                cls.server.add_user(name, role, password)
            cls.server.start()
        except Exception:
            cls.server.cleanup()
            raise
        try:
            b = Browser(cls.server.port)
            r = b.login("alice", USERS["alice"][1])
            if r.status != 200 or cls.server.cookie_name not in b.jar:
                raise HarnessError(f"login for the bad-input tests: {r!r}")
            cls.alice_cookie = b.jar[cls.server.cookie_name]
            r = b.post("/api/prechats", {"topic": "bad-input"})
            if r.status != 201:
                raise HarnessError(f"open pre-chat for the bad-input tests: {r!r}")
            cls.pid = r.json()["id"]
        except Exception as exc:
            log = cls.server.log_text()
            cls.server.cleanup()
            raise HarnessError(f"{exc}\n--- server log ---\n{log}") from None

    @classmethod
    def tearDownClass(cls):
        cls.server.finish()

    def tearDown(self):
        self.assertTrue(self.server.alive(), f"server exited with {self.server.proc.returncode}")
        self.assertEqual(self.server.browser().get("/healthz").status, 200)

    def alice(self):
        b = self.server.browser("alice")
        b.jar[self.server.cookie_name] = self.alice_cookie
        return b

    def with_cookie(self, value):
        return f"{self.server.cookie_name}={value}"

    def forged_cookies(self):
        """Cookies of the right shape whose signature is wrong (by strategy)."""
        real = self.alice_cookie
        if self.strategy == "jwt":
            head, claims, sig = real.split(".")
            flipped = ("B" if sig[0] != "B" else "C") + sig[1:]
            yield "flipped signature", f"{head}.{claims}.{flipped}"
            now = int(time.time())
            yield "unknown secret", make_jwt({"userId": 1, "iat": now, "exp": now + 3600}, "not-our-secret")
            yield "alg none", make_jwt({"userId": 1, "iat": now, "exp": now + 3600}, None,
                                       {"alg": "none", "typ": "JWT"})
            yield "alg none, real claims", f"{make_jwt({}, None, {'alg': 'none', 'typ': 'JWT'}).split('.')[0]}" \
                                           f".{claims}."
            yield "alg HS512", make_jwt({"userId": 1, "iat": now, "exp": now + 3600}, "integration-secret-1",
                                        {"alg": "HS512", "typ": "JWT"})
            yield "expired, right secret", make_jwt({"userId": 1, "iat": now - 7200, "exp": now - 3600},
                                                    "integration-secret-1")
        else:
            raw = urllib.parse.unquote(real)
            self.assertTrue(raw.startswith("s:") and "." in raw, f"cookie not in express-session shape: {real}")
            sid, _, sig = raw[2:].rpartition(".")
            flipped = ("B" if sig[0] != "B" else "C") + sig[1:]
            yield "flipped signature", urllib.parse.quote(f"s:{sid}.{flipped}", safe="")
            yield "unknown secret", sign_express_cookie(sid, "not-our-secret")
            yield "other sid, unknown secret", sign_express_cookie("A" * 43, "not-our-secret")
            yield "no signature", urllib.parse.quote(f"s:{sid}", safe="")
            yield "unsigned sid", sid

    # -- cookies
    def test_forged_cookies_are_401(self):
        b = self.server.browser()
        for label, value in self.forged_cookies():
            with self.subTest(label):
                self.assertJsonError(b.get("/api/auth/session", cookies=self.with_cookie(value)), 401, label)
                self.assertJsonError(b.get(f"/api/prechats/{self.pid}/meta", cookies=self.with_cookie(value)),
                                     401, label)
                self.assertStatus(b.get("/auth", cookies=self.with_cookie(value)), 401, label)

    def test_garbage_cookies_are_401(self):
        b = self.server.browser()
        cases = {
            "empty": "",
            "garbage": "%%%garbage%%%",
            "s: only": "s:",
            "dots": "s:....",
            "binary-ish": "%00%01%FF",
            "8 KB": "s%3A" + "A" * 8192 + ".sig",
            "jwt-like garbage": "a.b.c",
            "long jwt-like": "eyJ" + "A" * 3000 + "." + "B" * 3000 + "." + "C" * 1000,
        }
        for label, value in cases.items():
            with self.subTest(label):
                self.assertJsonError(b.get("/api/auth/session", cookies=self.with_cookie(value)), 401, label)
        # a whole cookie header of junk, other cookies around ours, duplicated cookie names
        self.assertJsonError(b.get("/api/auth/session", cookies="; ;;=;==;a"), 401)
        self.assertStatus(b.get("/api/auth/session", cookies=f"x=1; {self.with_cookie(self.alice_cookie)}; y=2"),
                          200, "our cookie among others")

    def test_forged_cookies_never_reach_the_store(self):
        b = self.server.browser()
        forged = next(self.forged_cookies())[1]
        before = self.server.metrics()
        for _ in range(200):
            r = b.get(f"/api/prechats/{self.pid}/meta", cookies=self.with_cookie(forged))
            self.assertEqual(r.status, 401, r)
        after = self.server.metrics()
        self.assertEqual(after["tessera_store_gets_total"], before["tessera_store_gets_total"],
                         "a forged cookie reached the store")
        self.assertEqual(after["tessera_auth_rejected_early_total"] - before["tessera_auth_rejected_early_total"],
                         200)
        # garbage, unknown-secret and alg-none cookies do not reach the store either
        before = after
        for label, value in list(self.forged_cookies())[1:] + [("garbage", "%%%"), ("8K", "s%3A" + "A" * 8000)]:
            for _ in range(10):
                self.assertEqual(b.get("/api/auth/session", cookies=self.with_cookie(value)).status, 401, label)
        after = self.server.metrics()
        self.assertEqual(after["tessera_store_gets_total"], before["tessera_store_gets_total"])

    # -- JSON bodies
    def test_bad_json_bodies(self):
        b = self.server.browser()
        cases = [
            ("invalid JSON", b'{"username": "alice", "password": '),
            ("not JSON", b"username=alice&password=x"),
            ("array", b'["alice", "x"]'),
            ("number", b"42"),
            ("string", b'"alice"'),
            ("null", b"null"),
            ("wrong types", b'{"username": 1, "password": ["x"]}'),
            ("null fields", b'{"username": null, "password": null}'),
            ("trailing garbage", b'{"username": "alice", "password": "alice-pass-1"} xyz'),
            ("two objects", b'{"username": "alice", "password": "alice-pass-1"}{}'),
            ("empty", b""),
            ("deep nesting", b'{"username": ' + b"[" * 10000 + b"]" * 10000 + b', "password": "x"}'),
            ("NUL in string", b'{"username": "ali\\u0000ce", "password": "alice-pass-1"}'),
            ("invalid UTF-8", b'{"username": "\xff\xfe", "password": "x"}'),
        ]
        for label, body in cases:
            with self.subTest(label):
                r = b.post("/api/auth/login", body)
                # NUL or invalid UTF-8 inside a string: refusing the body or the credentials are both fine
                self.assertJsonError(r, (400, 401) if label in ("NUL in string", "invalid UTF-8") else 400, label)
                self.assertNotIn(self.server.cookie_name, b.jar, label)
        alice = self.alice()
        for label, body in [("topic number", b'{"topic": 5}'), ("topic garbage", b'{"topic": "x"} ]'),
                            ("array", b"[]")]:
            with self.subTest(label):
                self.assertJsonError(alice.post("/api/prechats", body), 400, label)
        for label, body in [("body number", b'{"body": 5}'), ("no body", b"{}"), ("body null", b'{"body":null}'),
                            ("trailing", b'{"body": "x"},')]:
            with self.subTest(label):
                self.assertJsonError(alice.post(f"/api/prechats/{self.pid}/messages", body), 400, label)

    def test_huge_bodies(self):
        b = self.server.browser()
        big = b'{"username": "' + b"a" * (65 * 1024) + b'", "password": "x"}'
        self.assertJsonError(b.post("/api/auth/login", big), 413)
        big = b'{"body": "' + b"x" * (100 * 1024) + b'"}'
        self.assertJsonError(self.alice().post(f"/api/prechats/{self.pid}/messages", big), 413)
        # far above the cap h2o may answer 413 itself (text/plain) and close before reading the body
        r = send_large_body(self.server.port, "POST", f"/api/prechats/{self.pid}/messages",
                            b'{"body": "' + b"x" * (4 * 1024 * 1024) + b'"}',
                            headers={"Cookie": self.with_cookie(self.alice_cookie)})
        self.assertIsNotNone(r, "connection closed without a response")
        self.assertEqual(r.status, 413, r)
        # a body announced as huge and never sent: refused at once, or at least no other connection waits for it
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000000\r\n\r\n{")
            self.assertStatus(self.server.browser().get("/healthz", timeout=5), 200)
            self.assertStatus(self.alice().get(f"/api/prechats/{self.pid}/meta", timeout=5), 200)

    # -- paths and methods
    def test_unknown_paths_and_methods(self):
        b = self.alice()
        for path in ("/nope", "/api", "/api/", "/api/prechats/x/y/z", "/api/auth/whoami", "/API/auth/session",
                     "/api/prechats/../../etc/passwd", "/api/prechats/%2e%2e/%2e%2e/etc/passwd",
                     "/api/prechats/..%2f..%2fetc%2fpasswd", "/../../../etc/passwd", "/api/prechats/1/meta/../../../etc/passwd",
                     "/healthz/../etc/passwd"):
            with self.subTest(path):
                r = b.get(path)
                self.assertJsonError(r, (400, 404), path)
                self.assertNotIn(b"root:", r.body)
        for method, path in (("DELETE", "/api/auth/login"), ("GET", "/api/auth/login"),
                             ("PUT", "/api/prechats"), ("DELETE", f"/api/prechats/{self.pid}/meta"),
                             ("POST", f"/api/prechats/{self.pid}/meta"), ("GET", f"/api/prechats/{self.pid}/join"),
                             ("PATCH", "/api/auth/session"), ("POST", "/healthz")):
            with self.subTest(f"{method} {path}"):
                self.assertJsonError(b.request(method, path), 405, f"{method} {path}")

    def test_bad_prechat_ids(self):
        b, carol = self.alice(), self.server.browser("carol")
        self.assertEqual(carol.login("carol", USERS["carol"][1]).status, 200)
        for pid in ("999999", "0", "-1", "abc", "1x", "1;DROP TABLE prechats", "%00", "1%00",
                    "99999999999999999999999999", "%27%20OR%201%3D1", "1.5", "0x10", " 1"):
            for who, path in ((b, f"/api/prechats/{urllib.parse.quote(pid, safe='%')}/meta"),
                              (b, f"/api/prechats/{urllib.parse.quote(pid, safe='%')}/messages"),
                              (carol, f"/api/prechats/{urllib.parse.quote(pid, safe='%')}/join")):
                with self.subTest(f"{pid} {path}"):
                    r = who.request("POST" if path.endswith("/join") else "GET", path)
                    self.assertJsonError(r, (400, 404), path)

    def test_bad_query_values(self):
        b = self.alice()
        base = f"/api/prechats/{self.pid}/messages"
        for q in ("after=abc", "after=-1", "after=99999999999999999999999", "after=", "after=1e3", "after=0x10",
                  "limit=abc", "limit=-1", "limit=99999999999999999999999", "limit=", "limit=1.5",
                  "after=%00", "limit=5%00", "after=1&after=2&limit=x"):
            with self.subTest(q):
                self.assertJsonError(b.get(f"{base}?{q}"), 400, q)
        self.assertStatus(b.get(f"{base}?after=0&limit=200"), 200)
        carol = self.server.browser("carol")
        self.assertEqual(carol.login("carol", USERS["carol"][1]).status, 200)
        self.assertJsonError(carol.get("/api/prechats?status=bogus"), 400)

    def test_login_field_limits(self):
        b = self.server.browser()
        self.assertJsonError(b.login("a" * 5000, "x"), (400, 401, 413))
        self.assertJsonError(b.login("alice", "p" * 20000), (400, 401, 413))
        self.assertJsonError(b.login("", ""), (400, 401))

    def test_raw_protocol_garbage(self):
        for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
                     b"GET /api/auth/session HTTP/1.1\r\nHost: x\r\nCookie: connect.sid=" + b"a" * 70000 +
                     b"; session-token=" + b"a" * 70000 + b"\r\n\r\n"):
            with self.subTest(data[:20]):
                try:
                    status, _ = raw_http(self.server.port, data, timeout=10)
                except ConnectionResetError:
                    status = None
                self.assertTrue(status is None or 400 <= status < 500, status)


class DbFlow(PrechatFlowTests, ServerTestCase):
    strategy = "db"


class JwtFlow(PrechatFlowTests, ServerTestCase):
    strategy = "jwt"


class CachedFlow(PrechatFlowTests, ServerTestCase):
    strategy = "cached"


class DbBadInput(BadInputTests, ServerTestCase):
    strategy = "db"


class JwtBadInput(BadInputTests, ServerTestCase):
    strategy = "jwt"


class CachedBadInput(BadInputTests, ServerTestCase):
    strategy = "cached"


if __name__ == "__main__":
    main()

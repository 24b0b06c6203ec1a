"""
The agents' waiting list, live: GET /api/prechats?status=waiting carries an ETag (304 on If-None-Match), and
with &wait=N (1..60) and a current If-None-Match it is held until the list shows something else — a pre-chat
opened ("queue:new" on the change bus), joined or closed ("meta:queue"), a message in a listed pre-chat — or
N seconds pass (304). Bad input is 400, no session 401, a visitor 403, past the waiter bounds 429; a logout ends
a held list with 401; a second instance on the same SQLite file hears the change (its event table).
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import TesseraServer  # noqa: E402
from test_push import (ANSWER, USERS, Held, PushCase, add_users, wait_events_flowing,  # noqa: E402
                       wait_waiters, waiters)

LIST = "/api/prechats?status=waiting"


class ListCase(PushCase):
    def listing(self, server, cookie, query=""):
        r = self.assertStatus(self.get(server, LIST + query, cookie), 200, "the waiting list")
        self.assertTrue(r.header("ETag"), r)
        return r

    def hold_list(self, server, cookie, etag, wait=30, query=""):
        h = Held(server.port, f"{LIST}&wait={wait}{query}", cookie, {"If-None-Match": etag})
        self.addCleanup(h.close)
        return h

    def ids(self, resp):
        return [p["id"] for p in resp.json()["prechats"]]


class WaitingList(ListCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db"))
        try:
            add_users(cls.srv, list(USERS))
            cls.srv.start()
            wait_events_flowing(cls.srv)
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def setUp(self):
        self.assertTrue(self.srv.alive(), "server died in an earlier test")

    def test_1_etag_and_304(self):
        carol = self.login(self.srv, "carol")
        r = self.listing(self.srv, carol)
        self.assertEqual(r.header("Cache-Control"), "private, no-cache")
        etag = r.header("ETag")
        self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
        r2 = self.get(self.srv, LIST, carol, headers={"If-None-Match": etag})
        self.assertStatus(r2, 304, "a current tag without wait")
        self.assertEqual(r2.header("ETag"), etag)
        self.assertEqual(r2.body, b"")
        # an old tag answers at once, with the list
        r3 = self.get(self.srv, LIST + "&wait=30", carol, headers={"If-None-Match": '"0000000000000000"'})
        self.assertStatus(r3, 200, "an old tag with wait answers at once")
        self.assertEqual(r3.header("ETag"), etag)

    def test_2_held_until_a_prechat_is_opened_joined_closed_or_written_to(self):
        carol, alice, bob = (self.login(self.srv, u) for u in ("carol", "alice", "bob"))
        etag = self.listing(self.srv, carol).header("ETag")
        base = waiters(self.srv)

        # opened
        h = self.hold_list(self.srv, carol, etag)
        wait_waiters(self.srv, base + 1)
        self.assertHeld(h, "the list long-poll")
        p1 = self.open_prechat(self.srv, alice, "first")
        r = self.assertStatus(h.response(ANSWER), 200, "woken by a new pre-chat")
        self.assertIn(p1, self.ids(r))
        self.assertNotEqual(r.header("ETag"), etag)
        self.assertEqual(r.header("ETag"), self.listing(self.srv, carol).header("ETag"), "the tag a GET gives")
        etag = r.header("ETag")

        # a message in a listed pre-chat (its messageCount shows in the list)
        p2 = self.open_prechat(self.srv, bob, "second")
        etag = self.listing(self.srv, carol).header("ETag")
        h = self.hold_list(self.srv, carol, etag)
        wait_waiters(self.srv, base + 1)
        self.post_message(self.srv, alice, p1, "still there?")
        r = self.assertStatus(h.response(ANSWER), 200, "woken by a message in a listed pre-chat")
        doc = {p["id"]: p for p in r.json()["prechats"]}
        self.assertEqual(doc[p1]["messageCount"], 1)
        etag = r.header("ETag")

        # joined: it leaves the list, the next one moves up
        h = self.hold_list(self.srv, carol, etag)
        wait_waiters(self.srv, base + 1)
        self.assertStatus(self.post(self.srv, f"/api/prechats/{p1}/join", carol), 200, "join")
        r = self.assertStatus(h.response(ANSWER), 200, "woken by a join")
        self.assertNotIn(p1, self.ids(r))
        self.assertEqual({p["id"]: p["queuePosition"] for p in r.json()["prechats"]}[p2], 1)
        etag = r.header("ETag")

        # closed by its visitor while waiting
        h = self.hold_list(self.srv, carol, etag)
        wait_waiters(self.srv, base + 1)
        self.assertStatus(self.post(self.srv, f"/api/prechats/{p2}/close", bob), 200, "close")
        r = self.assertStatus(h.response(ANSWER), 200, "woken by a close")
        self.assertNotIn(p2, self.ids(r))
        self.assertStatus(self.post(self.srv, f"/api/prechats/{p1}/close", carol), 200, "close the joined one")
        wait_waiters(self.srv, base)

    def test_2b_each_limit_its_own_list(self):
        carol, alice, bob = (self.login(self.srv, u) for u in ("carol", "alice", "bob"))
        p0 = self.open_prechat(self.srv, alice, "head of the queue")
        base = waiters(self.srv)
        short = self.hold_list(self.srv, carol, self.listing(self.srv, carol, "&limit=1").header("ETag"),
                               query="&limit=1")
        full = self.hold_list(self.srv, carol, self.listing(self.srv, carol).header("ETag"))
        wait_waiters(self.srv, base + 2)
        p1 = self.open_prechat(self.srv, bob, "end of the queue")
        self.assertIn(p1, self.ids(self.assertStatus(full.response(ANSWER), 200, "the full list grew")))
        # the same read found the first row unchanged: the one-row list is still held
        self.assertFalse(short.answered(0.2), "a one-row list whose row did not change")
        self.assertStatus(self.post(self.srv, f"/api/prechats/{p0}/close", alice), 200)
        r = self.assertStatus(short.response(ANSWER), 200, "the one-row list's row left")
        self.assertEqual(self.ids(r), [p1])
        self.assertStatus(self.post(self.srv, f"/api/prechats/{p1}/close", bob), 200)
        wait_waiters(self.srv, base)

    def test_3_timeout_is_304(self):
        carol = self.login(self.srv, "carol")
        etag = self.listing(self.srv, carol).header("ETag")
        h = self.hold_list(self.srv, carol, etag, wait=1)
        r = h.response(ANSWER)
        self.assertStatus(r, 304, "nothing changed within wait=1")
        self.assertEqual(r.header("ETag"), etag)

    def test_4_bad_input_401_403(self):
        carol, alice = self.login(self.srv, "carol"), self.login(self.srv, "alice")
        etag = self.listing(self.srv, carol).header("ETag")
        for q in ("&wait=0", "&wait=61", "&wait=abc", "&wait=-1", "&wait=1.5", "&wait=", "&wait=%00",
                  "&limit=0", "&limit=201"):
            self.assertJsonError(self.get(self.srv, LIST + q, carol, headers={"If-None-Match": etag}), 400, q)
        self.assertJsonError(self.get(self.srv, "/api/prechats?status=active&wait=5", carol), 400, "status")
        self.assertJsonError(self.get(self.srv, LIST + "&wait=5", None, headers={"If-None-Match": etag}), 401,
                             "no session")
        self.assertJsonError(self.get(self.srv, LIST + "&wait=5", "connect.sid=s%3Aforged.sig",
                                      headers={"If-None-Match": etag}), 401, "a forged cookie")
        self.assertJsonError(self.get(self.srv, LIST + "&wait=5", alice, headers={"If-None-Match": etag}), 403,
                             "a visitor")

    def test_5_bounds(self):
        dave = self.login(self.srv, "dave")
        etag = self.listing(self.srv, dave).header("ETag")
        base = waiters(self.srv)
        held = [self.hold_list(self.srv, dave, etag) for _ in range(20)]
        wait_waiters(self.srv, base + 20)
        h = self.hold_list(self.srv, dave, etag)
        doc = self.assertJsonError(h.response(ANSWER), 429, "the 21st waiter of a session")
        self.assertEqual(doc["error"], "too_many_waiters", doc)
        frank = self.login(self.srv, "frank")
        pid = self.open_prechat(self.srv, frank, "release")
        for h in held:
            self.assertIn(pid, self.ids(self.assertStatus(h.response(ANSWER), 200, "released")))
        wait_waiters(self.srv, base)
        self.assertStatus(self.post(self.srv, f"/api/prechats/{pid}/close", frank), 200)

    def test_6_logout_ends_a_held_list(self):
        carol = self.login(self.srv, "carol")
        etag = self.listing(self.srv, carol).header("ETag")
        base = waiters(self.srv)
        h = self.hold_list(self.srv, carol, etag)
        wait_waiters(self.srv, base + 1)
        self.assertStatus(self.post(self.srv, "/api/auth/logout", carol), 204, "logout")
        self.assertJsonError(h.response(ANSWER), 401, "a held list after its session's logout")


class WaitingListSqlitePair(ListCase):
    """Two processes on one SQLite file: a pre-chat opened on A wakes a list held on B."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tessera-list-sqlite-")
        db = f"sqlite:{os.path.join(cls.tmp, 'shared.db')}"
        try:
            cls.a = cls.track_class(TesseraServer(strategy="db", database=db))
            cls.b = cls.track_class(TesseraServer(strategy="db", database=db))
            add_users(cls.a, ["alice", "carol"])
            cls.a.start()
            cls.b.start()
            for s in (cls.a, cls.b):
                wait_events_flowing(s)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for s in cls.__dict__.get("_class_servers", []):
                s.finish()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_opened_on_a_wakes_b(self):
        carol_b = self.login(self.b, "carol")
        alice_a = self.login(self.a, "alice")
        etag = self.listing(self.b, carol_b).header("ETag")
        h = self.hold_list(self.b, carol_b, etag)
        wait_waiters(self.b, 1)
        t0 = time.monotonic()
        pid = self.open_prechat(self.a, alice_a, "from A")
        r = self.assertStatus(h.response(ANSWER), 200, "B's list woken by A's new pre-chat")
        self.assertIn(pid, self.ids(r))
        print(f"list woken across instances in {time.monotonic() - t0:.3f} s")


if __name__ == "__main__":
    unittest.main(verbosity=2)

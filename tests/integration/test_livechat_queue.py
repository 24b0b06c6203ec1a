#!/usr/bin/env python3
"""The agents' side of the queue: an agent's capacity (--agent-max-chats / TESSERA_AGENT_MAX_CHATS), against real
`tessera serve` processes on SQLite and on PostgreSQL.

- CapacitySqlite / CapacityPostgres (capacity 2): the first 2 joins of one agent succeed, the 3rd is 409
  {"error": "agent_at_capacity"} and leaves the pre-chat waiting (another agent may still join it); closing one of
  the agent's pre-chats frees a slot, and the refused join then succeeds.
- On PostgreSQL, two instances share the database and one agent fires 12 joins at once, half on each instance:
  exactly 2 (the capacity) succeed, the others are 409 agent_at_capacity, and the database holds 2 active
  pre-chats of that agent (a count read before the agent's row lock would let several joins through; the SQLite
  variant runs the same race on one instance).
- WaitSqlite / WaitPostgres (a fresh store each): a waiting pre-chat's meta has "estimatedWaitSeconds": null
  while no pre-chat was ever joined; once joins exist (their waits set in the database to 10, 20 and 60 s, then
  one more join of ~0 s), the visitor's event stream is pushed a meta with the median, 15; only the last 20 joins
  count (20 joins of 100 s and one of ~0 s push the older ones out: 100); a pre-chat that is not waiting has null.
- TimeoutsSqlite / TimeoutsPostgres (--prechat-idle-timeout 2, --prechat-wait-timeout 2): an active pre-chat
  left without a message is closed by the sweep: both sides' streams get the system message "closed after 2
  seconds without a message", then the closed meta, then the stream ends; the store holds it closed with that
  message. A waiting one gets "offerLeaveMessage": true pushed on its stream (still waiting); the join drops it.
  Every wait is on the condition, with a deadline.
- WaitCloseSqlite / WaitClosePostgres (--prechat-wait-timeout 1, --prechat-wait-close 3): a pre-chat never
  joined is closed by the sweep: the visitor's stream gets the closed meta and the system message "closed after
  3 seconds without an agent", then ends; the agents' waiting-list long-poll answers without it; the store holds
  it closed with that one message. One whose visitor left a message stays waiting (with its message, in the agents' list, joinable)
  after a younger one was closed.
- LeaveSqlite / LeavePostgres: POST /api/prechats/{id}/leave {"message", "contact"} by the visitor of a waiting
  pre-chat stores the message and the contact; the pre-chat stays waiting, marked "leftMessage" with its
  "contact" in the agents' waiting list; a second leave is 409; bad input: 401 no session, 403 an agent,
  404 another visitor / an unknown id, 400 bad JSON / a missing or empty field, 413 a message over 4096 or a
  contact over 200 bytes, 409 once joined.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (Browser, HarnessError, PostgresServer, ServerTestCase, TesseraServer,  # noqa: E402
                             main, shared_postgres, shared_postgres_if_started, stop_shared_postgres)
from test_push import ANSWER, EventStream, USERS, add_users, wait_events_flowing  # noqa: E402

HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))


def tearDownModule():
    stop_shared_postgres()


class CapacityCase:
    """Mixed into a ServerTestCase; subclasses start cls.a and cls.b (the same store) with agent-max-chats = cls.CAP."""

    CAP = 2

    @classmethod
    def start_pair(cls, database, cap):
        limits = {"agent-max-chats": cap}
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database, limits=limits))
        cls.b = cls.track_class(TesseraServer(strategy="db", database=database, limits=limits))
        add_users(cls.a, ["alice", "carol", "dave"])
        cls.a.start()
        cls.b.start()

    def login(self, server, user):
        b = Browser(server.port, name=user)
        self.assertStatus(b.login(user, USERS[user][1]), 200, f"login {user}")
        return b

    def open_prechat(self, visitor, topic="billing"):
        return self.assertStatus(visitor.post("/api/prechats", {"topic": topic}), 201, "open").json()["id"]

    def test_1_capacity_then_close_frees_a_slot(self):
        alice, carol, dave = self.login(self.a, "alice"), self.login(self.a, "carol"), self.login(self.a, "dave")
        pids = [self.open_prechat(alice) for _ in range(self.CAP + 1)]
        for pid in pids[:self.CAP]:
            r = self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, f"join {pid}")
            self.assertEqual(r.json()["status"], "active")
        over = pids[self.CAP]
        r = self.assertStatus(carol.post(f"/api/prechats/{over}/join"), 409, "join beyond the capacity")
        self.assertEqual(r.json()["error"], "agent_at_capacity", r.body)
        self.assertEqual(self.assertStatus(carol.get(f"/api/prechats/{over}"), 200, "get").json()["status"],
                         "waiting")
        # a join of a pre-chat that is not waiting stays a plain conflict, full or not
        r = self.assertStatus(carol.post(f"/api/prechats/{pids[0]}/join"), 409, "join an active one")
        self.assertEqual(r.json()["error"], "conflict", r.body)
        # the capacity is the agent's: on the other instance too
        carol_b = Browser(self.b.port, name="carol@b")
        carol_b.jar = dict(carol.jar)
        r = self.assertStatus(carol_b.post(f"/api/prechats/{over}/join"), 409, "join beyond, other instance")
        self.assertEqual(r.json()["error"], "agent_at_capacity", r.body)

        self.assertStatus(carol.post(f"/api/prechats/{pids[0]}/close"), 200, "close one")
        r = self.assertStatus(carol.post(f"/api/prechats/{over}/join"), 200, "join in the freed slot")
        self.assertEqual(r.json()["status"], "active")
        # another agent's capacity is its own
        extra = self.open_prechat(alice)
        self.assertStatus(dave.post(f"/api/prechats/{extra}/join"), 200, "another agent joins")
        self.assertStatus(carol.post(f"/api/prechats/{pids[1]}/close"), 200, "tidy")
        self.assertStatus(carol.post(f"/api/prechats/{over}/close"), 200, "tidy")
        self.assertStatus(dave.post(f"/api/prechats/{extra}/close"), 200, "tidy")

    def test_2_concurrent_joins_never_exceed_the_capacity(self):
        cap, n = self.CAP, 12
        alice, carol = self.login(self.a, "alice"), self.login(self.a, "carol")
        pids = [self.open_prechat(alice, f"race {i}") for i in range(n)]
        clients = []
        for i in range(n):  # one client per join, half on each instance, all one session
            c = Browser((self.a if i % 2 == 0 else self.b).port, name=f"carol#{i}")
            c.jar = dict(carol.jar)
            clients.append(c)
        results = [None] * n
        go = threading.Barrier(n)

        def join(i):
            go.wait(timeout=30)
            results[i] = clients[i].post(f"/api/prechats/{pids[i]}/join")

        threads = [threading.Thread(target=join, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertTrue(all(r is not None for r in results), "every join answered")
        codes = sorted(r.status for r in results)
        self.assertEqual(codes, [200] * cap + [409] * (n - cap), [(r.status, r.body[:80]) for r in results])
        for r in results:
            if r.status == 409:
                self.assertEqual(r.json()["error"], "agent_at_capacity", r.body)
        self.assertEqual(self.active_of_carol(), cap)


class WaitCase:
    """Mixed into a ServerTestCase; subclasses start cls.a on a fresh store and give sql(statement)."""

    @classmethod
    def start_one(cls, database):
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database))
        add_users(cls.a, ["alice", "carol"])
        cls.a.start()
        wait_events_flowing(cls.a)

    def login(self, user):
        b = Browser(self.a.port, name=user)
        self.assertStatus(b.login(user, USERS[user][1]), 200, f"login {user}")
        return b

    def open_prechat(self, visitor):
        return self.assertStatus(visitor.post("/api/prechats", {"topic": "wait"}), 201, "open").json()["id"]

    def meta(self, who, pid):
        return self.assertStatus(who.get(f"/api/prechats/{pid}/meta"), 200, "meta").json()

    def stream(self, who, pid):
        cookie = "; ".join(f"{k}={v}" for k, v in who.jar.items())
        s = EventStream(self.a.port, f"/api/prechats/{pid}/events", cookie)
        self.addCleanup(s.close)
        s.wait(lambda x: x.status is not None, ANSWER, "the stream's status line")
        self.assertEqual(s.status, 200, s.body[:300])
        return s

    @staticmethod
    def estimates(s):
        import json
        return [json.loads(b["data"]).get("estimatedWaitSeconds", "absent") for b in s.events("meta")]

    def joined(self, visitor, agent, n):
        pids = [self.open_prechat(visitor) for _ in range(n)]
        for pid in pids:
            self.assertStatus(agent.post(f"/api/prechats/{pid}/join"), 200, f"join {pid}")
        return pids

    def test_1_median_of_recent_joins_pushed(self):
        alice, carol = self.login("alice"), self.login("carol")
        w = self.open_prechat(alice)
        m = self.meta(alice, w)
        self.assertIn("estimatedWaitSeconds", m)
        self.assertIsNone(m["estimatedWaitSeconds"], m)  # nothing was ever joined
        vs = self.stream(alice, w)
        vs.wait(lambda x: self.estimates(x) == [None], ANSWER, "the first meta, without an estimate")

        p = self.joined(alice, carol, 3)
        for pid, wait_ms in zip(p, (10000, 20000, 60000)):
            self.sql(f"UPDATE prechat SET created_at = joined_at - {wait_ms} WHERE id = {pid}")
        self.joined(alice, carol, 1)  # ~0 s; its join moves the queue, so every waiting meta is pushed again
        vs.wait(lambda x: 15 in self.estimates(x), ANSWER, "the median (15 s) pushed")
        self.assertEqual(self.meta(alice, w)["estimatedWaitSeconds"], 15)

        recent = self.joined(alice, carol, 20)
        self.sql(f"UPDATE prechat SET created_at = joined_at - 100000 WHERE id BETWEEN {recent[0]} AND {recent[-1]}")
        self.joined(alice, carol, 1)  # the window is now 19 of 100 s and this one
        vs.wait(lambda x: 100 in self.estimates(x), ANSWER, "the median of the last 20 (100 s) pushed")
        self.assertEqual(self.meta(alice, w)["estimatedWaitSeconds"], 100)

        self.assertStatus(carol.post(f"/api/prechats/{w}/join"), 200, "join w")
        vs.wait(lambda x: x.events("meta") and self.estimates(x)[-1] is None and
                '"active"' in x.events("meta")[-1]["data"], ANSWER, "no estimate once joined")
        self.assertIsNone(self.meta(alice, w)["estimatedWaitSeconds"])


class WaitSqlite(WaitCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.path = os.path.join(tempfile.mkdtemp(prefix="tessera-wait-"), "tessera.db")
        cls.start_one(f"sqlite:{cls.path}")

    def sql(self, statement):
        import sqlite3
        with sqlite3.connect(self.path, timeout=10) as db:
            db.execute(statement)


class WaitPostgres(WaitCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        if not HAVE_PG:
            raise HarnessError("PostgreSQL 15 is not installed (scripts/setup.sh installs it)")
        pg = shared_postgres()
        cls.dbname = f"tess_{cls.__name__.lower()}_{os.getpid()}"
        pg.psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
        pg.psql(f"CREATE DATABASE {cls.dbname}")
        try:
            cls.start_one(f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{cls.dbname}")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for s in cls.__dict__.get("_class_servers", []):
                s.finish()
        finally:
            if shared_postgres_if_started() is not None:
                try:
                    shared_postgres_if_started().psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
                except HarnessError:
                    pass

    def sql(self, statement):
        shared_postgres().psql(statement, db=self.dbname)


class TimeoutsCase(WaitCase):
    """Mixed into a ServerTestCase; subclasses start cls.a with both timeouts at TIMEOUT seconds."""

    TIMEOUT = 2
    LIMITS = {"prechat-idle-timeout": TIMEOUT, "prechat-wait-timeout": TIMEOUT}

    @classmethod
    def start_one(cls, database):
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database, limits=cls.LIMITS))
        add_users(cls.a, ["alice", "carol"])
        cls.a.start()
        wait_events_flowing(cls.a)

    test_1_median_of_recent_joins_pushed = None  # WaitCase's test needs a fresh store of its own

    def test_1_idle_active_prechat_is_closed_with_a_note(self):
        import json
        alice, carol = self.login("alice"), self.login("carol")
        pid = self.open_prechat(alice)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "join")
        self.assertStatus(alice.post(f"/api/prechats/{pid}/messages", {"body": "hello"}), 201, "message")
        vs, ag = self.stream(alice, pid), self.stream(carol, pid)
        note = f"closed after {self.TIMEOUT} seconds without a message"
        for s in (vs, ag):
            s.wait(lambda x: x.ended is not None, self.TIMEOUT + ANSWER + 5, "the stream's end after the idle close")
            msgs = [json.loads(b["data"]) for b in s.events("message")]
            self.assertEqual([(m["sender"], m["body"]) for m in msgs][-1], ("system", note), s.describe())
            metas = [json.loads(b["data"]) for b in s.events("meta")]
            self.assertEqual(metas[-1]["status"], "closed", s.describe())
            self.assertEqual(metas[-1]["lastMessageId"], msgs[-1]["id"])
        got = self.assertStatus(alice.get(f"/api/prechats/{pid}"), 200, "get").json()
        self.assertEqual(got["status"], "closed")
        listed = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages"), 200, "list").json()
        bodies = [m["body"] for m in (listed["messages"] if isinstance(listed, dict) else listed)]
        self.assertEqual(bodies, ["hello", note])  # closed once, one note

    def test_2_long_wait_offers_to_leave_a_message(self):
        import json
        alice, carol = self.login("alice"), self.login("carol")
        import time
        t0 = time.monotonic()
        pid = self.open_prechat(alice)
        vs = self.stream(alice, pid)
        vs.wait(lambda x: x.events("meta"), ANSWER, "the first meta")
        early = time.monotonic() - t0 < self.TIMEOUT - 0.5  # the first meta surely came before the timeout
        vs.wait(lambda x: any(json.loads(b["data"]).get("offerLeaveMessage") is True for b in x.events("meta")),
                self.TIMEOUT + ANSWER + 5, "offerLeaveMessage pushed")
        first = [json.loads(b["data"]) for b in vs.events("meta")][0]
        if early:
            self.assertNotIn("offerLeaveMessage", first)
        m = self.meta(alice, pid)
        self.assertEqual((m["status"], m.get("offerLeaveMessage")), ("waiting", True))
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "join")
        vs.wait(lambda x: json.loads(x.events("meta")[-1]["data"])["status"] == "active", ANSWER, "joined")
        self.assertNotIn("offerLeaveMessage", self.meta(alice, pid))


class TimeoutsSqlite(TimeoutsCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.path = os.path.join(tempfile.mkdtemp(prefix="tessera-timeouts-"), "tessera.db")
        cls.start_one(f"sqlite:{cls.path}")


class TimeoutsPostgres(TimeoutsCase, ServerTestCase):
    setUpClass = classmethod(lambda cls: WaitPostgres.setUpClass.__func__(cls))
    tearDownClass = classmethod(lambda cls: WaitPostgres.tearDownClass.__func__(cls))


class WaitCloseCase(WaitCase):
    """Mixed into a ServerTestCase; subclasses start cls.a with --prechat-wait-close CLOSE (offer at OFFER)."""

    OFFER, CLOSE = 1, 3
    LIMITS = {"prechat-idle-timeout": 0, "prechat-wait-timeout": OFFER, "prechat-wait-close": CLOSE}

    @classmethod
    def start_one(cls, database):
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database, limits=cls.LIMITS))
        add_users(cls.a, ["alice", "bob", "carol"])
        cls.a.start()
        wait_events_flowing(cls.a)

    test_1_median_of_recent_joins_pushed = None  # WaitCase's test needs a fresh store of its own

    def messages(self, who, pid):
        listed = self.assertStatus(who.get(f"/api/prechats/{pid}/messages"), 200, "messages").json()
        return [(m["sender"], m["body"]) for m in (listed["messages"] if isinstance(listed, dict) else listed)]

    def test_1_waiting_prechat_is_closed_with_a_note(self):
        import json
        import time
        alice, carol = self.login("alice"), self.login("carol")
        pid = self.open_prechat(alice)
        vs = self.stream(alice, pid)
        note = f"closed after {self.CLOSE} seconds without an agent"
        # The agents' side: their waiting list, long-polled until the closed one leaves it.
        r = self.assertStatus(carol.get("/api/prechats?status=waiting"), 200, "waiting list")
        self.assertIn(pid, [p["id"] for p in r.json()["prechats"]])
        deadline = time.monotonic() + self.CLOSE + ANSWER + 5
        while pid in [p["id"] for p in r.json()["prechats"]]:
            self.assertLess(time.monotonic(), deadline, "the closed pre-chat left the agents' waiting list")
            r = carol.request("GET", "/api/prechats?status=waiting&wait=5", headers={"If-None-Match": r.header("ETag")})
            if r.status == 304:
                r = self.assertStatus(carol.get("/api/prechats?status=waiting"), 200, "waiting list")
            self.assertStatus(r, 200, "waiting list long-poll")
        vs.wait(lambda x: x.ended is not None, self.CLOSE + ANSWER + 5, "the stream's end after the waiting close")
        msgs = [json.loads(b["data"]) for b in vs.events("message")]
        self.assertEqual([(m["sender"], m["body"]) for m in msgs], [("system", note)], vs.describe())
        metas = [json.loads(b["data"]) for b in vs.events("meta")]
        self.assertEqual(metas[-1]["status"], "closed", vs.describe())
        self.assertEqual(metas[-1]["lastMessageId"], msgs[-1]["id"])
        self.assertEqual(self.assertStatus(alice.get(f"/api/prechats/{pid}"), 200, "get").json()["status"], "closed")
        self.assertEqual(self.messages(alice, pid), [("system", note)])  # closed once, one note
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 404, "a join of the closed one (not the agent's)")

    def test_2_left_message_keeps_waiting(self):
        import json
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        kept = self.open_prechat(alice)
        self.assertStatus(alice.post(f"/api/prechats/{kept}/leave", {"message": "call me", "contact": "a@example.org"}),
                          200, "leave")
        closed = self.open_prechat(bob)  # younger than `kept`: once it is closed, `kept` was swept past too
        bs = self.stream(bob, closed)
        bs.wait(lambda x: x.ended is not None, self.CLOSE + ANSWER + 5, "the other one closed")
        self.assertEqual(json.loads(bs.events("meta")[-1]["data"])["status"], "closed", bs.describe())
        got = self.assertStatus(alice.get(f"/api/prechats/{kept}"), 200, "get").json()
        self.assertEqual((got["status"], got["leftMessage"]), ("waiting", True), got)
        self.assertEqual(self.messages(alice, kept), [("visitor", "call me")])
        listed = self.assertStatus(carol.get("/api/prechats?status=waiting"), 200, "waiting list").json()["prechats"]
        self.assertEqual([p["id"] for p in listed if p["id"] in (kept, closed)], [kept], listed)
        self.assertStatus(carol.post(f"/api/prechats/{kept}/join"), 200, "an agent still joins it")


class WaitCloseSqlite(WaitCloseCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.path = os.path.join(tempfile.mkdtemp(prefix="tessera-waitclose-"), "tessera.db")
        cls.start_one(f"sqlite:{cls.path}")


class WaitClosePostgres(WaitCloseCase, ServerTestCase):
    setUpClass = classmethod(lambda cls: WaitPostgres.setUpClass.__func__(cls))
    tearDownClass = classmethod(lambda cls: WaitPostgres.tearDownClass.__func__(cls))


class LeaveCase(WaitCase):
    test_1_median_of_recent_joins_pushed = None  # WaitCase's test needs a fresh store of its own

    @classmethod
    def start_one(cls, database):
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database))
        add_users(cls.a, ["alice", "bob", "carol"])
        cls.a.start()

    def test_1_leave_a_message(self):
        alice, carol = self.login("alice"), self.login("carol")
        pid = self.open_prechat(alice)
        r = self.assertStatus(alice.post(f"/api/prechats/{pid}/leave",
                                         {"message": "call me back", "contact": "alice@example.org"}), 200, "leave")
        got = r.json()
        self.assertEqual((got["status"], got["leftMessage"], got["contact"], got["messageCount"]),
                         ("waiting", True, "alice@example.org", 1), got)
        listed = self.assertStatus(carol.get("/api/prechats?status=waiting"), 200, "waiting list").json()["prechats"]
        mine = [p for p in listed if p["id"] == pid]
        self.assertEqual(len(mine), 1, listed)
        self.assertEqual((mine[0]["leftMessage"], mine[0]["contact"]), (True, "alice@example.org"))
        others = [p for p in listed if p["id"] != pid]
        self.assertTrue(all("leftMessage" not in p for p in others), others)
        msgs = self.assertStatus(alice.get(f"/api/prechats/{pid}/messages"), 200, "messages").json()
        msgs = msgs["messages"] if isinstance(msgs, dict) else msgs
        self.assertEqual([(m["sender"], m["body"]) for m in msgs], [("visitor", "call me back")])
        r = self.assertStatus(alice.post(f"/api/prechats/{pid}/leave", {"message": "again", "contact": "x"}), 409,
                              "a second leave")
        self.assertEqual(r.json()["error"], "conflict")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "an agent still joins it")

    def test_2_bad_input(self):
        alice, bob, carol = self.login("alice"), self.login("bob"), self.login("carol")
        pid = self.open_prechat(alice)
        ok = {"message": "m", "contact": "c"}
        url = f"/api/prechats/{pid}/leave"
        cases = [
            (Browser(self.a.port).post(url, ok), 401, "no session"),
            (carol.post(url, ok), 403, "an agent"),
            (bob.post(url, ok), 404, "another visitor"),
            (alice.post("/api/prechats/999999/leave", ok), 404, "an unknown id"),
            (alice.post(url, "{not json"), 400, "bad JSON"),
            (alice.post(url, {"message": "m"}), 400, "no contact"),
            (alice.post(url, {"contact": "c"}), 400, "no message"),
            (alice.post(url, {"message": "", "contact": "c"}), 400, "an empty message"),
            (alice.post(url, {"message": 7, "contact": "c"}), 400, "a message that is not a string"),
            (alice.post(url, {"message": "x" * 4097, "contact": "c"}), 413, "a message too long"),
            (alice.post(url, {"message": "m", "contact": "c" * 201}), 413, "a contact too long"),
        ]
        for resp, status, what in cases:
            self.assertStatus(resp, status, what)
            self.assertIn("error", resp.json(), what)
        self.assertNotIn("leftMessage", self.assertStatus(alice.get(f"/api/prechats/{pid}"), 200, "get").json())
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "join")
        self.assertStatus(alice.post(url, ok), 409, "once joined")


class LeaveSqlite(LeaveCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.path = os.path.join(tempfile.mkdtemp(prefix="tessera-leave-"), "tessera.db")
        cls.start_one(f"sqlite:{cls.path}")


class LeavePostgres(LeaveCase, ServerTestCase):
    setUpClass = classmethod(lambda cls: WaitPostgres.setUpClass.__func__(cls))
    tearDownClass = classmethod(lambda cls: WaitPostgres.tearDownClass.__func__(cls))


class CapacitySqlite(CapacityCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="tessera-capacity-")
        cls.path = os.path.join(cls.dir, "tessera.db")
        cls.start_pair(f"sqlite:{cls.path}", cls.CAP)

    def active_of_carol(self):
        import sqlite3
        with sqlite3.connect(self.path, timeout=10) as db:
            return db.execute("SELECT count(*) FROM prechat p JOIN app_user u ON u.id = p.agent_id"
                              " WHERE u.name = 'carol' AND p.status = 'active'").fetchone()[0]


class CapacityPostgres(CapacityCase, ServerTestCase):
    @classmethod
    def setUpClass(cls):
        if not HAVE_PG:
            raise HarnessError("PostgreSQL 15 is not installed (scripts/setup.sh installs it)")
        pg = shared_postgres()
        cls.dbname = f"tess_capacity_{os.getpid()}"
        pg.psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
        pg.psql(f"CREATE DATABASE {cls.dbname}")
        try:
            cls.start_pair(f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{cls.dbname}", cls.CAP)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for s in cls.__dict__.get("_class_servers", []):
                s.finish()
        finally:
            if shared_postgres_if_started() is not None:
                try:
                    shared_postgres_if_started().psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
                except HarnessError:
                    pass

    def active_of_carol(self):
        out = shared_postgres().psql("SELECT count(*) FROM prechat p JOIN app_user u ON u.id = p.agent_id"
                                     " WHERE u.name = 'carol' AND p.status = 'active'", db=self.dbname)
        return int(out.strip())


if __name__ == "__main__":
    main()

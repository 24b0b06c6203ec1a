#!/usr/bin/env python3
"""Live-chat signals and the transcript (src/server/livechat.c), against real `tessera serve` processes.

- LiveSingle (one server, SQLite): POST /api/prechats/{id}/typing and /read reach the other side's event stream
  as `event: typing` / `event: read`; a read receipt that is not newer than the last one a stream got is not
  sent again; GET /api/prechats/{id}/transcript in JSON and text; every bad input: 401 without a session,
  404 for an unknown pre-chat and for someone who is not a party (another visitor, an agent who did not join),
  400 bad JSON / bad ?format=, 415 a body that is not JSON, 422 a bad or too-new `upto`, 403 another site's
  Origin, 409 typing or read in a closed pre-chat.
- SqlitePair / PostgresPair (two instances sharing one SQLite file / one PostgreSQL database, no Redis): the
  visitor on one instance, the agent on the other; typing and read receipts cross over, and no stream gets one
  twice. Each process also hears its own events back (the event table, NOTIFY): before it counts exactly, the
  test waits until each instance has heard a later event of the other one (both transports deliver in commit
  order, and an event commits just after its 204), so the echoes are in (a duplicate made this fail 4 != 2
  when the drop of a process's own events was removed). Receipts of one instance may reach the other out of
  order (its loops publish on their own connections): there a stream gets [m1, m2] or [m2], never a repeat.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (Browser, HarnessError, PostgresServer, ServerTestCase, TesseraServer,  # noqa: E402
                             main, shared_postgres, shared_postgres_if_started, stop_shared_postgres)
from test_push import ANSWER, EventStream, USERS, add_users, wait_events_flowing  # noqa: E402

HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))


def tearDownModule():
    stop_shared_postgres()


class LiveCase(ServerTestCase):
    def login(self, server, user):
        b = Browser(server.port, name=user)
        self.assertStatus(b.login(user, USERS[user][1]), 200, f"login {user}")
        return b

    def open_prechat(self, visitor, topic="billing"):
        return self.assertStatus(visitor.post("/api/prechats", {"topic": topic}), 201, "open").json()["id"]

    def post_message(self, who, pid, body):
        return self.assertStatus(who.post(f"/api/prechats/{pid}/messages", {"body": body}), 201, "message").json()

    def stream(self, server, who, pid):
        cookie = "; ".join(f"{k}={v}" for k, v in who.jar.items())
        s = EventStream(server.port, f"/api/prechats/{pid}/events", cookie)
        self.addCleanup(s.close)
        s.wait(lambda x: x.status is not None, ANSWER, "the stream's status line")
        self.assertEqual(s.status, 200, s.body[:300])
        s.wait(lambda x: len(x.events("meta")) >= 1, ANSWER, "the first meta event")
        return s

    @staticmethod
    def live(s, kind, side=None):
        import json
        out = [json.loads(b["data"]) for b in s.events(kind)]
        return [e for e in out if side is None or e["from"] == side]

    def reads(self, s, side):
        return [e["upto"] for e in self.live(s, "read", side)]


# -------------------------------------------------------------------------------------------------------


class LiveSingle(LiveCase):
    @classmethod
    def setUpClass(cls):
        # test_4 posts more messages than the default per-user rate allows
        cls.srv = cls.track_class(TesseraServer(strategy="db", env={"TESSERA_MESSAGE_RATE": "600000",
                                                                    "TESSERA_MESSAGE_BURST": "10000"}))
        try:
            add_users(cls.srv, ["alice", "bob", "carol", "dave"])
            cls.srv.start()
            wait_events_flowing(cls.srv)
        except Exception:
            cls.srv.cleanup()
            raise

    def joined(self):
        alice, carol = self.login(self.srv, "alice"), self.login(self.srv, "carol")
        pid = self.open_prechat(alice)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "join")
        return alice, carol, pid

    def test_1_typing_and_read_reach_the_other_side(self):
        alice, carol, pid = self.joined()
        m1 = self.post_message(alice, pid, "hello")["id"]
        m2 = self.post_message(alice, pid, "are you there?")["id"]
        vs, ag = self.stream(self.srv, alice, pid), self.stream(self.srv, carol, pid)

        self.assertStatus(alice.post(f"/api/prechats/{pid}/typing"), 204, "typing")
        ag.wait(lambda s: self.live(s, "typing", "visitor"), ANSWER, "the visitor's typing on the agent's stream")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/read", {"upto": m1}), 204, "read m1")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/read", {"upto": m2}), 204, "read m2")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/read", {"upto": m2}), 204, "read m2 again")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/read", {"upto": m1}), 204, "read m1 (older)")
        self.assertStatus(carol.post(f"/api/prechats/{pid}/typing"), 204, "agent typing (the marker)")
        vs.wait(lambda s: self.live(s, "typing", "agent"), ANSWER, "the agent's typing on the visitor's stream")
        # in-process events go out in order: the marker came after every read
        self.assertEqual(self.reads(vs, "agent"), [m1, m2], vs.describe())
        self.assertEqual(len(self.live(ag, "typing", "visitor")), 1, ag.describe())
        self.assertEqual(len(self.live(vs, "typing", "agent")), 1, vs.describe())
        self.assertEqual(self.reads(ag, "visitor"), [])

    def test_2_transcript_json_and_text(self):
        alice, carol, pid = self.joined()
        self.post_message(alice, pid, "line one\nline two")
        self.post_message(carol, pid, "hi, back\\slash")
        r = self.assertStatus(alice.get(f"/api/prechats/{pid}/transcript"), 200, "transcript")
        self.assertEqual(r.header("Content-Type"), "application/json")
        doc = r.json()
        self.assertEqual(doc["prechat"]["id"], pid)
        self.assertEqual(doc["prechat"]["topic"], "billing")
        self.assertEqual([(m["sender"], m["body"]) for m in doc["messages"]],
                         [("visitor", "line one\nline two"), ("agent", "hi, back\\slash")])
        listed = self.assertStatus(carol.get(f"/api/prechats/{pid}/messages"), 200, "messages").json()["messages"]
        self.assertEqual(doc["messages"], listed)
        self.assertEqual(self.assertStatus(carol.get(f"/api/prechats/{pid}/transcript?format=json"), 200,
                                           "agent json").json(), doc)
        t = self.assertStatus(carol.get(f"/api/prechats/{pid}/transcript?format=text"), 200, "text")
        self.assertTrue(t.header("Content-Type").startswith("text/plain"), t)
        lines = t.body.decode().split("\n")
        self.assertEqual(len(lines), 4, t.body)  # head, two messages, the final newline
        self.assertTrue(lines[0].startswith(f"Pre-chat {pid} (active), opened "), lines[0])
        self.assertTrue(lines[1].endswith("] visitor: line one\\nline two"), lines[1])
        self.assertTrue(lines[2].endswith("] agent: hi, back\\\\slash"), lines[2])
        self.assertEqual(lines[3], "")
        # a closed pre-chat keeps its transcript
        self.assertStatus(alice.post(f"/api/prechats/{pid}/close"), 200, "close")
        doc2 = self.assertStatus(alice.get(f"/api/prechats/{pid}/transcript"), 200, "closed").json()
        self.assertEqual(doc2["prechat"]["status"], "closed")
        self.assertEqual(doc2["messages"], doc["messages"])

    def test_4_transcript_longer_than_a_page(self):
        alice, carol, pid = self.joined()
        n = 2 * 200 + 7  # more than two pages of the message query (APP_LIST_MAX)
        for i in range(n):
            self.post_message(alice if i % 2 == 0 else carol, pid, f"message {i}")
        doc = self.assertStatus(carol.get(f"/api/prechats/{pid}/transcript"), 200, "transcript").json()
        self.assertEqual([m["body"] for m in doc["messages"]], [f"message {i}" for i in range(n)])
        ids = [m["id"] for m in doc["messages"]]
        self.assertEqual(ids, sorted(set(ids)))
        t = self.assertStatus(alice.get(f"/api/prechats/{pid}/transcript?format=text"), 200, "text").body.decode()
        lines = t.split("\n")
        self.assertEqual(len(lines), n + 2, t[-300:])
        self.assertTrue(lines[n].endswith(f"] {'visitor' if (n - 1) % 2 == 0 else 'agent'}: message {n - 1}"))

    def test_3_bad_input(self):
        alice, carol, pid = self.joined()
        m1 = self.post_message(alice, pid, "hello")["id"]
        bob, dave, anon = self.login(self.srv, "bob"), self.login(self.srv, "dave"), Browser(self.srv.port)
        waiting = self.open_prechat(self.login(self.srv, "alice"), "waiting one")
        paths = [("POST", f"/api/prechats/{pid}/typing", None), ("POST", f"/api/prechats/{pid}/read", {"upto": m1}),
                 ("GET", f"/api/prechats/{pid}/transcript", None)]
        for method, path, body in paths:
            self.assertJsonError(anon.request(method, path, body), 401, f"{path} without a session")
            self.assertJsonError(bob.request(method, path, body), 404, f"{path} by another visitor")
            self.assertJsonError(dave.request(method, path, body), 404, f"{path} by an agent who did not join")
            unknown = path.replace(f"/{pid}/", "/999999/")
            self.assertJsonError(alice.request(method, unknown, body), 404, f"{unknown}")
        # an agent sees a waiting pre-chat but is not a party to it
        self.assertJsonError(dave.post(f"/api/prechats/{waiting}/typing"), 404, "typing in a waiting one")
        self.assertJsonError(dave.get(f"/api/prechats/{waiting}/transcript"), 404, "transcript of a waiting one")
        for bad in ({}, {"upto": "3"}, {"upto": 0}, {"upto": -1}, {"upto": 1.5}, {"upto": None}, {"upto": [1]},
                    {"upto": 1e300}, {"upto": m1 + 1000}):
            self.assertJsonError(alice.post(f"/api/prechats/{pid}/read", bad), 422, f"read {bad}")
        for raw in (b"{", b"[1]", b'{"upto": 1, "upto": 2}', b"\xff"):
            self.assertJsonError(alice.post(f"/api/prechats/{pid}/read", raw), 400, f"read {raw!r}")
        self.assertJsonError(alice.post(f"/api/prechats/{pid}/read", b'{"upto": 1}',
                                        headers={"Content-Type": "text/plain"}), 415, "read as text/plain")
        for path, body in ((f"/api/prechats/{pid}/typing", None), (f"/api/prechats/{pid}/read", {"upto": m1})):
            self.assertJsonError(alice.post(path, body, headers={"Origin": "https://evil.example"}), 403,
                                 f"{path} from another site")
        for fmt in ("xml", "", "TEXT", "text%00"):
            self.assertJsonError(alice.get(f"/api/prechats/{pid}/transcript?format={fmt}"), 400, f"format={fmt}")
        self.assertJsonError(alice.get(f"/api/prechats/{pid}/typing"), 405, "GET typing")
        self.assertStatus(alice.post(f"/api/prechats/{pid}/close"), 200, "close")
        self.assertJsonError(alice.post(f"/api/prechats/{pid}/typing"), 409, "typing when closed")
        self.assertJsonError(carol.post(f"/api/prechats/{pid}/read", {"upto": m1}), 409, "read when closed")
        self.assertTrue(self.srv.alive())


# -------------------------------------------------------------------------------------------------------


class PairCase:
    """Mixed into a LiveCase whose setUpClass starts cls.a, cls.b: two instances on one store, no Redis."""

    @classmethod
    def start_pair(cls, database):
        cls.a = cls.track_class(TesseraServer(strategy="db", database=database))
        cls.b = cls.track_class(TesseraServer(strategy="db", database=database))
        add_users(cls.a, ["alice", "carol"])
        cls.a.start()
        cls.b.start()
        for s in (cls.a, cls.b):
            wait_events_flowing(s)

    def test_1_across_instances_each_event_once(self):
        a, b = self.a, self.b
        alice, carol = self.login(a, "alice"), self.login(b, "carol")  # each Browser talks to its own instance
        pid = self.open_prechat(alice)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200, "join")
        ids = [self.post_message(alice, pid, f"m{i}")["id"] for i in range(3)]
        vs_a = self.stream(a, alice, pid)  # the visitor, on a
        ag_b = self.stream(b, carol, pid)  # the agent, on b
        ag_a = self.stream(a, carol, pid)  # the agent again, on a (hears b's events through the store)

        self.assertStatus(alice.post(f"/api/prechats/{pid}/typing"), 204, "visitor typing on a")
        self.assertStatus(alice.post(f"/api/prechats/{pid}/read", {"upto": ids[0]}), 204, "visitor read on a")
        for upto in (ids[1], ids[2], ids[2], ids[1]):  # the repeat and the older one are not news
            self.assertStatus(carol.post(f"/api/prechats/{pid}/read", {"upto": upto}), 204, f"agent read {upto} on b")
        # b's marker after all of b's events; a's marker once a has heard it (so a has heard its own echoes,
        # which come before b's marker in the store's order); then b hears a's marker (and its own echoes)
        self.assertStatus(carol.post(f"/api/prechats/{pid}/typing"), 204, "agent typing on b (b's marker)")
        vs_a.wait(lambda s: self.live(s, "typing", "agent"), ANSWER, "b's marker on a")
        ag_a.wait(lambda s: self.live(s, "typing", "agent"), ANSWER, "b's marker on a's agent stream")
        self.assertStatus(alice.post(f"/api/prechats/{pid}/typing"), 204, "visitor typing on a (a's marker)")
        ag_b.wait(lambda s: len(self.live(s, "typing", "visitor")) >= 2, ANSWER, "a's marker on b")
        ag_a.wait(lambda s: len(self.live(s, "typing", "visitor")) >= 2, ANSWER, "a's marker on a")

        # b answers 204 once the event is handed on, and its two loops publish on two connections: b's
        # receipts may reach a in either order; a stream never sends an N that is not larger than its last,
        # so a gets [m1, m2] or just [m2], never a repeat. On b itself they went out in order, once each.
        for s in (vs_a, ag_b, ag_a):
            s.wait(lambda x: len(self.live(x, "typing", "visitor")) >= 2 and len(self.live(x, "typing", "agent")) >= 1
                   and ids[2] in self.reads(x, "agent") and self.reads(x, "visitor"), ANSWER, "every event")
            s.pump(0.05)  # whatever else is already there
            agent_reads = self.reads(s, "agent")
            self.assertIn(agent_reads, ([ids[1], ids[2]], [ids[2]]), s.describe())
            self.assertEqual(self.reads(s, "visitor"), [ids[0]], s.describe())
            self.assertEqual(len(self.live(s, "typing", "visitor")), 2, s.describe())
            self.assertEqual(len(self.live(s, "typing", "agent")), 1, s.describe())
        self.assertEqual(self.reads(ag_b, "agent"), [ids[1], ids[2]], ag_b.describe())
        # the echo of a's marker may still be on its way to a: one more round from b settles it
        self.assertStatus(carol.post(f"/api/prechats/{pid}/typing"), 204, "b's second marker")
        ag_a.wait(lambda s: len(self.live(s, "typing", "agent")) >= 2, ANSWER, "b's second marker on a")
        self.assertEqual(len(self.live(ag_a, "typing", "visitor")), 2, ag_a.describe())
        self.assertEqual(len(self.live(vs_a, "typing", "visitor")), 2, vs_a.describe())


class SqlitePair(PairCase, LiveCase):
    """Two processes sharing one SQLite file: events through the file's event table."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tessera-live-sqlite-")
        try:
            cls.start_pair(f"sqlite:{os.path.join(cls.tmp, 'shared.db')}")
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


class PostgresPair(PairCase, LiveCase):
    """Two processes sharing one PostgreSQL database: events by LISTEN/NOTIFY."""

    @classmethod
    def setUpClass(cls):
        if not HAVE_PG:
            raise HarnessError("PostgreSQL 15 is not installed (scripts/setup.sh installs it)")
        pg = shared_postgres()
        cls.dbname = f"tess_live_{os.getpid()}"
        pg.psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
        pg.psql(f"CREATE DATABASE {cls.dbname}")
        try:
            cls.start_pair(f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{cls.dbname}")
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


if __name__ == "__main__":
    main()

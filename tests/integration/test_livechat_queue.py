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
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (Browser, HarnessError, PostgresServer, ServerTestCase, TesseraServer,  # noqa: E402
                             main, shared_postgres, shared_postgres_if_started, stop_shared_postgres)
from test_push import USERS, add_users  # noqa: E402

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

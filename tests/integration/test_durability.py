"""kill -9 loses no acknowledged message: every message answered 201 is there after a restart on the same
database. Messages are posted from several threads at once, so that all server threads write."""

import threading

from tessera_harness import ServerTestCase, TesseraServer, free_port, main

N_THREADS = 4
PER_THREAD = 25


class Durability(ServerTestCase):
    def test_kill9_keeps_every_acknowledged_message(self):
        srv = self.track(TesseraServer(strategy="db"))
        srv.add_user("vera", "visitor", "vera-pass")
        srv.add_user("axel", "agent", "axel-pass")
        srv.start()

        vera, axel = srv.browser("vera"), srv.browser("axel")
        self.assertStatus(vera.login("vera", "vera-pass"), 200)
        self.assertStatus(axel.login("axel", "axel-pass"), 200)
        r = self.assertStatus(vera.post("/api/prechats", {"topic": "durability"}), 201)
        pid = r.json()["id"]
        self.assertStatus(axel.post(f"/api/prechats/{pid}/join"), 200)

        acked, failures, lock = {}, [], threading.Lock()

        def writer(t):
            b = vera if t % 2 == 0 else axel
            for i in range(PER_THREAD):
                body = f"t{t}-m{i}"
                r = b.post(f"/api/prechats/{pid}/messages", {"body": body})
                with lock:
                    if r.status == 201:
                        acked[r.json()["id"]] = body
                    else:
                        failures.append(r)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(N_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(failures, [])
        self.assertEqual(len(acked), N_THREADS * PER_THREAD)

        srv.kill9()  # right after the last 201: no graceful shutdown, no checkpoint
        self.assertEqual(srv.proc.returncode, -9)
        srv.start(port=free_port())  # same database (a fresh port: TIME_WAIT is not what this tests)

        b = srv.browser("vera-again")
        self.assertStatus(b.login("vera", "vera-pass"), 200)
        r = self.assertStatus(b.get(f"/api/prechats/{pid}/messages?after=0&limit=200"), 200)
        got = {m["id"]: m["body"] for m in r.json()["messages"]}
        self.assertEqual(got, acked)
        ids = [m["id"] for m in r.json()["messages"]]
        self.assertEqual(ids, sorted(ids))
        r = self.assertStatus(b.get(f"/api/prechats/{pid}/meta"), 200)
        self.assertEqual(r.json()["messageCount"], len(acked))
        self.assertEqual(r.json()["lastMessageId"], max(acked))
        self.assertEqual(r.json()["status"], "active")

        # and the restarted server keeps going
        r = self.assertStatus(b.post(f"/api/prechats/{pid}/messages", {"body": "after restart"}), 201)
        self.assertGreater(r.json()["id"], max(acked))


if __name__ == "__main__":
    main()

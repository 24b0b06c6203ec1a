"""
Login abuse and quotas, against a real tessera serve (every client here is 127.0.0.1):
  - brute force: failed logins are counted per user name and per client address; past the bound the name (or
    the address) is locked out: 429, JSON, Retry-After, the same answer for known and unknown names, the right
    password refused too, and no argon2 run for a refused attempt (password_hashes_total); a success forgets the
    name's failures; the lock-out ends; concurrent guesses are counted before their outcome is known;
  - the password queue: logins whose client hung up are dropped before they run (password_jobs_dropped_total,
    and every job either ran or was dropped); jobs of one address are bounded (429); a full queue is 503 with
    Retry-After;
  - quotas: open pre-chats per visitor, messages per user (429, JSON, Retry-After);
  - bad settings are refused with one line and exit 2.
"""
import json
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import HTTP_TIMEOUT, Response, ServerTestCase, TesseraServer, wait_until  # noqa: E402

WAIT = 60.0  # deadline of every wait on a condition (sanitizer builds and a loaded machine are slow)
ANSWER_TIMEOUT = max(HTTP_TIMEOUT, 60.0)  # a burst of logins queues argon2 runs: the last answer comes late


def login_bytes(user, password):
    body = json.dumps({"username": user, "password": password}).encode()
    return (b"POST /api/auth/login HTTP/1.1\r\nHost: tessera\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def read_response(sock):
    """Reads one response (the server closes after it: Connection: close) into a Response."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return Response(status, lines[0].split(" ", 2)[-1], headers, body)


def send_logins(port, attempts):
    """Sends every (user, password) login at once, on a connection each, before reading any answer; returns
    the answers in order."""
    socks = []
    try:
        for user, password in attempts:
            s = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
            socks.append(s)
        for s, (user, password) in zip(socks, attempts):
            s.sendall(login_bytes(user, password))
        return [read_response(s) for s in socks]
    finally:
        for s in socks:
            s.close()


class LimitsCase(ServerTestCase):
    def server(self, limits, users=(("alice", "visitor", "alice-pw"),)):
        srv = self.track(TesseraServer(strategy="db", limits=limits))
        for name, role, password in users:
            srv.add_user(name, role, password)
        return srv.start()

    def assertRetryAfter(self, resp, status, code=None, most=None):
        doc = self.assertJsonError(resp, status)
        if code is not None:
            self.assertEqual(doc["error"], code, resp)
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, f"no Retry-After: {resp!r}")
        self.assertTrue(ra.isdigit() and int(ra) >= 1, resp)
        if most is not None:
            self.assertLessEqual(int(ra), most, resp)
        return int(ra)


class BruteForce(LimitsCase):
    """The user-name bound at its default (10 failures per 15 minutes, then 15 minutes locked out)."""

    def setUp(self):
        self.srv = self.server({"login-max-failures": None, "login-address-max-failures": None,
                                "login-window": None, "login-lockout": None},
                               users=[("alice", "visitor", "alice-pw"), ("bob", "visitor", "bob-pw"),
                                      ("carol", "visitor", "carol-pw")])

    def guesses(self, user, n):
        b = self.srv.browser()
        return [b.login(user, f"guess-{i}") for i in range(n)]

    def test_twenty_wrong_then_the_right_one(self):
        before = self.srv.metrics()
        answers = self.guesses("alice", 20)
        for r in answers[:10]:
            self.assertJsonError(r, 401)
        for r in answers[10:]:
            self.assertRetryAfter(r, 429, "too_many_attempts", most=900)
        # The right password is refused too while the name is locked out.
        self.assertRetryAfter(self.srv.browser().login("alice", "alice-pw"), 429, "too_many_attempts")
        after = self.srv.metrics()
        # Refused attempts ran no argon2: only the ten answered ones did.
        self.assertEqual(after["tessera_password_hashes_total"] - before["tessera_password_hashes_total"], 10)
        self.assertEqual(after["tessera_login_throttled_user_total"] - before["tessera_login_throttled_user_total"], 11)
        # Another name from the same address is not affected.
        self.assertStatus(self.srv.browser().login("bob", "bob-pw"), 200)

    def test_unknown_and_known_names_get_the_same_answers(self):
        known, unknown = self.guesses("alice", 12), self.guesses("nobody-at-all", 12)
        for k, u in zip(known, unknown):
            self.assertEqual(k.status, u.status)
            self.assertEqual(k.body, u.body)
            self.assertEqual(sorted(n.lower() for n, _ in k.headers), sorted(n.lower() for n, _ in u.headers))
            self.assertEqual(k.header("Retry-After") is None, u.header("Retry-After") is None)
        self.assertEqual([r.status for r in known], [401] * 10 + [429] * 2)

    def test_a_success_forgets_the_failures(self):
        for _ in range(3):
            for r in self.guesses("carol", 9):
                self.assertJsonError(r, 401)
            self.assertStatus(self.srv.browser().login("carol", "carol-pw"), 200)

    def test_concurrent_guesses_are_counted_before_their_outcome(self):
        before = self.srv.metrics()["tessera_password_hashes_total"]
        answers = send_logins(self.srv.port, [("bob", f"guess-{i}") for i in range(25)])
        statuses = sorted(r.status for r in answers)
        self.assertEqual(statuses, [401] * 10 + [429] * 15, answers)
        self.assertEqual(self.srv.metrics()["tessera_password_hashes_total"] - before, 10)


class LockoutEnds(LimitsCase):
    def test_the_lockout_ends(self):
        srv = self.server({"login-max-failures": 3, "login-lockout": 10})
        b = srv.browser()
        for i in range(3):
            self.assertJsonError(b.login("alice", f"guess-{i}"), 401)
        self.assertRetryAfter(b.login("alice", "alice-pw"), 429, most=10)
        # Attempts during the lock-out are refused and not counted; once it is over, the right one works.
        wait_until(lambda: b.login("alice", "alice-pw").status == 200, WAIT, "the end of the lock-out")

    def test_the_address_bound(self):
        srv = self.server({"login-address-max-failures": 5},
                          users=[("alice", "visitor", "alice-pw"), ("bob", "visitor", "bob-pw")])
        b = srv.browser()
        self.assertStatus(b.login("bob", "bob-pw"), 200)  # a success takes its attempt back
        for i in range(5):
            self.assertJsonError(b.login(f"someone-{i}", "guess"), 401)
        # Five failures from this address, each of another name: the address is locked out, for every name.
        self.assertRetryAfter(b.login("alice", "alice-pw"), 429, "too_many_attempts")
        self.assertRetryAfter(b.login("someone-new", "guess"), 429, "too_many_attempts")
        self.assertGreaterEqual(srv.metrics()["tessera_login_throttled_address_total"], 2)


class PasswordQueue(LimitsCase):
    def test_abandoned_logins_are_dropped_before_they_run(self):
        n = 60
        srv = self.server({"password-workers": 1})
        before = srv.metrics()
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=HTTP_TIMEOUT) for _ in range(n)]
        try:
            for i, s in enumerate(socks):
                s.sendall(login_bytes(f"ghost-{i}", "guess"))

            def all_submitted():
                m = srv.metrics()
                ran = m["tessera_password_hashes_total"] - before["tessera_password_hashes_total"]
                return ran + m["tessera_password_queue_depth"] >= n - 1  # one may be on the worker
            wait_until(all_submitted, WAIT, f"{n} logins queued")
        finally:
            for s in socks:
                s.close()  # the clients give up
        wait_until(lambda: srv.metrics()["tessera_password_queue_depth"] == 0, WAIT, "an empty queue")
        self.assertStatus(srv.browser().login("alice", "alice-pw"), 200)

        def settled():
            m = srv.metrics()
            ran = m["tessera_password_hashes_total"] - before["tessera_password_hashes_total"]
            dropped = m["tessera_password_jobs_dropped_total"] - before["tessera_password_jobs_dropped_total"]
            return (ran, dropped) if ran + dropped == n + 1 else None
        ran, dropped = wait_until(settled, WAIT, "every job ran or was dropped")
        # One worker runs ~20 checks a second: most of the abandoned ones were still queued when dropped.
        self.assertGreaterEqual(dropped, n // 2, f"ran {ran}, dropped {dropped}")
        self.assertLessEqual(ran, n // 2 + 1, f"ran {ran}, dropped {dropped}")

    def test_jobs_of_one_address_are_bounded(self):
        srv = self.server({"password-workers": 1, "login-queue-per-address": 3})
        before = srv.metrics()
        answers = send_logins(srv.port, [(f"ghost-{i}", "guess") for i in range(30)])
        refused = [r for r in answers if r.status == 429]
        self.assertTrue(refused, [r.status for r in answers])
        for r in refused:
            self.assertRetryAfter(r, 429, "too_many_logins")
        self.assertTrue(all(r.status in (401, 429) for r in answers), [r.status for r in answers])
        m = srv.metrics()
        self.assertEqual(m["tessera_login_queue_address_full_total"] - before["tessera_login_queue_address_full_total"],
                         len(refused))
        self.assertEqual(m["tessera_password_hashes_total"] - before["tessera_password_hashes_total"],
                         len(answers) - len(refused))
        self.assertStatus(srv.browser().login("alice", "alice-pw"), 200)

    def test_a_full_queue_is_503_with_retry_after(self):
        srv = self.server({"password-workers": 1, "password-queue": 2})
        answers = send_logins(srv.port, [(f"ghost-{i}", "guess") for i in range(30)])
        full = [r for r in answers if r.status == 503]
        self.assertTrue(full, [r.status for r in answers])
        for r in full:
            self.assertRetryAfter(r, 503, "busy")
        self.assertEqual(srv.metrics()["tessera_password_queue_full_total"], len(full))
        self.assertStatus(srv.browser().login("alice", "alice-pw"), 200)


class Quotas(LimitsCase):
    def test_open_prechats_per_visitor(self):
        srv = self.server({"max-open-prechats": None},
                          users=[("vic", "visitor", "vic-pw"), ("val", "visitor", "val-pw")])
        vic, val = srv.browser(), srv.browser()
        self.assertStatus(vic.login("vic", "vic-pw"), 200)
        self.assertStatus(val.login("val", "val-pw"), 200)
        ids = []
        for i in range(3):  # the default bound
            r = vic.post("/api/prechats", {"topic": f"t{i}"})
            self.assertStatus(r, 201)
            ids.append(r.json()["id"])
        self.assertRetryAfter(vic.post("/api/prechats", {"topic": "one too many"}), 429, "too_many_prechats")
        self.assertStatus(val.post("/api/prechats", {"topic": "another visitor"}), 201)
        self.assertStatus(vic.post(f"/api/prechats/{ids[0]}/close"), 200)
        self.assertStatus(vic.post("/api/prechats", {"topic": "after a close"}), 201)
        self.assertRetryAfter(vic.post("/api/prechats", {"topic": "one too many"}), 429, "too_many_prechats")
        self.assertEqual(srv.metrics()["tessera_prechats_refused_total"], 2)

    def test_messages_per_user(self):
        srv = self.server({"message-rate": 60, "message-burst": 5},
                          users=[("vic", "visitor", "vic-pw"), ("ada", "agent", "ada-pw")])
        vic, ada = srv.browser(), srv.browser()
        self.assertStatus(vic.login("vic", "vic-pw"), 200)
        self.assertStatus(ada.login("ada", "ada-pw"), 200)
        r = vic.post("/api/prechats", {"topic": "flood"})
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        self.assertStatus(ada.post(f"/api/prechats/{pid}/join"), 200)
        for i in range(5):
            self.assertStatus(vic.post(f"/api/prechats/{pid}/messages", {"body": f"m{i}"}), 201)
        self.assertRetryAfter(vic.post(f"/api/prechats/{pid}/messages", {"body": "too fast"}), 429,
                              "too_many_messages", most=1)
        self.assertStatus(ada.post(f"/api/prechats/{pid}/messages", {"body": "the agent is not limited by it"}), 201)
        self.assertGreaterEqual(srv.metrics()["tessera_messages_throttled_total"], 1)
        # One message a second, sustained: the next one is allowed soon.
        wait_until(lambda: vic.post(f"/api/prechats/{pid}/messages", {"body": "later"}).status == 201, WAIT,
                   "the rate to allow a message")
        self.assertEqual(len(vic.get(f"/api/prechats/{pid}/messages").json()["messages"]), 7)


class Settings(unittest.TestCase):
    def run_serve(self, *args, env=None):
        srv = TesseraServer(strategy="db")
        try:
            e = dict(srv.env, **(env or {}))
            return subprocess.run([srv.bin, "serve", "--listen", "127.0.0.1:1", "--database",
                                   f"sqlite:{os.path.join(srv.tmpdir, 'x.db')}", *args],
                                  capture_output=True, env=e, timeout=10, cwd=srv.tmpdir)
        finally:
            srv.cleanup()

    def assertRefused(self, r, name):
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(name, err)

    def test_bad_values_are_refused(self):
        self.assertRefused(self.run_serve("--login-max-failures", "0"), "--login-max-failures")
        self.assertRefused(self.run_serve("--login-window", "10s"), "--login-window")
        self.assertRefused(self.run_serve("--password-workers", "1000"), "--password-workers")
        self.assertRefused(self.run_serve(env={"TESSERA_MESSAGE_RATE": "fast"}), "TESSERA_MESSAGE_RATE")
        self.assertRefused(self.run_serve(env={"TESSERA_MAX_OPEN_PRECHATS": "-1"}), "TESSERA_MAX_OPEN_PRECHATS")

    def test_help_lists_them(self):
        srv = TesseraServer(strategy="db")
        try:
            out = srv.run_cli("serve", "--help").stdout.decode()
        finally:
            srv.cleanup()
        for name in ("--login-max-failures", "TESSERA_LOGIN_LOCKOUT", "--login-queue-per-address",
                     "--password-workers", "--max-open-prechats", "TESSERA_MESSAGE_RATE"):
            self.assertIn(name, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

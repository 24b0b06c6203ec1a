"""Backend faults in the middle of a polling run. A few client threads poll GET /api/prechats/{id}/meta and
GET /api/auth/session continuously with valid sessions (and one with a logged-out session) while the store that
holds the truth goes away and comes back:

- redis strategy: Redis stopped (SIGTERM) and restarted on the same port with its AOF (sessions survive);
  Redis restarted without persistence (sessions lost: re-login required, never 200);
  Redis paused with SIGSTOP, then SIGCONT;
- db strategy on PostgreSQL: PostgreSQL stopped (fast shutdown) and restarted on the same data dir, while
  messages are being written: every message answered 201 is there afterwards; all PostgreSQL processes paused
  with SIGSTOP, then SIGCONT.

Every reply is recorded. While the backend is down: 503 with Retry-After and a JSON error, /readyz 503, no reply
slower than BACKEND_TIMEOUT_MS + 1 s. Never a 500, never a hang, never a 200 for a logged-out session. Within
1.5 s of the backend answering again (PING / pg_isready), requests succeed again. The server is still alive at
the end and exits 0 on SIGTERM (under ASan a leak makes that exit code non-zero).
"""

import collections
import json
import os
import shutil
import signal
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (HTTP_TIMEOUT, Browser, HarnessError, PostgresServer,  # noqa: E402
                             RedisServer, ServerTestCase, TesseraServer, main, wait_until)

HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))

BACKEND_TIMEOUT_MS = 1000
SLOWEST_REPLY = BACKEND_TIMEOUT_MS / 1000 + 1.0  # no reply may take longer than the backend timeout + 1 s
RECOVERY = 1.5  # seconds from the backend answering again to requests succeeding again
MIN_SAMPLES = 4  # replies per poller needed in each phase before moving on
PHASE_TIMEOUT = 15.0  # deadline for collecting those samples
OK = (200, 304)

USERS = {"alice": ("visitor", "alice-pass-1"), "carol": ("agent", "carol-pass-1"), "lou": ("visitor", "lou-pass-1")}

Reply = collections.namedtuple("Reply", "t0 t1 label method path status retry_after ctype body error")


class Traffic:
    """Client threads, each repeating its requests until stopped, recording every reply (or error) with its
    start and end time (time.monotonic). Each request is sent on its own connection with a fixed Cookie header,
    so a Set-Cookie in a reply never changes what the next request sends."""

    def __init__(self, port):
        self.port = port
        self.replies = []
        self.acked = {}  # message id -> body, for every POST answered 201
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _one(self, label, method, path, cookie, body=None):
        b = Browser(self.port, name=label)
        t0 = time.monotonic()
        status = retry = ctype = error = None
        data = b""
        try:
            r = b.request(method, path, body=body, cookies=cookie, timeout=max(HTTP_TIMEOUT, 2 * SLOWEST_REPLY))
            status, retry, ctype, data = r.status, r.header("Retry-After"), r.header("Content-Type"), r.body
        except Exception as exc:  # a hang or a dropped connection: recorded, the test fails on it
            error = repr(exc)
        rep = Reply(t0, time.monotonic(), label, method, path, status, retry, ctype, data[:300], error)
        with self._lock:
            self.replies.append(rep)
        return rep

    def poller(self, label, cookie, paths, interval=0.01):
        def run():
            while not self._stop.is_set():
                for p in paths:
                    self._one(label, "GET", p, cookie)
                self._stop.wait(interval)
        self._threads.append(threading.Thread(target=run, name=label, daemon=True))

    def writer(self, label, cookies, path, interval=0.02):
        """POSTs numbered messages, alternating between the cookies, recording the 201s in self.acked."""
        def run():
            i = 0
            while not self._stop.is_set():
                body = f"{label}-{i}"
                rep = self._one(label, "POST", path, cookies[i % len(cookies)], {"body": body})
                if rep.status == 201:
                    with self._lock:
                        self.acked[json.loads(rep.body)["id"]] = body
                i += 1
                self._stop.wait(interval)
        self._threads.append(threading.Thread(target=run, name=label, daemon=True))

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2 * SLOWEST_REPLY + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise HarnessError(f"client threads still blocked: {alive}")

    def snapshot(self):
        with self._lock:
            return list(self.replies)

    def wait_samples(self, labels, since, n=MIN_SAMPLES, timeout=PHASE_TIMEOUT, also=None):
        """Waits until each label has n replies that started at or after since; calls also() on every round
        (e.g. to poll /readyz)."""
        def enough():
            if also is not None:
                also()
            got = collections.Counter(r.label for r in self.snapshot() if r.t0 >= since)
            return all(got[lb] >= n for lb in labels)
        wait_until(enough, timeout, f"{n} replies for each of {labels}", interval=0.05)


def cookie_header(server, browser):
    return f"{server.cookie_name}={browser.jar[server.cookie_name]}"


class FaultTestCase(ServerTestCase):
    """Shared set-up and checks. Subclasses start the backend and the server (self.server)."""

    strategy = None

    def setUp(self):
        self.backends = []  # RedisServer / PostgresServer: their logs are printed when a test fails

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for b in getattr(self, "backends", []):
                sys.stderr.write(f"\n===== log of {type(b).__name__} (port {b.port}) =====\n{b.log_text()}\n")
        return out

    def start_server(self, **kw):
        env = {"BACKEND_TIMEOUT_MS": str(BACKEND_TIMEOUT_MS)}
        srv = self.track(TesseraServer(strategy=self.strategy, env=env, **kw))
        for name, (role, password) in USERS.items():
            srv.add_user(name, role, password)
        srv.start()
        self.server = srv
        return srv

    def login(self, name):
        b = self.server.browser(name)
        self.assertStatus(b.login(name, USERS[name][1]), 200, f"login {name}")
        return b

    def set_up_traffic(self, writer=False):
        """alice (visitor) and carol (agent, joined) poll the pre-chat's meta and their session; lou polls
        with a session that was logged out. Returns (traffic, pid, valid labels)."""
        alice, carol = self.login("alice"), self.login("carol")
        r = self.assertStatus(alice.post("/api/prechats", {"topic": "faults"}), 201)
        pid = r.json()["id"]
        self.assertStatus(carol.post(f"/api/prechats/{pid}/join"), 200)
        lou = self.login("lou")
        lou_cookie = cookie_header(self.server, lou)
        self.assertStatus(lou.post("/api/auth/logout"), 204)
        self.assertJsonError(lou.get("/api/auth/session", cookies=lou_cookie), 401)

        self.alice_cookie = cookie_header(self.server, alice)
        meta, sess = f"/api/prechats/{pid}/meta", "/api/auth/session"
        t = Traffic(self.server.port)
        t.poller("alice-meta", self.alice_cookie, [meta])
        t.poller("carol-meta", cookie_header(self.server, carol), [meta])
        t.poller("alice-session", self.alice_cookie, [sess, meta])
        t.poller("lou-logged-out", lou_cookie, [meta, sess])
        labels = ["alice-meta", "carol-meta", "alice-session"]
        if writer:
            t.writer("writer", [self.alice_cookie, cookie_header(self.server, carol)],
                     f"/api/prechats/{pid}/messages")
            labels.append("writer")
        self.addCleanup(t._stop.set)
        return t, pid, labels

    def readyz(self):
        return Browser(self.server.port).get("/readyz", cookies=False, timeout=2 * SLOWEST_REPLY).status

    # -- checks over the recorded replies
    def check_all(self, replies):
        """Over the whole run: no 5xx but 503, no hang or error, none slower than allowed, no 200 for the
        logged-out session, every 503 a JSON error with Retry-After."""
        bad = []
        for r in replies:
            why = None
            if r.error is not None:
                why = "no reply"
            elif r.status >= 500 and r.status != 503:
                why = f"{r.status}"
            elif r.t1 - r.t0 > SLOWEST_REPLY:
                why = f"reply after {r.t1 - r.t0:.2f}s (limit {SLOWEST_REPLY:.1f}s)"
            elif r.label == "lou-logged-out" and r.status not in (401, 503):
                why = f"{r.status} for a logged-out session"
            elif r.status == 503:
                if not (r.retry_after or "").strip().isdigit():
                    why = "503 without a Retry-After in seconds"
                elif (r.ctype or "").split(";")[0].strip().lower() != "application/json":
                    why = f"503 with Content-Type {r.ctype!r}"
            if why:
                bad.append(f"{why}: {r}")
        self.assertEqual(bad[:10], [], f"{len(bad)} bad replies of {len(replies)} (first 10 shown)")

    def check_window(self, replies, labels, start, end, allowed, what):
        """Every reply of those labels that started at/after start and ended before end has a status in
        allowed; and there is at least one per label."""
        window = [r for r in replies if r.label in labels and r.t0 >= start and r.t1 <= end]
        wrong = [r for r in window if r.status not in allowed]
        self.assertEqual(wrong[:10], [], f"{what}: {len(wrong)} of {len(window)} replies not in {allowed}")
        seen = collections.Counter(r.label for r in window)
        for lb in labels:
            self.assertGreater(seen[lb], 0, f"{what}: no reply for {lb} in the window")

    def wait_recovered(self, ready_at, what):
        """Polls the session endpoint from the moment the backend answers; asserts 200 within RECOVERY."""
        b = Browser(self.server.port)
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            b.get("/api/auth/session", cookies=self.alice_cookie, timeout=2 * SLOWEST_REPLY)),
            RECOVERY + 10, f"a 200 after {what}", interval=0.02)
        took = time.monotonic() - ready_at
        self.recovery_took = took
        self.assertLessEqual(took, RECOVERY, f"first 200 came {took:.2f}s after {what} (limit {RECOVERY}s)")
        wait_until(lambda: self.readyz() == 200, RECOVERY + 10, "/readyz 200", interval=0.02)
        took = time.monotonic() - ready_at
        self.assertLessEqual(took, RECOVERY + 0.5, f"/readyz 200 came {took:.2f}s after {what}")
        return r

    def summary(self, replies):
        """One line per test on stderr: replies by status, the slowest reply, the recovery time."""
        by = collections.Counter(r.status for r in replies)
        slowest = max((r.t1 - r.t0 for r in replies), default=0.0)
        rec = getattr(self, "recovery_took", None)
        sys.stderr.write(f"\n  [{self._testMethodName}] {len(replies)} replies {dict(sorted(by.items(), key=str))}, "
                         f"slowest {slowest:.3f}s" + (f", recovered in {rec:.3f}s" if rec is not None else "") + "\n")

    def finish(self, traffic):
        traffic.stop()
        replies = traffic.snapshot()
        self.summary(replies)
        self.assertTrue(self.server.alive(), f"tessera serve exited with {self.server.proc.returncode}")
        self.assertEqual(Browser(self.server.port).get("/healthz", cookies=False).status, 200)
        rc, clean = self.server.stop()
        self.assertTrue(clean, "tessera serve did not exit on SIGTERM")
        self.assertEqual(rc, 0, "tessera serve exit code after SIGTERM (ASan: a leak or an error report)")
        return replies

    def outage(self, traffic, labels, take_down, bring_back):
        """Runs one outage: healthy phase, take_down() (returns once the backend is gone), a down phase
        while /readyz must answer 503, bring_back() (returns once the backend answers). Returns the marks."""
        m = {"begin": time.monotonic()}
        traffic.wait_samples(labels, m["begin"])
        m["down_begin"] = time.monotonic()
        take_down()
        m["down"] = time.monotonic()
        ready_statuses = []
        traffic.wait_samples(labels, m["down"], also=lambda: ready_statuses.append(self.readyz()))
        m["up_begin"] = time.monotonic()
        self.assertTrue(ready_statuses, "/readyz never polled")
        self.assertEqual(set(ready_statuses), {503}, f"/readyz while the backend was down: {ready_statuses}")
        self.down_login = Browser(self.server.port).login("alice", USERS["alice"][1])
        bring_back()
        m["up"] = time.monotonic()
        return m


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed (scripts/setup.sh installs it)")
class RedisFaults(FaultTestCase):
    strategy = "redis"

    def start_redis(self, *extra):
        redis = RedisServer(extra_args=extra)
        self.addCleanup(redis.cleanup)
        redis.start()
        self.backends.append(redis)
        return redis

    def test_a_redis_stopped_and_restarted_with_its_data(self):
        redis = self.start_redis("--appendonly", "yes", "--appendfsync", "always")
        self.start_server(extra_args=["--redis", redis.url])
        traffic, _, labels = self.set_up_traffic()
        traffic.start()
        m = self.outage(traffic, labels, redis.stop, redis.start)
        self.assertJsonError(self.down_login, 503, "login while Redis is down")
        self.wait_recovered(m["up"], "Redis answered PING again")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        with redis.client() as c:  # the data really survived: this is not a re-login
            self.assertGreater(c.command("DBSIZE"), 0)
        replies = self.finish(traffic)

        self.check_all(replies)
        self.check_window(replies, labels, m["begin"], m["down_begin"], OK, "before the outage")
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), "while Redis was down")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), OK,
                          f"{RECOVERY}s after Redis came back")
        self.check_window(replies, ["lou-logged-out"], m["up"] + RECOVERY, float("inf"), (401,),
                          "logged-out session after Redis came back")

    def test_b_redis_paused_with_sigstop(self):
        redis = self.start_redis()
        self.start_server(extra_args=["--redis", redis.url])
        traffic, _, labels = self.set_up_traffic()
        traffic.start()

        def pause():
            redis.proc.send_signal(signal.SIGSTOP)
            wait_until(lambda: _proc_state(redis.proc.pid) == "T", 5, "redis-server stopped (state T)")

        def resume():
            redis.proc.send_signal(signal.SIGCONT)
            wait_until(lambda: _proc_state(redis.proc.pid) != "T", 5, "redis-server running again")

        self.addCleanup(lambda: redis.proc.poll() is None and redis.proc.send_signal(signal.SIGCONT))
        m = self.outage(traffic, labels, pause, resume)
        self.assertJsonError(self.down_login, 503, "login while Redis is paused")
        self.wait_recovered(m["up"], "SIGCONT to Redis")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        replies = self.finish(traffic)

        self.check_all(replies)
        self.check_window(replies, labels, m["begin"], m["down_begin"], OK, "before the pause")
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), "while Redis was paused")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), OK,
                          f"{RECOVERY}s after SIGCONT")

    def test_c_redis_restarted_empty_requires_a_new_login(self):
        """Without persistence the sessions are gone with Redis: the old cookie is 401 (never 200), and a new
        login works."""
        redis = self.start_redis()
        self.start_server(extra_args=["--redis", redis.url])
        traffic, _, labels = self.set_up_traffic()
        traffic.start()
        m = self.outage(traffic, labels, redis.stop, redis.start)
        b = Browser(self.server.port)
        wait_until(lambda: b.get("/api/auth/session", cookies=self.alice_cookie).status == 401,
                   RECOVERY + 10, "401 for a session lost with Redis's data")
        took = time.monotonic() - m["up"]
        self.assertLessEqual(took, RECOVERY, f"first 401 came {took:.2f}s after Redis answered PING")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        self.assertStatus(self.login("alice").get("/api/auth/session"), 200, "a new login after the restart")
        replies = self.finish(traffic)

        self.check_all(replies)
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), "while Redis was down")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), (401,),
                          f"{RECOVERY}s after an empty Redis came back")
        after = [r for r in replies if r.t0 >= m["up_begin"] and r.status in OK]
        self.assertEqual(after[:5], [], "200 for a session that no longer exists")


@unittest.skipUnless(HAVE_PG, "PostgreSQL 15 not installed (scripts/setup.sh installs it)")
class PostgresFaults(FaultTestCase):
    strategy = "db"

    def test_d_postgres_stopped_and_restarted_keeps_acknowledged_writes(self):
        pg = PostgresServer()
        self.addCleanup(pg.cleanup)
        self.backends.append(pg)
        pg.start()
        self.start_server(database=pg.url)
        traffic, pid, labels = self.set_up_traffic(writer=True)
        traffic.start()
        m = self.outage(traffic, labels, pg.stop, pg.start)
        self.assertJsonError(self.down_login, 503, "login while PostgreSQL is down")
        self.wait_recovered(m["up"], "pg_isready succeeded")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        replies = self.finish_keep_server(traffic)

        self.check_all(replies)
        self.check_window(replies, labels, m["begin"], m["down_begin"], OK + (201,), "before the outage")
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), "while PostgreSQL was down")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), OK + (201,),
                          f"{RECOVERY}s after PostgreSQL came back")

        # every message answered 201, before, during or after the outage, is there
        acked = dict(traffic.acked)
        self.assertGreater(len(acked), 0)
        b = Browser(self.server.port)
        got, after = {}, 0
        for _ in range(10000):
            r = self.assertStatus(b.get(f"/api/prechats/{pid}/messages?after={after}&limit=200",
                                        cookies=self.alice_cookie), 200)
            page = r.json()["messages"]
            if not page:
                break
            got.update((x["id"], x["body"]) for x in page)
            after = page[-1]["id"]
        missing = {k: v for k, v in acked.items() if got.get(k) != v}
        self.assertEqual(missing, {}, f"{len(missing)} of {len(acked)} acknowledged messages lost")
        rc, clean = self.server.stop()
        self.assertTrue(clean, "tessera serve did not exit on SIGTERM")
        self.assertEqual(rc, 0, "tessera serve exit code after SIGTERM (ASan: a leak or an error report)")

    def test_e_postgres_paused_with_sigstop(self):
        """Every PostgreSQL process (postmaster and backends) paused: calls time out (503 within the backend
        timeout + 1 s, no hang), and they succeed again right after SIGCONT."""
        pg = PostgresServer()
        self.addCleanup(pg.cleanup)
        self.backends.append(pg)
        pg.start()
        self.start_server(database=pg.url)
        traffic, _, labels = self.set_up_traffic()
        traffic.start()
        paused = []

        def pause():
            paused[:] = [pg.proc.pid] + _children(pg.proc.pid)
            for p in paused:
                os.kill(p, signal.SIGSTOP)
            wait_until(lambda: all(_proc_state(p) == "T" for p in paused), 5, "PostgreSQL processes stopped")

        def resume():
            for p in paused:
                os.kill(p, signal.SIGCONT)
            wait_until(lambda: all(_proc_state(p) != "T" for p in paused), 5, "PostgreSQL processes running")

        def cont_all():
            for p in paused:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.addCleanup(cont_all)
        m = self.outage(traffic, labels, pause, resume)
        self.assertJsonError(self.down_login, 503, "login while PostgreSQL is paused")
        self.wait_recovered(m["up"], "SIGCONT to PostgreSQL")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        replies = self.finish(traffic)

        self.check_all(replies)
        self.check_window(replies, labels, m["begin"], m["down_begin"], OK, "before the pause")
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), "while PostgreSQL was paused")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), OK, f"{RECOVERY}s after SIGCONT")

    def finish_keep_server(self, traffic):
        traffic.stop()
        self.summary(traffic.snapshot())
        self.assertTrue(self.server.alive(), f"tessera serve exited with {self.server.proc.returncode}")
        return traffic.snapshot()


def _children(pid):
    """Pids of the direct children of pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _proc_state(pid):
    """The process state letter ("T" when stopped); "gone" once it exited (a backend of a connection that
    tessera dropped on timeout ends as soon as it runs again)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


if __name__ == "__main__":
    main()

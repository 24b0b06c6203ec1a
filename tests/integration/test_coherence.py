"""Cache coherence across two `tessera serve` processes sharing one Redis and one database (issue 4).

Every scenario starts its own redis-server (and, for the PostgreSQL variants, a database in one PostgreSQL 15
cluster for the module) and two servers A and B with --redis; with SQLite both servers share one file.

- MetaCoherence: GET /api/prechats/{id}/meta is served from B's meta cache (ETag stable, 304s, hit counter
  grows); a message, a join and a close on A show on B within 1 s (new messageCount/lastMessageId/status and a
  new ETag, never the old one again); queue positions on B move up within 1 s when a waiting pre-chat ahead is
  joined or closed on A.
- SingleFlight*: 32 concurrent GET /api/auth/session on B for a session that is in neither B's near-cache (L1)
  nor Redis (L2): Redis is paused (SIGSTOP) until all 32 requests are inside B's session check, so they are
  concurrent misses for certain; then exactly one backend lookup (store get, L2 miss, db query) answers all.
- NegativeCache*: a validly signed cookie for a session id that does not exist: 50 requests, one lookup.
- NearCacheBounds: B with CACHE_MAX_ENTRIES=16, then a server with CACHE_MAX_BYTES=65536, over 40 sessions:
  the bound holds, entries are evicted, every request is still answered correctly.
- RedisOutage: cached strategy while clients poll: Redis SIGKILLed (coherence down, near-caches off, valid
  sessions still 200 from the database, a logout on A acknowledged and never a stale 200 anywhere, also after
  Redis comes back empty); Redis SIGSTOPped while a session is revoked on A, then SIGCONT: no stale hit on
  either instance within 1 s of SIGCONT (and, separately, none more than 1 s after the acknowledged logout
  while Redis is still paused); the listener comes back when its tracking connection drops while the
  subscriber is re-subscribing (steps ordered by a TCP proxy, RedisProxy).

test_3 and test_4 of RedisOutage pin down two fixed bugs: stale near-cache hits while Redis is paused (fixed by
the listener's heartbeat), and a listener that never came back (fixed by per-connection epochs).

Time limits are checked by polling against deadlines; nothing sleeps blindly. Every server must exit 0 on
SIGTERM at the end (TesseraServer.finish), which is how the ASan build catches leaks.

The shared pieces (Cluster, login helpers, watch) are imported by test_revocation.py.
"""

import base64
import collections
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (DEFAULT_SECRET, HTTP_TIMEOUT, Browser, HarnessError, PostgresServer,  # noqa: E402
                             RedisClient, RedisServer, ServerTestCase, TesseraServer, main,
                             shared_postgres, shared_postgres_if_started, sign_express_cookie,
                             stop_shared_postgres, wait_until)

HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))
NEED_REDIS = "redis-server not installed (scripts/setup.sh installs it)"
NEED_PG = "PostgreSQL 15 not installed (scripts/setup.sh installs it)"

WITHIN = 1.0  # seconds: a change on one instance is seen on every instance within this long
TAIL = 0.3  # seconds of extra polling after that window: the new state must hold
COHERENCE_UP_TIMEOUT = 15.0

USERS = {
    "alice": ("visitor", "alice-pass-1"),
    "bob": ("visitor", "bob-pass-1"),
    "carol": ("agent", "carol-pass-1"),
    "dave": ("visitor", "dave-pass-1"),
    "erin": ("visitor", "erin-pass-1"),
    "frank": ("visitor", "frank-pass-1"),
}

# -------------------------------------------------------------------------------------------------------
# PostgreSQL: one cluster per module, started on first use


_pg_dbs = itertools.count(1)
postgres = shared_postgres
stop_postgres = stop_shared_postgres


def tearDownModule():
    stop_postgres()


# -------------------------------------------------------------------------------------------------------
# two instances


def metric(server, name):
    return server.metrics().get(name, 0.0)


def metrics_delta(before, after, name):
    return after.get(name, 0.0) - before.get(name, 0.0)


class Cluster:
    """One redis-server, one database (a shared SQLite file, or a fresh PostgreSQL database) and servers A and
    B (more with add_server) using both. start() waits until every server reports tessera_coherence_up 1."""

    def __init__(self, strategy, postgres_db=False, env=None, env_b=None, threads=2, backend_timeout_ms=1000,
                 users=USERS):
        self.strategy = strategy
        self.tmpdir = tempfile.mkdtemp(prefix=f"tessera-coh-{strategy}-")
        self.redis = RedisServer()
        self.pg_db = None
        self.postgres_db = postgres_db
        self.env = {"BACKEND_TIMEOUT_MS": str(backend_timeout_ms)}
        self.env.update(env or {})
        self.env_b = env_b or {}
        self.threads = threads
        self.users = users
        self.servers = []
        self.database = f"sqlite:{os.path.join(self.tmpdir, 'shared.db')}"
        self.a = self.b = None

    @property
    def sqlite_path(self):
        return self.database[len("sqlite:"):] if self.database.startswith("sqlite:") else None

    def new_server(self, env=None):
        e = dict(self.env)
        e.update(env or {})
        srv = TesseraServer(strategy=self.strategy, env=e, database=self.database, threads=self.threads,
                            extra_args=["--redis", self.redis.url])
        self.servers.append(srv)
        return srv

    def start(self, track):
        """track(server) registers a server with the test case (log on failure). Returns self."""
        self.redis.start()
        if self.postgres_db:
            pg = postgres()
            self.pg_db = f"tess_coh_{os.getpid()}_{next(_pg_dbs)}"
            pg.psql(f"DROP DATABASE IF EXISTS {self.pg_db}")
            pg.psql(f"CREATE DATABASE {self.pg_db}")
            self.database = f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{self.pg_db}"
        self.a = track(self.new_server())
        self.b = track(self.new_server(self.env_b))
        for name, (role, password) in self.users.items():
            self.a.add_user(name, role, password)
        self.a.start()
        self.b.start()
        self.wait_coherent(self.a, self.b)
        return self

    def start_server(self, srv):
        srv.start()
        self.wait_coherent(srv)
        return srv

    @staticmethod
    def wait_coherent(*servers, up=1, timeout=COHERENCE_UP_TIMEOUT):
        for s in servers:
            wait_until(lambda: s.metrics().get("tessera_coherence_up") == up, timeout,
                       f"tessera_coherence_up {up} on port {s.port}")

    def redis_client(self):
        return RedisClient(self.redis.port)

    def redis_cmd(self, *args):
        with self.redis_client() as c:
            return c.command(*args)

    def cleanup_backends(self):
        """Stops Redis and drops the database (servers are finished by the test case)."""
        for s in self.servers:
            if s.alive():
                s.stop()
        self.redis.cleanup()
        if self.pg_db is not None and shared_postgres_if_started() is not None:
            try:
                shared_postgres_if_started().psql(f"DROP DATABASE IF EXISTS {self.pg_db}")
            except HarnessError:
                pass
        if not os.environ.get("TESS_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def finish(self):
        """Finishes every server (raises on an unclean exit / sanitizer report), then the backends."""
        problems = []
        try:
            for s in self.servers:
                try:
                    s.finish()
                except HarnessError as exc:
                    problems.append(str(exc))
        finally:
            self.cleanup_backends()
        if problems:
            raise HarnessError("\n".join(problems))


class ClusterCase(ServerTestCase):
    """Base for the scenarios: one cluster per class (class_cluster in setUpClass) or per test (cluster())."""

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for c in list(type(self).__dict__.get("_class_clusters", [])) + self.__dict__.get("_clusters", []):
                sys.stderr.write(f"\n===== redis log (port {c.redis.port}) =====\n{c.redis.log_text()}\n")
        return out

    @classmethod
    def class_cluster(cls, strategy, **kw):
        if not HAVE_REDIS:
            raise unittest.SkipTest(NEED_REDIS)
        if kw.get("postgres_db") and not HAVE_PG:
            raise unittest.SkipTest(NEED_PG)
        c = Cluster(strategy, **kw)
        if "_class_clusters" not in cls.__dict__:
            cls._class_clusters = []
        cls._class_clusters.append(c)
        try:
            c.start(cls.track_class)
        except Exception:
            log = "\n".join(s.log_text() for s in c.servers)
            c.cleanup_backends()
            for s in c.servers:
                s.cleanup()
            raise HarnessError(f"cluster start failed\n{log}\n{c.redis.log_text()}")
        return c

    @classmethod
    def finish_class_clusters(cls):
        for c in cls.__dict__.get("_class_clusters", []):
            c.finish()

    def cluster(self, strategy, **kw):
        if not HAVE_REDIS:
            self.skipTest(NEED_REDIS)
        if kw.get("postgres_db") and not HAVE_PG:
            self.skipTest(NEED_PG)
        c = Cluster(strategy, **kw)
        self.__dict__.setdefault("_clusters", []).append(c)
        self.addCleanup(c.cleanup_backends)  # runs after the servers' finish (cleanups are LIFO)
        c.start(self.track)
        return c

    # -- sessions
    def login(self, server, user):
        """Logs `user` in on `server`; returns (Cookie header value, login JSON)."""
        b = server.browser(user)
        r = b.login(user, USERS[user][1])
        self.assertStatus(r, 200, f"login {user} on port {server.port}")
        self.assertIn(server.cookie_name, b.jar, r)
        return f"{server.cookie_name}={b.jar[server.cookie_name]}", r.json()

    def session_ok(self, server, cookie, user_id=None, what=""):
        r = Browser(server.port).get("/api/auth/session", cookies=cookie)
        self.assertStatus(r, 200, f"{what} on port {server.port}")
        if user_id is not None:
            self.assertEqual(r.json().get("userId"), user_id, r)
        return r

    def session_401(self, server, cookie, what=""):
        self.assertJsonError(Browser(server.port).get("/api/auth/session", cookies=cookie), 401,
                             f"{what} on port {server.port}")

    def warm_l1(self, server, cookie, timeout=5.0):
        """Polls the session on a cached-strategy server until it is answered from the near-cache (a hit)."""
        def hit():
            before = metric(server, "tessera_cache_hits_total")
            self.session_ok(server, cookie, what="warm-up")
            return metric(server, "tessera_cache_hits_total") > before
        wait_until(hit, timeout, f"a near-cache hit on port {server.port}")

    # -- the 1 s rule
    def watch(self, checks, t_ack, classify, limit=WITHIN, tail=TAIL):
        """checks: [(label, fn)] where fn() sends one request and returns a Response. classify(label, resp)
        returns 'old' or 'new' (or fails the test). Polls every check round-robin from now until t_ack + limit +
        tail and asserts, for each label: it turned 'new'; no request that started more than `limit` after
        t_ack was answered 'old'; once 'new', never 'old' again. Returns {label: seconds after t_ack of the
        first 'new' answer}."""
        history = {lbl: [] for lbl, _ in checks}
        first_new = {}
        end = t_ack + limit + tail
        while True:
            for lbl, fn in checks:
                t0 = time.monotonic()
                r = fn()
                t1 = time.monotonic()
                state = classify(lbl, r)
                history[lbl].append((round(t0 - t_ack, 3), r.status, state))
                ctx = f"{lbl}: {history[lbl][-12:]}; last reply {r!r}"
                if state == "new":
                    first_new.setdefault(lbl, t1 - t_ack)
                elif lbl in first_new:
                    self.fail(f"old state again after the new one was seen (stale entry resurrected): {ctx}")
                elif t0 - t_ack > limit:
                    self.fail(f"still the old state {t0 - t_ack:.3f}s after the change was acknowledged "
                              f"(limit {limit}s): {ctx}")
            if time.monotonic() >= end:
                break
        for lbl, _ in checks:
            self.assertIn(lbl, first_new, f"{lbl} never changed: {history[lbl][-12:]}")
        return first_new

    def watch_logged_out(self, targets, t_ack, **kw):
        """targets: [(label, server, cookie)]: each must answer 401 on GET /api/auth/session within 1 s."""
        def classify(lbl, r):
            if r.status == 200:
                return "old"
            if r.status == 401:
                return "new"
            self.fail(f"{lbl}: unexpected reply {r!r}")
        checks = [(lbl, (lambda s=srv, c=cookie: Browser(s.port).get("/api/auth/session", cookies=c)))
                  for lbl, srv, cookie in targets]
        return self.watch(checks, t_ack, classify, **kw)


def sid_of(cookie_header):
    """The session id in 'connect.sid=s%3A<sid>.<sig>'."""
    raw = urllib.parse.unquote(cookie_header.partition("=")[2])
    if not raw.startswith("s:") or "." not in raw:
        raise AssertionError(f"cookie not in express-session shape: {cookie_header!r}")
    return raw[2:].rpartition(".")[0]


def random_sid():
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")  # 43 characters


def forged_cookie(sid, secret=DEFAULT_SECRET.split(",")[0], name="connect.sid"):
    return f"{name}={sign_express_cookie(sid, secret)}"


class Poller:
    """Client threads, each repeating GET path with a fixed Cookie on one server, recording every reply
    (label, t0, t1, status, error) until stopped."""

    Reply = collections.namedtuple("Reply", "label t0 t1 status error")

    def __init__(self):
        self.replies = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def add(self, label, port, cookie, path="/api/auth/session", interval=0.01):
        def run():
            while not self._stop.is_set():
                t0 = time.monotonic()
                status = err = None
                try:
                    status = Browser(port).get(path, cookies=cookie, timeout=HTTP_TIMEOUT).status
                except Exception as exc:  # recorded: a hang or a dropped connection fails the test
                    err = repr(exc)
                with self._lock:
                    self.replies.append(self.Reply(label, t0, time.monotonic(), status, err))
                self._stop.wait(interval)
        self._threads.append(threading.Thread(target=run, name=label, daemon=True))
        return self

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=HTTP_TIMEOUT + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise HarnessError(f"poller threads still blocked: {alive}")

    def snapshot(self):
        with self._lock:
            return list(self.replies)

    def wait_samples(self, since, n=4, timeout=15.0):
        labels = [t.name for t in self._threads]

        def enough():
            got = collections.Counter(r.label for r in self.snapshot() if r.t0 >= since)
            return all(got[lb] >= n for lb in labels)
        wait_until(enough, timeout, f"{n} replies for each of {labels}", interval=0.05)


class RedisProxy:
    """A TCP proxy in front of redis-server that can close chosen connections and hold the reply to a
    `CLIENT ID` request: enough to order the invalidation listener's reconnect steps deterministically.
    A connection's role is learned from what it sends: 'sub' (SUBSCRIBE __redis__:invalidate) or 'trk'
    (CLIENT TRACKING ... REDIRECT)."""

    class Conn:
        def __init__(self, client, upstream, serial):
            self.client, self.upstream, self.serial = client, upstream, serial
            self.role = None
            self.sent_client_id = False
            self.holding = False
            self.held = b""
            self.closed = False

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.hold_client_id = False
        self._serial = itertools.count(1)
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self):
        while not self._stopping:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = self.Conn(client, upstream, next(self._serial))
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            threading.Thread(target=self._down, args=(conn,), daemon=True).start()

    def _up(self, conn):  # client -> redis
        seen = b""
        while True:
            try:
                data = conn.client.recv(65536)
            except OSError:
                data = b""
            if not data:
                return self.close(conn)
            seen = (seen + data)[-4096:]
            with self.lock:
                if b"__redis__:invalidate" in seen and b"SUBSCRIBE" in seen.upper():
                    conn.role = "sub"
                elif b"REDIRECT" in seen.upper():
                    conn.role = "trk"
                if b"$6\r\nCLIENT\r\n$2\r\nID\r\n" in seen.upper():
                    conn.sent_client_id = True
                    conn.holding = conn.holding or self.hold_client_id
            try:
                conn.upstream.sendall(data)
            except OSError:
                return self.close(conn)

    def _down(self, conn):  # redis -> client
        while True:
            try:
                data = conn.upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                return self.close(conn)
            with self.lock:
                if conn.holding:
                    conn.held += data
                    continue
            try:
                conn.client.sendall(data)
            except OSError:
                return self.close(conn)

    def close(self, conn):
        with self.lock:
            if conn.closed:
                return
            conn.closed = True
        for sk in (conn.client, conn.upstream):
            try:
                sk.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sk.close()

    def release(self):
        """Lets every held reply through."""
        with self.lock:
            self.hold_client_id = False
            held = [c for c in self.conns if c.holding]
            for c in held:
                c.holding = False
        for c in held:
            try:
                c.client.sendall(c.held)
            except OSError:
                pass
            c.held = b""

    def live(self, role=None):
        with self.lock:
            return [c for c in self.conns if not c.closed and (role is None or c.role == role)]

    def stop(self):
        self._stopping = True
        self.lsock.close()
        for c in list(self.conns):
            self.close(c)


# -------------------------------------------------------------------------------------------------------
# meta


@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class MetaCoherence(ClusterCase):
    strategy = "db"

    @classmethod
    def setUpClass(cls):
        cls.c = cls.class_cluster(cls.strategy)

    @classmethod
    def tearDownClass(cls):
        cls.finish_class_clusters()

    def meta(self, server, cookie, pid, etag=None):
        return Browser(server.port).get(f"/api/prechats/{pid}/meta", cookies=cookie,
                                        headers={"If-None-Match": etag} if etag else None)

    def warm_meta(self, server, cookie, pid, n=5):
        """200 then n 304s on `server`, served from its meta cache (the hit counter grows by at least n)."""
        r = self.assertStatus(self.meta(server, cookie, pid), 200)
        etag = r.header("ETag")
        self.assertTrue(etag, r)
        # the first 200 may have been a miss whose put raced an invalidation: wait for a hit, then count
        def hit():
            before = metric(server, "tessera_meta_cache_hits_total")
            return (self.meta(server, cookie, pid, etag).status == 304 and
                    metric(server, "tessera_meta_cache_hits_total") > before)
        wait_until(hit, 5, f"a meta cache hit on port {server.port}")
        before = metric(server, "tessera_meta_cache_hits_total")
        for i in range(n):
            r2 = self.meta(server, cookie, pid, etag)
            self.assertEqual(r2.status, 304, f"poll {i} with the current tag: {r2!r}")
            self.assertEqual(r2.header("ETag"), etag, "ETag changed while nothing changed")
        self.assertGreaterEqual(metric(server, "tessera_meta_cache_hits_total") - before, n,
                                "unchanged meta polls were not served from the meta cache")
        return r.json(), etag

    def watch_meta(self, server, cookie, pid, old_etag, t_ack, want):
        """B's meta (polled with If-None-Match old_etag) must show `want` (dict subset) and a new ETag within
        1 s of t_ack, and never the old state again."""
        def classify(lbl, r):
            if r.status == 304:
                return "old"
            self.assertEqual(r.status, 200, f"{lbl}: {r!r}")
            doc = r.json()
            if all(doc.get(k) == v for k, v in want.items()):
                self.assertNotEqual(r.header("ETag"), old_etag, f"new content under the old ETag: {r!r}")
                return "new"
            if r.header("ETag") == old_etag:
                return "old"
            self.fail(f"{lbl}: neither the old nor the expected new meta ({want}): {r!r}")
        self.watch([("meta on B", lambda: self.meta(server, cookie, pid, old_etag))], t_ack, classify)
        r = self.assertStatus(self.meta(server, cookie, pid), 200)
        return r.json(), r.header("ETag")

    def test_1_message_join_close_seen_on_b_within_1s(self):
        a, b = self.c.a, self.c.b
        alice, _ = self.login(a, "alice")
        carol, _ = self.login(a, "carol")
        r = self.assertStatus(Browser(a.port).post("/api/prechats", {"topic": "coherence"}, cookies=alice), 201)
        pid = r.json()["id"]
        m0, etag0 = self.warm_meta(b, alice, pid)
        self.assertEqual(m0["messageCount"], 0)
        # a cached meta is still only for those allowed to see it
        bob, _ = self.login(a, "bob")
        self.assertJsonError(self.meta(b, bob, pid), 404, "another visitor, meta cached on B")
        self.assertJsonError(self.meta(b, False, pid), 401, "no session, meta cached on B")
        # both instances tag the same meta alike (a client may alternate between them)
        self.assertEqual(self.meta(a, alice, pid).header("ETag"), etag0, "A's and B's ETag for the same meta")
        self.assertEqual(self.meta(a, alice, pid, etag0).status, 304)

        # a message on A
        r = Browser(a.port).post(f"/api/prechats/{pid}/messages", {"body": "hello from A"}, cookies=alice)
        t_ack = time.monotonic()
        self.assertStatus(r, 201)
        mid = r.json()["id"]
        # A itself evicts locally: its very next poll is new
        ra = self.assertStatus(self.meta(a, alice, pid, etag0), 200, "A after its own write")
        self.assertEqual(ra.json()["lastMessageId"], mid, ra)
        m1, etag1 = self.watch_meta(b, alice, pid, etag0, t_ack, {"messageCount": 1, "lastMessageId": mid})
        self.assertNotEqual(etag1, etag0)
        self.assertEqual(self.meta(a, alice, pid).header("ETag"), etag1, "A's and B's ETag for the same meta")
        self.warm_meta(b, alice, pid)

        # a join on A (carol), seen by the visitor polling B
        r = Browser(a.port).post(f"/api/prechats/{pid}/join", cookies=carol)
        t_ack = time.monotonic()
        self.assertStatus(r, 200)
        m2, etag2 = self.watch_meta(b, alice, pid, etag1, t_ack, {"status": "active"})
        self.assertIn(m2.get("queuePosition"), (None, 0), m2)
        self.warm_meta(b, alice, pid)
        self.warm_meta(b, carol, pid)  # the agent polls B too: same tag, cached

        # an agent's message on A
        r = Browser(a.port).post(f"/api/prechats/{pid}/messages", {"body": "agent here"}, cookies=carol)
        t_ack = time.monotonic()
        self.assertStatus(r, 201)
        m3, etag3 = self.watch_meta(b, alice, pid, etag2, t_ack,
                                    {"messageCount": 2, "lastMessageId": r.json()["id"]})
        self.warm_meta(b, alice, pid)

        # a close on A
        r = Browser(a.port).post(f"/api/prechats/{pid}/close", cookies=alice)
        t_ack = time.monotonic()
        self.assertStatus(r, 200)
        self.watch_meta(b, carol, pid, etag3, t_ack, {"status": "closed"})
        self.assertEqual(len({etag0, etag1, etag2, etag3}), 4, "every change must change the ETag")

    def test_2_queue_positions_move_on_b_within_1s(self):
        a, b = self.c.a, self.c.b
        alice, _ = self.login(a, "alice")
        carol, _ = self.login(a, "carol")
        pids = []
        for i in range(3):
            r = Browser(a.port).post("/api/prechats", {"topic": f"q{i}"}, cookies=alice)
            pids.append(self.assertStatus(r, 201).json()["id"])
        waiting = self.assertStatus(Browser(b.port).get("/api/prechats?status=waiting", cookies=carol), 200)
        self.assertEqual([p["id"] for p in waiting.json()["prechats"]], pids,
                         "the queue must hold exactly this test's pre-chats (earlier tests close theirs)")
        m1, e1 = self.warm_meta(b, alice, pids[1])
        m2, e2 = self.warm_meta(b, alice, pids[2])
        self.assertEqual((m1["queuePosition"], m2["queuePosition"]), (2, 3))

        # the first is joined on A: the others move up on B
        r = Browser(a.port).post(f"/api/prechats/{pids[0]}/join", cookies=carol)
        t_ack = time.monotonic()
        self.assertStatus(r, 200)
        _, e1 = self.watch_meta(b, alice, pids[1], e1, t_ack, {"queuePosition": 1})
        _, e2 = self.watch_meta(b, alice, pids[2], e2, t_ack, {"queuePosition": 2})
        self.warm_meta(b, alice, pids[2])

        # the (now) first waiting one is closed by its visitor on A: the last moves up on B
        r = Browser(a.port).post(f"/api/prechats/{pids[1]}/close", cookies=alice)
        t_ack = time.monotonic()
        self.assertStatus(r, 200)
        self.watch_meta(b, alice, pids[2], e2, t_ack, {"queuePosition": 1})
        for pid in (pids[0], pids[2]):
            self.assertStatus(Browser(a.port).post(f"/api/prechats/{pid}/close", cookies=alice), 200)


# -------------------------------------------------------------------------------------------------------
# single-flight and negative caching


class LookupCounting:
    """Mixed into a ClusterCase: postgres_db selects the database."""

    postgres_db = False
    N = 32

    @classmethod
    def setUpClass(cls):
        # Redis is paused in the single-flight test: a generous backend timeout keeps the pause well inside it
        cls.c = cls.class_cluster("cached", postgres_db=cls.postgres_db, backend_timeout_ms=10000)

    @classmethod
    def tearDownClass(cls):
        cls.finish_class_clusters()

    def test_single_flight_one_backend_lookup_for_32_concurrent_misses(self):
        a, b = self.c.a, self.c.b
        cookie, doc = self.login(a, "bob")
        sid = sid_of(cookie)
        self.c.redis_cmd("DEL", f"tessera:l2:{sid}")  # no L2 copy (and every L1 evicts it)
        self.assertIsNone(self.c.redis_cmd("GET", f"tessera:l2:{sid}"))
        before = b.metrics()
        replies, errors = [None] * self.N, []
        barrier = threading.Barrier(self.N)

        def one(i):
            try:
                barrier.wait(timeout=10)
                replies[i] = Browser(b.port).get("/api/auth/session", cookies=cookie, timeout=HTTP_TIMEOUT)
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(self.N)]
        # Redis paused: the first lookup's L2 GET cannot finish, so all N checks are concurrent misses
        self.c.redis.proc.send_signal(signal.SIGSTOP)
        try:
            for t in threads:
                t.start()
            wait_until(lambda: metrics_delta(before, b.metrics(), "tessera_auth_checks_total") >= self.N, 6,
                       f"{self.N} session checks in flight on B")
        finally:
            self.c.redis.proc.send_signal(signal.SIGCONT)
        for t in threads:
            t.join(timeout=HTTP_TIMEOUT + 5)
        self.assertEqual(errors, [])
        for i, r in enumerate(replies):
            self.assertIsNotNone(r, f"request {i} got no reply")
            self.assertStatus(r, 200, f"request {i}")
            self.assertEqual(r.json().get("userId"), doc["userId"], r)
        after = b.metrics()
        d = {k: metrics_delta(before, after, k) for k in (
            "tessera_auth_checks_total", "tessera_auth_store_lookups_total", "tessera_store_gets_total",
            "tessera_l2_hits_total", "tessera_l2_misses_total", "tessera_cache_hits_total")}
        self.assertEqual(d["tessera_auth_checks_total"], self.N, d)
        # process-wide single-flight: one lookup past L1, one composite get, one L2 miss = one database query
        self.assertEqual(d["tessera_auth_store_lookups_total"], 1, f"lookups past L1 for {self.N} misses: {d}")
        self.assertEqual(d["tessera_store_gets_total"], 1, f"backend gets for {self.N} concurrent misses: {d}")
        self.assertEqual(d["tessera_l2_misses_total"], 1, d)
        self.assertEqual(d["tessera_l2_hits_total"], 0, d)
        # The answer is written back to L2 (epoch-stamped) right after it, but not asserted here: the login's own
        # INSERT event reaches each instance's session-table watcher with a lag, and an INSERTED row drops any
        # L2 copy by design (an INSERT OR REPLACE of another app is reported as an insert, so a copy may be
        # stale); under load that DEL lands after the write-back. test_session_triggers covers the drop.

    def test_negative_cache_one_lookup_for_50_requests(self):
        b = self.c.b
        cookie = forged_cookie(random_sid())
        before = b.metrics()
        self.session_401(b, cookie, "unknown but signed session id")
        t_first = time.monotonic()
        mid = b.metrics()
        self.assertEqual(metrics_delta(before, mid, "tessera_auth_store_lookups_total"), 1,
                         "the first request for an unknown id is one lookup")
        self.assertEqual(metrics_delta(before, mid, "tessera_store_gets_total"), 1)
        for i in range(49):
            self.session_401(b, cookie, f"request {i + 2}")
        after = b.metrics()
        self.assertLess(time.monotonic() - t_first, 5.0, "too slow to stay within the 5 s negative TTL")
        self.assertEqual(metrics_delta(mid, after, "tessera_auth_store_lookups_total"), 0,
                         "requests 2..50 within the negative TTL must not reach the store")
        self.assertEqual(metrics_delta(mid, after, "tessera_store_gets_total"), 0)
        self.assertGreaterEqual(metrics_delta(mid, after, "tessera_cache_negative_hits_total"), 49)
        # a cookie with a bad signature never gets that far
        bad = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
        before = b.metrics()
        for _ in range(5):
            self.session_401(b, bad, "bad signature")
        self.assertEqual(metrics_delta(before, b.metrics(), "tessera_auth_store_lookups_total"), 0)


@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class LookupCountingSqlite(LookupCounting, ClusterCase):
    postgres_db = False


@unittest.skipUnless(HAVE_REDIS and HAVE_PG, f"{NEED_REDIS}; {NEED_PG}")
class LookupCountingPostgres(LookupCounting, ClusterCase):
    postgres_db = True


# -------------------------------------------------------------------------------------------------------
# L1 bounds


@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class NearCacheBounds(ClusterCase):
    SESSIONS = 40

    @classmethod
    def setUpClass(cls):
        cls.c = cls.class_cluster("cached", env_b={"CACHE_MAX_ENTRIES": "16"})
        # 40 sessions (logins are slow: argon2id), made on A from 4 threads
        names = ["alice", "bob", "dave", "erin"]
        cls.sessions = [None] * cls.SESSIONS
        errors = []

        def work(k):
            try:
                for i in range(k, cls.SESSIONS, 4):
                    name = names[i % 4]
                    br = cls.c.a.browser(name)
                    r = br.login(name, USERS[name][1])
                    if r.status != 200:
                        raise HarnessError(f"login {name}: {r!r}")
                    cls.sessions[i] = (f"{cls.c.a.cookie_name}={br.jar[cls.c.a.cookie_name]}", r.json()["userId"])
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            cls.finish_class_clusters()
            raise HarnessError(f"logins failed: {errors}")

    @classmethod
    def tearDownClass(cls):
        cls.finish_class_clusters()

    def use_all(self, server, rounds=3):
        for rnd in range(rounds):
            for i, (cookie, uid) in enumerate(self.sessions):
                self.session_ok(server, cookie, uid, f"round {rnd}, session {i}")

    def test_1_entry_bound(self):
        b = self.c.b
        before = b.metrics()
        self.use_all(b)
        m = b.metrics()
        self.assertLessEqual(m["tessera_cache_entries"], 16, m)
        self.assertGreater(m["tessera_cache_entries"], 0, m)
        self.assertGreater(metrics_delta(before, m, "tessera_cache_evictions_total"), 0,
                           f"{self.SESSIONS} sessions through a 16-entry cache evicted nothing: {m}")
        self.warm_l1(b, self.sessions[-1][0])  # still caching: a repeated lookup is a hit

    def test_2_byte_bound(self):
        # sessions with a large app field (as an Express app may store): a few fit in 64 KiB
        path = self.c.sqlite_path
        profile = "p" * 1500
        with sqlite3.connect(path, timeout=10) as db:
            for cookie, _ in self.sessions:
                sid = sid_of(cookie)
                (sess,) = db.execute("SELECT sess FROM session WHERE sid = ?", (sid,)).fetchone()
                doc = json.loads(sess)
                doc["profile"] = profile
                db.execute("UPDATE session SET sess = ? WHERE sid = ?", (json.dumps(doc), sid))
        for cookie, _ in self.sessions:
            self.c.redis_cmd("DEL", f"tessera:l2:{sid_of(cookie)}")  # drop the L2 copies made in test_1
        c = self.track(self.c.new_server({"CACHE_MAX_BYTES": "65536"}))
        self.c.start_server(c)
        before = c.metrics()
        self.use_all(c)
        m = c.metrics()
        self.assertLessEqual(m["tessera_cache_bytes"], 65536, m)
        self.assertGreater(m["tessera_cache_entries"], 0, m)
        self.assertGreater(m["tessera_cache_bytes"] / m["tessera_cache_entries"], 1500,
                           f"the entries do not account the large field: {m}")
        self.assertGreater(metrics_delta(before, m, "tessera_cache_evictions_total"), 0,
                           f"{self.SESSIONS} sessions of ~2 KB through a 64 KiB cache evicted nothing: {m}")


# -------------------------------------------------------------------------------------------------------
# Redis outage


@unittest.skipUnless(HAVE_REDIS, NEED_REDIS)
class RedisOutage(ClusterCase):
    """cached strategy, SQLite, two instances; per test its own cluster."""

    def setup_sessions(self, c):
        keep, keep_doc = self.login(c.a, "alice")
        gone, gone_doc = self.login(c.a, "bob")
        for srv in (c.a, c.b):
            for ck in (keep, gone):
                self.warm_l1(srv, ck)
        for ck in (keep, gone):
            wait_until(lambda ck=ck: (c.redis_cmd("GET", f"tessera:l2:{sid_of(ck)}") or b"!")[:1].isdigit(), 2,
                       "an L2 copy of the session")
        p = Poller()
        for lbl, srv, ck in (("keep@A", c.a, keep), ("keep@B", c.b, keep), ("gone@A", c.a, gone),
                             ("gone@B", c.b, gone)):
            p.add(lbl, srv.port, ck)
        self.addCleanup(p._stop.set)
        return keep, gone, p.start()

    def check_replies(self, replies, t_ack, stale_grace=0.0, keep_ok=(200,)):
        """keep@*: every reply in keep_ok; gone@*: 200 before the ack, only 401 for requests started more than
        stale_grace after it; nothing else, no errors."""
        bad = []
        for r in replies:
            if r.error is not None:
                bad.append((r, "no reply"))
            elif r.label.startswith("keep") and r.status not in keep_ok:
                bad.append((r, "valid session refused"))
            elif r.label.startswith("gone") and r.status not in (200, 401):
                bad.append((r, "unexpected status"))
            elif r.label.startswith("gone") and r.t0 > t_ack + stale_grace and r.status != 401:
                bad.append((r, f"stale 200 {r.t0 - t_ack:.3f}s after the acknowledged logout"))
        if bad:
            lines = [f"{why}: {r.label} t0={r.t0 - t_ack:+.3f}s dur={r.t1 - r.t0:.3f}s status={r.status} "
                     f"{r.error or ''}" for r, why in bad[:20]]
            self.fail(f"{len(bad)} bad replies of {len(replies)}:\n" + "\n".join(lines))

    def test_1_sigkill_and_empty_restart(self):
        c = self.cluster("cached")
        keep, gone, p = self.setup_sessions(c)
        p.wait_samples(time.monotonic())
        c.redis.proc.send_signal(signal.SIGKILL)
        c.redis.proc.wait(timeout=10)
        c.wait_coherent(c.a, c.b, up=0)
        t_down = time.monotonic()
        p.wait_samples(t_down)
        self.assertStatus(Browser(c.b.port).get("/readyz"), 200, "a cache outage is not an outage")

        r = Browser(c.a.port).post("/api/auth/logout", cookies=gone)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout while Redis is down")
        p.wait_samples(t_ack)
        # Redis comes back empty on the same port. Whether each listener is up again is test_4's business
        # (a listener that stays down keeps its caches off: slower, still correct); here: never stale.
        c.redis.start()
        t_back = time.monotonic()
        p.wait_samples(t_back)
        try:
            c.wait_coherent(c.a, c.b, up=1, timeout=3)
            for srv in (c.a, c.b):
                self.warm_l1(srv, keep)  # caching again
        except HarnessError:
            pass
        p.wait_samples(time.monotonic())
        p.stop()
        self.check_replies(p.snapshot(), t_ack)
        for srv in (c.a, c.b):
            self.session_401(srv, gone, "logged out during the outage")
            self.session_ok(srv, keep)

    def pause_and_revoke(self, c, gone):
        """SIGSTOP Redis, log `gone` out on A (acknowledged), return (t_ack, response)."""
        c.redis.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: c.redis.proc.poll() is None and c.redis.proc.send_signal(signal.SIGCONT))
        r = Browser(c.a.port).post("/api/auth/logout", cookies=gone)
        t_ack = time.monotonic()
        return t_ack, r

    def test_2_sigstop_revoke_then_sigcont(self):
        """Revoked while Redis is paused: within 1 s of SIGCONT, no stale hit on either instance."""
        c = self.cluster("cached")
        keep, gone, p = self.setup_sessions(c)
        p.wait_samples(time.monotonic())
        t_ack, r = self.pause_and_revoke(c, gone)
        self.assertStatus(r, 204, "logout while Redis is paused")
        c.redis.proc.send_signal(signal.SIGCONT)
        t_cont = time.monotonic()
        self.watch_logged_out([("gone@A", c.a, gone), ("gone@B", c.b, gone)], t_cont)
        c.wait_coherent(c.a, c.b, up=1)
        p.wait_samples(time.monotonic())
        p.stop()
        after = [x for x in p.snapshot() if x.t0 > t_cont]
        self.check_replies(after, t_cont, stale_grace=WITHIN, keep_ok=(200,))
        for srv in (c.a, c.b):
            self.session_ok(srv, keep)

    # While Redis is paused (SIGSTOP, or a partition that leaves TCP connections open) nothing closes the
    # listener's connections: its heartbeat (PING every 200 ms, 500 ms liveness bound) must turn B's caches off
    # before A's logout can be acknowledged (A waits for its own 1 s tombstone timeout).
    def test_3_sigstop_no_stale_hit_while_paused(self):
        """Acknowledged logout on A while Redis is paused: B must not answer 200 for it more than 1 s later."""
        c = self.cluster("cached")
        keep, gone, p = self.setup_sessions(c)
        p.wait_samples(time.monotonic())
        t_ack, r = self.pause_and_revoke(c, gone)
        self.assertStatus(r, 204, "logout while Redis is paused")
        try:
            p.wait_samples(t_ack + WITHIN + TAIL, n=3)
        finally:
            c.redis.proc.send_signal(signal.SIGCONT)
        t_cont = time.monotonic()
        c.wait_coherent(c.a, c.b, up=1)
        p.stop()
        paused = [x for x in p.snapshot() if x.t0 < t_cont]
        # valid sessions may be slow (L2 timeouts) but are answered 200 from the database
        self.check_replies(paused, t_ack, stale_grace=WITHIN)


    # The listener must come back after its connections drop (e.g. Redis restarted) even when one connection
    # changes while the other's reply is in flight: here a proxy holds the subscriber's CLIENT ID reply while the
    # tracking connection drops and reconnects (replies of one connection are judged by that connection's own
    # epoch in src/lib/cache/inval.c).
    def test_4_listener_recovers_when_tracking_drops_during_resubscribe(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        proxy = RedisProxy(redis.port)
        self.addCleanup(proxy.stop)
        srv = self.track(TesseraServer(strategy="cached", extra_args=["--redis", proxy.url]))
        srv.start()
        Cluster.wait_coherent(srv)
        wait_until(lambda: len(proxy.live("sub")) == 1 and len(proxy.live("trk")) == 1, 5,
                   "the listener's subscriber and tracking connections seen by the proxy")
        (sub,), (trk,) = proxy.live("sub"), proxy.live("trk")
        proxy.hold_client_id = True
        proxy.close(sub)
        wait_until(lambda: [c for c in proxy.live() if c.sent_client_id and c.holding], 5,
                   "the subscriber's reconnect sending CLIENT ID")
        last = max(c.serial for c in proxy.live())
        proxy.close(trk)
        wait_until(lambda: [c for c in proxy.live() if c.serial > last], 5, "the tracking connection's reconnect")
        proxy.release()
        try:
            Cluster.wait_coherent(srv, timeout=5)
        except HarnessError as exc:
            with RedisClient(redis.port) as rc:
                clients = rc.command("CLIENT", "LIST").decode(errors="replace")
            self.fail(f"{exc}: the listener never came back\nCLIENT LIST:\n{clients}")
        # and it works: a write is seen (an INCR of the epoch flushes; a session evicted) -- up is enough here


if __name__ == "__main__":
    main()

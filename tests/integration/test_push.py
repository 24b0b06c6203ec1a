"""Waiting without polling: long-polls of the meta and the messages, Server-Sent Events, and the change bus that
wakes them, against real `tessera serve` processes.

- PushSingle (one server, db strategy, SQLite, no Redis):
  test_01 a meta long-poll (?wait=N + If-None-Match) is answered within 100 ms of a message posted on the same
  instance, with a new ETag and the new messageCount; test_02 at the timeout (wait=1) it is a 304 with the
  unchanged ETag after 0.85-1.5 s, and without If-None-Match or with an old tag it answers at once; test_03 a
  messages long-poll (?after=K&wait=N) is held and answered with exactly the new message, an empty list at the
  timeout; test_04 logout (also ?everywhere=1) answers held long-polls 401 within 1 s and ends the session's
  streams, other sessions stay held; test_05 bad input (400), not yours (404), no session (401) on all three
  endpoints; test_06 the event stream: retry + meta at once, message events, forced disconnect and resume by
  Last-Event-ID (exactly the missing ones, in order, once, then live), ?after=0 = the whole history;
  test_07 a close ends every stream after a final meta with status closed; test_08 the bounds: the 21st waiter
  of a session and the 41st of a user are 429 too_many_waiters, plain polls still work, answered waiters give
  their places back; test_09 a client that closes its stream or long-poll gives its place back (tessera_waiters
  drops, a new stream is not 429); test_99 an idle stream gets a `: keep-alive` comment after 15 s.
- RedisPair / PostgresPair / SqlitePair: two instances sharing Redis + one SQLite file, one PostgreSQL database
  without Redis (LISTEN/NOTIFY), and one SQLite file without Redis (the event table): long-polls and streams on
  one instance woken by writes on the other (100 ms; 300 ms for the SQLite event table), logout and logout
  everywhere on one instance answer held requests 401 and end streams on the other within 1 s (and a new request
  with the ended session is 401 there within the same 1 s); RedisPair also `tessera session revoke --user`;
  SqlitePair also the meta cache without Redis (a write on one instance seen by a plain poll on the other within
  1 s; ETags stable while nothing changes).
- The same pair tests for the other session strategies: RedisPairRedisStrategy (strategy redis: the sessions in
  Redis) and RedisPairCached (strategy cached: near-cache -> Redis -> the SQLite store), both with the revoke CLI
  test as RedisPair; PostgresPairCached (strategy cached with Redis on PostgreSQL), with the revoke CLI too.
- JwtRedisPush: the jwt strategy with Redis: logout (deny list) and `session revoke --user` (cut-off) end streams.
- ManyStreams: 1,000 concurrent streams (50 sessions x 20): all get the meta, one message reaches all,
  tessera_waiters reaches 1000 and drops back to 0 once the clients close.
- Shutdown: SIGTERM with a held meta long-poll, a held messages long-poll and a stream: 304 / empty list /
  `retry:` and the stream's end, exit code 0.

Latency limits are relaxed (500 ms) for sanitizer builds (TESS_SANITIZER set, build-asan/build-tsan in the
binary's path, or a binary linked with the ASan/TSan runtime). Set TESS_PUSH_TIMINGS=1 to print the measured
latencies at the end.
"""

import base64
import http.client
import itertools
import json
import os
import re
import resource
import secrets
import select
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import (DEFAULT_SECRET, Browser, HarnessError, PostgresServer, RedisServer,  # noqa: E402
                             Response, ServerTestCase, TesseraServer, main, make_jwt, shared_postgres,
                             shared_postgres_if_started, stop_shared_postgres, tessera_bin, wait_until)


def _sanitized_build():
    if os.environ.get("TESS_SANITIZER"):
        return True
    try:
        path = tessera_bin()
    except HarnessError:
        return False
    if "build-asan" in path or "build-tsan" in path:
        return True
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__tsan_init" in data


SLOW = _sanitized_build()
LAT = 0.5 if SLOW else 0.1  # a wake-up on the same instance, or through Redis / PostgreSQL NOTIFY
LAT_SQLITE = 0.5 if SLOW else 0.3  # through the SQLite file's event table (polled every 50 ms)
WITHIN = 2.0 if SLOW else 1.0  # logout / revocation reaching held requests and streams
TIMEOUT_LO, TIMEOUT_HI = 0.85, (2.0 if SLOW else 1.5)  # a wait=1 long-poll's answer
AT_ONCE = 1.5 if SLOW else 0.5  # an answer that must not be held
ANSWER = 10.0 if SLOW else 5.0  # a generous bound for anything that must come at all
START_EVENTS = 20.0  # change events flowing after start

USERS = {
    "alice": ("visitor", "alice-pass-1"),
    "bob": ("visitor", "bob-pass-1"),
    "carol": ("agent", "carol-pass-1"),
    "dave": ("agent", "dave-pass-1"),
    "erin": ("visitor", "erin-pass-1"),
    "frank": ("visitor", "frank-pass-1"),
    "gina": ("visitor", "gina-pass-1"),
    "hank": ("visitor", "hank-pass-1"),
}

HAVE_REDIS = bool(shutil.which("redis-server"))
HAVE_PG = os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))
NEED_REDIS = "redis-server is not installed (scripts/setup.sh installs it); this suite is never skipped"
NEED_PG = "PostgreSQL 15 is not installed (scripts/setup.sh installs it); this suite is never skipped"

TIMINGS = []  # (what, seconds), printed with TESS_PUSH_TIMINGS=1


def note(what, seconds):
    TIMINGS.append((what, seconds))


# -------------------------------------------------------------------------------------------------------
# PostgreSQL: one cluster for the module, started on first use

_pg_dbs = itertools.count(1)
postgres = shared_postgres


def tearDownModule():
    stop_shared_postgres()
    if os.environ.get("TESS_PUSH_TIMINGS"):
        sys.stderr.write("\n--- test_push timings (s) ---\n")
        for what, s in TIMINGS:
            sys.stderr.write(f"{what}: {s:.4f}\n")


# -------------------------------------------------------------------------------------------------------
# clients


def _readable(sock, timeout):
    """True when sock has bytes (or EOF) to read within timeout seconds (poll(2): any fd number)."""
    p = select.poll()
    p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(p.poll(max(0.0, timeout) * 1000))


class Held:
    """A GET sent now whose answer is read later: a long-poll. answered() tells (with the time the first byte was
    seen) without reading; response() reads it."""

    def __init__(self, port, path, cookie=None, headers=None, timeout=90):
        self.path = path
        hdrs = dict(headers or {})
        if cookie:
            hdrs["Cookie"] = cookie
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=hdrs)
        self.t_sent = time.monotonic()
        self.t_ready = None
        self.resp = None

    def answered(self, timeout=0.0):
        if self.t_ready is None and _readable(self.conn.sock, timeout):
            self.t_ready = time.monotonic()
        return self.t_ready is not None

    def response(self, timeout=ANSWER):
        """The answer (a harness Response), waiting up to timeout seconds for it."""
        if self.resp is None:
            if not self.answered(timeout):
                raise AssertionError(f"no answer to the held GET {self.path} within {timeout}s")
            r = self.conn.getresponse()
            self.resp = Response(r.status, r.reason, r.getheaders(), r.read())
            self.conn.close()
        return self.resp

    def elapsed(self):
        return self.t_ready - self.t_sent

    def close(self):
        self.conn.close()


class EventStream:
    """GET .../events on a raw socket, parsed incrementally: the status line and headers, the chunked (or
    length-delimited) body, and the body's Server-Sent Events blocks. A block is a dict with the fields seen
    ('event', 'data', 'id', 'retry') and 'comments', plus 't' (monotonic time it was parsed).
    ended: None while the response goes on; 'end' (last chunk), 'closed' (the server closed the connection)
    or 'complete' (a length-delimited body, e.g. an error)."""

    def __init__(self, port, path, cookie=None, headers=None):
        self.path = path
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream", "Cache-Control: no-cache"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sock.setblocking(False)
        self.t_open = time.monotonic()
        self.status = None
        self.headers = []
        self.body = b""
        self.blocks = []
        self.ended = None
        self.t_end = None
        self._raw = b""
        self._pending = b""  # body bytes not yet split into blocks
        self._chunked = False
        self._length = None
        self._closed = False

    def fileno(self):
        return self.sock.fileno()

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    # -- input
    def on_readable(self):
        """Reads what is there (one recv); returns False once nothing more will come."""
        if self._closed:
            return False
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return True
        except (ConnectionResetError, OSError):
            data = b""
        if not data:
            self._mark_end("closed")
            self._closed = True
            return False
        self._raw += data
        self._parse()
        return True

    def pump(self, timeout):
        if not self._closed and _readable(self.sock, timeout):
            self.on_readable()

    def wait(self, predicate, timeout, what):
        """Pumps until predicate(self) holds (returned), or fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate(self)
            if v:
                return v
            now = time.monotonic()
            if now >= deadline or self._closed or self.ended is not None:  # an ended response brings no more
                raise AssertionError(f"{what}: not within {timeout}s on {self.path} (status {self.status}, ended "
                                     f"{self.ended}, blocks {self.describe()})")
            self.pump(min(0.05, deadline - now))

    def wait_end(self, timeout, what="the stream's end"):
        return self.wait(lambda s: s.ended is not None, timeout, what)

    def _mark_end(self, how):
        if self.ended is None:
            self.ended = how
            self.t_end = time.monotonic()

    def _parse(self):
        if self.status is None:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.decode("latin-1").split("\r\n")
            m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
            if not m:
                raise AssertionError(f"not an HTTP response: {head[:200]!r}")
            self.status = int(m.group(1))
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers.append((k.strip(), v.strip()))
            self._chunked = "chunked" in self.header("transfer-encoding", "").lower()
            cl = self.header("content-length")
            self._length = int(cl) if cl is not None else None
            self._raw = rest
        if self._chunked:
            while self.ended is None:
                line, sep, rest = self._raw.partition(b"\r\n")
                if not sep:
                    return
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._raw = rest
                    self._mark_end("end")
                    return
                if len(rest) < size + 2:
                    return
                self._add_body(rest[:size])
                self._raw = rest[size + 2:]
        else:
            self._add_body(self._raw)
            self._raw = b""
            if self._length is not None and len(self.body) >= self._length:
                self._mark_end("complete")

    def _add_body(self, data):
        self.body += data
        if self.status != 200:
            return
        self._pending = (self._pending + data).replace(b"\r\n", b"\n")
        now = time.monotonic()
        while b"\n\n" in self._pending:
            raw_b, _, self._pending = self._pending.partition(b"\n\n")
            raw = raw_b.decode("utf-8")
            block = {"comments": [], "t": now}
            data_lines = []
            for line in raw.split("\n"):
                if line.startswith(":"):
                    block["comments"].append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data_lines.append(value)
                else:
                    block[name] = value
            if data_lines:
                block["data"] = "\n".join(data_lines)
            self.blocks.append(block)

    # -- what came
    def events(self, kind):
        return [b for b in self.blocks if b.get("event") == kind]

    def metas(self):
        return [json.loads(b["data"]) for b in self.events("meta")]

    def messages(self):
        """[(id from the id: field, message JSON)] in the order received."""
        return [(int(b["id"]) if "id" in b else None, json.loads(b["data"])) for b in self.events("message")]

    def message_ids(self):
        return [i for i, _ in self.messages()]

    def keepalives(self):
        return [b for b in self.blocks if "keep-alive" in b["comments"]]

    def describe(self):
        out = []
        for b in self.blocks[-12:]:
            out.append({k: (v if k != "data" else v[:80]) for k, v in b.items() if k != "t"})
        return out

    def close(self):
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def pump_all(streams, predicate, timeout, what):
    """Pumps many streams through one epoll selector until predicate() holds; fails after timeout seconds."""
    sel = selectors.DefaultSelector()
    for s in streams:
        if not s._closed:
            sel.register(s.sock, selectors.EVENT_READ, s)
    try:
        deadline = time.monotonic() + timeout
        while not predicate():
            now = time.monotonic()
            if now >= deadline:
                raise AssertionError(f"{what}: not within {timeout}s")
            for key, _ in sel.select(min(0.05, deadline - now)):
                if not key.data.on_readable():
                    sel.unregister(key.fileobj)
    finally:
        sel.close()


# -------------------------------------------------------------------------------------------------------
# server helpers


def waiters(server):
    return server.metrics().get("tessera_waiters", 0.0)


def wait_waiters(server, n, timeout=ANSWER):
    wait_until(lambda: waiters(server) == n, timeout, f"tessera_waiters == {n} on port {server.port}")


def wait_events_flowing(server, timeout=START_EVENTS):
    """The server hears change events (and its meta cache is on): its Redis coherence is up, or its database
    listener reported that events flow."""
    wait_until(lambda: "change events flowing" in server.log_text(all_runs=False), timeout,
               f"change events flowing on port {server.port}")


def add_users(server, names):
    for n in names:  # one at a time: concurrent `user add` on one SQLite file may meet "database is locked"
        server.add_user(n, USERS[n][0], USERS[n][1])


def parse_json_or_fail(resp):
    try:
        return resp.json()
    except ValueError:
        raise AssertionError(f"not JSON: {resp!r}")


class PushCase(ServerTestCase):
    """Helpers shared by the scenarios: sessions are Cookie header values."""

    def login(self, server, user):
        b = Browser(server.port, name=user)
        r = b.login(user, USERS[user][1])
        self.assertStatus(r, 200, f"login {user} on port {server.port}")
        self.assertIn(server.cookie_name, b.jar, r)
        return f"{server.cookie_name}={b.jar[server.cookie_name]}"

    def get(self, server, path, cookie, headers=None, timeout=ANSWER):
        return Browser(server.port).get(path, cookies=cookie if cookie is not None else False, headers=headers,
                                        timeout=timeout)

    def post(self, server, path, cookie, body=None):
        return Browser(server.port).post(path, body, cookies=cookie)

    def open_prechat(self, server, cookie, topic="billing"):
        r = self.assertStatus(self.post(server, "/api/prechats", cookie, {"topic": topic}), 201, "open pre-chat")
        return r.json()["id"]

    def post_message(self, server, cookie, pid, body):
        r = self.assertStatus(self.post(server, f"/api/prechats/{pid}/messages", cookie, {"body": body}), 201,
                              "post message")
        return r.json()

    def meta(self, server, cookie, pid):
        r = self.assertStatus(self.get(server, f"/api/prechats/{pid}/meta", cookie), 200, "meta")
        self.assertTrue(r.header("ETag"), r)
        return r, r.json()

    def wait_meta(self, server, cookie, pid, pred, timeout=ANSWER, what="meta"):
        """Polls the meta until pred(doc) holds; returns (response, doc)."""
        box = {}

        def ok():
            r, doc = self.meta(server, cookie, pid)
            box["r"] = (r, doc)
            return pred(doc)
        try:
            wait_until(ok, timeout, f"{what} on port {server.port}")
        except HarnessError as exc:
            self.fail(f"{exc}; the last meta: {box.get('r', (None, None))[1]}")
        return box["r"]

    def hold_meta(self, server, cookie, pid, etag, wait=30):
        return Held(server.port, f"/api/prechats/{pid}/meta?wait={wait}", cookie, {"If-None-Match": etag})

    def hold_messages(self, server, cookie, pid, after, wait=30):
        return Held(server.port, f"/api/prechats/{pid}/messages?after={after}&wait={wait}", cookie)

    def stream(self, server, cookie, pid, query="", headers=None, initial=True):
        """Opens the event stream; with initial, waits for 200 and its retry + first meta blocks."""
        s = EventStream(server.port, f"/api/prechats/{pid}/events{query}", cookie, headers)
        self.addCleanup(s.close)
        if initial:
            s.wait(lambda x: x.status is not None, ANSWER, "the stream's status line")
            self.assertEqual(s.status, 200, f"events: {s.status} {s.body[:300]!r}")
            s.wait(lambda x: len(x.events("meta")) >= 1, ANSWER, "the first meta event")
        return s

    def assertHeld(self, held, what="request"):
        if held.answered(0):
            self.fail(f"{what} was answered instead of held: {held.response(1)!r}")

    def assertTimeouts(self, held, what):
        """Every one of `held` (long-polls with wait=1 that nothing wakes) is answered between TIMEOUT_LO and
        TIMEOUT_HI seconds after it was sent."""
        deadline = max(h.t_sent for h in held) + TIMEOUT_HI + 1.0
        pending = list(held)
        while pending and time.monotonic() < deadline:
            pending = [h for h in pending if not h.answered(0)]
            if pending:
                pending[0].answered(min(0.02, max(0.0, deadline - time.monotonic())))
        times = sorted(round(h.elapsed(), 3) for h in held if h.t_ready is not None)
        if times:
            note(f"{what}: {len(times)} timeouts answered after (min)", times[0])
            note(f"{what}: {len(times)} timeouts answered after (max)", times[-1])
        self.assertEqual(len(pending), 0, f"{what}: {len(pending)} of {len(held)} long-polls not answered "
                                          f"{TIMEOUT_HI + 1.0:.1f}s after they were sent (the others after {times})")
        for h in held:
            self.assertGreaterEqual(h.elapsed(), TIMEOUT_LO, f"{what}: answered too early: {times}")
            self.assertLessEqual(h.elapsed(), TIMEOUT_HI, f"{what}: answered too late: {times}")

    def assertUnauthorized(self, held, t_ack, what):
        r = held.response(WITHIN + 2)
        self.assertJsonError(r, 401, what)
        self.assertEqual(r.json()["error"], "unauthorized", r)
        dt = held.t_ready - t_ack
        self.assertLessEqual(dt, WITHIN, f"{what}: 401 came {dt:.3f}s after the logout was acknowledged")
        return dt

    def assertStreamEnds(self, s, t_ack, what):
        s.wait_end(WITHIN + 2, what)
        dt = s.t_end - t_ack
        self.assertLessEqual(dt, WITHIN, f"{what}: the stream ended {dt:.3f}s after the change was acknowledged")
        return dt

    def wake_latency(self, holder, poster, cookie, pid, label, limit):
        """One meta long-poll on `holder`, a message posted on `poster`: asserts the answer (200, new ETag, the
        new messageCount and lastMessageId) within `limit` of the POST's return; returns the latency."""
        want = self.meta(poster, cookie, pid)[1]["messageCount"]
        r0, doc0 = self.wait_meta(holder, cookie, pid, lambda d: d["messageCount"] == want,
                                  what=f"messageCount {want} on the holder")
        etag = r0.header("ETag")
        base = waiters(holder)
        held = self.hold_meta(holder, cookie, pid, etag, wait=20)
        self.addCleanup(held.close)
        wait_waiters(holder, base + 1)
        self.assertHeld(held, f"{label}: meta long-poll with the current ETag")
        msg = self.post_message(poster, cookie, pid, f"wake {label} {want + 1}")
        t_post = time.monotonic()
        r = held.response(ANSWER)
        latency = held.t_ready - t_post
        note(f"meta wake {label}", latency)
        self.assertStatus(r, 200, f"{label}: woken long-poll")
        self.assertNotEqual(r.header("ETag"), etag, f"{label}: the woken answer has the old ETag: {r!r}")
        doc = parse_json_or_fail(r)
        self.assertEqual(doc["messageCount"], want + 1, f"{label}: {doc}")
        self.assertEqual(doc["lastMessageId"], msg["id"], f"{label}: {doc}")
        self.assertLessEqual(latency, limit, f"{label}: long-poll answered {latency * 1000:.1f} ms after the POST "
                                             f"returned (limit {limit * 1000:.0f} ms)")
        return latency


# -------------------------------------------------------------------------------------------------------
# one server


class PushSingle(PushCase):
    """One server (db strategy, SQLite, no Redis), shared by the tests; each test uses its own sessions."""

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
        # idle streams for test_99 (the keep-alive), opened first so that the class's other tests pass their time;
        # 20 of them, so that their keep-alives fall at every phase of the server's 100 ms timer
        b = Browser(cls.srv.port)
        b.login("gina", USERS["gina"][1])
        cookie = f"connect.sid={b.jar['connect.sid']}"
        pid = b.post("/api/prechats", {"topic": "idle"}).json()["id"]
        cls.probes = []
        for _ in range(20):
            cls.probes.append(EventStream(cls.srv.port, f"/api/prechats/{pid}/events", cookie))
            time.sleep(0.005)  # spread over 100 ms on purpose (not a wait for a condition)

    @classmethod
    def tearDownClass(cls):
        for p in cls.probes:
            p.close()
        cls.srv.finish()

    def setUp(self):
        self.assertTrue(self.srv.alive(), "server died in an earlier test")

    def test_01_meta_longpoll_woken_on_same_instance(self):
        alice = self.login(self.srv, "alice")
        pid = self.open_prechat(self.srv, alice)
        lat = [self.wake_latency(self.srv, self.srv, alice, pid, f"same instance #{i}", LAT) for i in range(3)]
        self.assertEqual(len(lat), 3)
        self.assertEqual(self.meta(self.srv, alice, pid)[1]["messageCount"], 3)

    def test_02_meta_longpoll_timeout_and_immediate_answers(self):
        # bob, not alice: a server that strands timed-out waiters would count them against alice's bound (40)
        bob = self.login(self.srv, "bob")
        pid = self.open_prechat(self.srv, bob)
        r0, doc0 = self.meta(self.srv, bob, pid)
        etag = r0.header("ETag")
        # without If-None-Match: at once
        h = Held(self.srv.port, f"/api/prechats/{pid}/meta?wait=10", bob)
        r = h.response(ANSWER)
        self.assertStatus(r, 200, "wait without If-None-Match")
        self.assertLessEqual(h.elapsed(), AT_ONCE, "a wait without If-None-Match was held")
        self.assertEqual(r.header("ETag"), etag, r)
        self.assertEqual(r.json(), doc0)
        # an old tag: at once, 200 with the current body
        self.post_message(self.srv, bob, pid, "one")
        h = self.hold_meta(self.srv, bob, pid, etag, wait=10)
        r = h.response(ANSWER)
        self.assertStatus(r, 200, "wait with an old tag")
        self.assertLessEqual(h.elapsed(), AT_ONCE, "a wait with an old tag was held")
        self.assertNotEqual(r.header("ETag"), etag, r)
        self.assertEqual(r.json()["messageCount"], 1, r)
        # a list of tags with the current one among them is current: held until the next change
        cur = r.header("ETag")
        base = waiters(self.srv)
        h = self.hold_meta(self.srv, bob, pid, f'"0000000000000000", {cur}', wait=30)
        self.addCleanup(h.close)
        wait_waiters(self.srv, base + 1)
        self.assertHeld(h, "If-None-Match list with the current tag")
        self.post_message(self.srv, bob, pid, "two")
        r = self.assertStatus(h.response(ANSWER), 200)
        self.assertNotEqual(r.header("ETag"), cur, r)
        self.assertEqual(r.json()["messageCount"], 2, r)
        # the tag is current (the last answer's): held for the whole wait, then 304 with the same ETag and no
        # body. 16 at once: their deadlines (less the server's random jitter) fall at every phase of its 100 ms
        # timer.
        etag = r.header("ETag")
        held = [self.hold_meta(self.srv, bob, pid, etag, wait=1) for _ in range(16)]
        for h in held:
            self.addCleanup(h.close)
        self.assertTimeouts(held, "meta wait=1")
        for h in held:
            r = h.response(0)
            self.assertStatus(r, 304, "long-poll timeout")
            self.assertEqual(r.header("ETag"), etag, r)
            self.assertEqual(r.body, b"", r)

    def test_03_messages_longpoll(self):
        alice = self.login(self.srv, "alice")
        pid = self.open_prechat(self.srv, alice)
        m1 = self.post_message(self.srv, alice, pid, "first")
        base = waiters(self.srv)
        held = self.hold_messages(self.srv, alice, pid, m1["id"], wait=20)
        self.addCleanup(held.close)
        wait_waiters(self.srv, base + 1)
        self.assertHeld(held, "messages long-poll with nothing new")
        m2 = self.post_message(self.srv, alice, pid, "second")
        t_post = time.monotonic()
        r = self.assertStatus(held.response(ANSWER), 200, "woken messages long-poll")
        note("messages wake same instance", held.t_ready - t_post)
        self.assertLessEqual(held.t_ready - t_post, LAT, "messages long-poll answered late")
        got = r.json()["messages"]
        self.assertEqual([m["id"] for m in got], [m2["id"]], r)
        self.assertEqual(got[0]["body"], "second", r)
        self.assertEqual(got[0]["prechatId"], pid, r)
        wait_waiters(self.srv, base)
        # something newer exists already: at once, with all of it
        h = self.hold_messages(self.srv, alice, pid, 0, wait=10)
        r = self.assertStatus(h.response(ANSWER), 200)
        self.assertLessEqual(h.elapsed(), AT_ONCE, "messages after=0 with history was held")
        self.assertEqual([m["id"] for m in r.json()["messages"]], [m1["id"], m2["id"]], r)
        # a waiting agent's messages long-poll is woken by the visitor's message too
        carol = self.login(self.srv, "carol")
        h = self.hold_messages(self.srv, carol, pid, m2["id"], wait=20)
        self.addCleanup(h.close)
        wait_waiters(self.srv, base + 1)
        m3 = self.post_message(self.srv, alice, pid, "third")
        r = self.assertStatus(h.response(ANSWER), 200)
        self.assertEqual([m["id"] for m in r.json()["messages"]], [m3["id"]], r)
        # nothing comes: an empty list at the timeout (16 at once, as in test_02)
        held = [self.hold_messages(self.srv, alice, pid, m3["id"], wait=1) for _ in range(16)]
        for h in held:
            self.addCleanup(h.close)
        self.assertTimeouts(held, "messages wait=1")
        for h in held:
            r = self.assertStatus(h.response(0), 200, "messages long-poll timeout")
            self.assertEqual(r.json(), {"messages": []}, r)

    def test_04_logout_answers_held_requests_and_ends_streams(self):
        s1, s2 = self.login(self.srv, "frank"), self.login(self.srv, "frank")
        pid = self.open_prechat(self.srv, s1)
        m = self.post_message(self.srv, s1, pid, "hello")
        etag = self.meta(self.srv, s1, pid)[0].header("ETag")
        base = waiters(self.srv)
        hm = self.hold_meta(self.srv, s1, pid, etag)
        hl = self.hold_messages(self.srv, s1, pid, m["id"])
        st = self.stream(self.srv, s1, pid)
        other = self.hold_meta(self.srv, s2, pid, etag)  # the same user's other session
        for h in (hm, hl, other):
            self.addCleanup(h.close)
        wait_waiters(self.srv, base + 4)
        r = self.post(self.srv, "/api/auth/logout", s1)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout")
        note("logout -> held meta 401 (same instance)", self.assertUnauthorized(hm, t_ack, "held meta"))
        self.assertUnauthorized(hl, t_ack, "held messages")
        note("logout -> stream end (same instance)", self.assertStreamEnds(st, t_ack, "stream of the session"))
        self.assertHeld(other, "the other session's long-poll")
        # the other session is untouched: its long-poll still wakes on a change
        self.post_message(self.srv, s2, pid, "still here")
        r = self.assertStatus(other.response(ANSWER), 200, "the other session's long-poll")
        self.assertEqual(r.json()["messageCount"], 2)
        # logout everywhere: every session of the user, streams and long-polls
        s3 = self.login(self.srv, "frank")
        etag = self.meta(self.srv, s2, pid)[0].header("ETag")
        wait_waiters(self.srv, base)
        st2, st3 = self.stream(self.srv, s2, pid), self.stream(self.srv, s3, pid)
        h3 = self.hold_meta(self.srv, s3, pid, etag)
        self.addCleanup(h3.close)
        wait_waiters(self.srv, base + 3)
        r = self.post(self.srv, "/api/auth/logout?everywhere=1", s2)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout everywhere")
        self.assertStreamEnds(st2, t_ack, "stream of the session logged out everywhere")
        self.assertStreamEnds(st3, t_ack, "stream of the user's other session")
        self.assertUnauthorized(h3, t_ack, "held meta of the user's other session")
        wait_waiters(self.srv, base)
        # and the old cookies no longer open anything
        self.assertJsonError(self.get(self.srv, f"/api/prechats/{pid}/events", s3), 401)

    def test_05_bad_input(self):
        alice, bob = self.login(self.srv, "alice"), self.login(self.srv, "bob")
        carol, dave = self.login(self.srv, "carol"), self.login(self.srv, "dave")
        pid = self.open_prechat(self.srv, alice)
        base = waiters(self.srv)
        taken = self.open_prechat(self.srv, alice, "taken")
        self.assertStatus(self.post(self.srv, f"/api/prechats/{taken}/join", carol), (200, 201, 204), "join")
        etag = self.meta(self.srv, alice, pid)[0].header("ETag")
        inm = {"If-None-Match": etag}

        def at_once(path, cookie, headers=None):
            t0 = time.monotonic()
            try:
                r = self.get(self.srv, path, cookie, headers, timeout=ANSWER)
            except (socket.timeout, TimeoutError):
                self.fail(f"GET {path} was held (no answer within {ANSWER}s)")
            self.assertLessEqual(time.monotonic() - t0, AT_ONCE + 0.5, f"GET {path} was held")
            return r

        for bad in ("0", "61", "abc", "-1", "", "1.5", "100000000000000000000"):
            for path in (f"/api/prechats/{pid}/meta?wait={bad}", f"/api/prechats/{pid}/messages?after=0&wait={bad}"):
                with self.subTest(path=path):
                    doc = self.assertJsonError(at_once(path, alice, inm), 400, path)
                    self.assertEqual(doc["error"], "bad_request", doc)
        for value in ("abc", "-1", "1.5", ""):
            with self.subTest(last_event_id=value):
                doc = self.assertJsonError(at_once(f"/api/prechats/{pid}/events", alice, {"Last-Event-ID": value}),
                                           400, f"Last-Event-ID: {value!r}")
                self.assertEqual(doc["error"], "bad_request", doc)
        for q in ("abc", "-1"):
            with self.subTest(after=q):
                self.assertJsonError(at_once(f"/api/prechats/{pid}/events?after={q}", alice), 400)
                self.assertJsonError(at_once(f"/api/prechats/{pid}/messages?after={q}&wait=5", alice), 400)
        # not yours (another visitor; an agent on a pre-chat another agent took), or no such pre-chat: 404
        for who, cookie, target in (("bob", bob, pid), ("dave", dave, taken), ("alice", alice, 987654)):
            for path in (f"/api/prechats/{target}/meta?wait=5", f"/api/prechats/{target}/messages?after=0&wait=5",
                         f"/api/prechats/{target}/events"):
                with self.subTest(who=who, path=path):
                    doc = self.assertJsonError(at_once(path, cookie, inm), 404, f"{who} {path}")
                    self.assertEqual(doc["error"], "not_found", doc)
        # no session, or a garbage one: 401
        for cookie in (None, "connect.sid=garbage", "connect.sid=s%3Aabc.def"):
            for path in (f"/api/prechats/{pid}/meta?wait=5", f"/api/prechats/{pid}/messages?after=0&wait=5",
                         f"/api/prechats/{pid}/events"):
                with self.subTest(cookie=cookie, path=path):
                    doc = self.assertJsonError(at_once(path, cookie, inm), 401, f"{cookie} {path}")
                    self.assertEqual(doc["error"], "unauthorized", doc)
        # none of it was held or is counted
        self.assertEqual(waiters(self.srv), base)

    def test_06_event_stream_and_resume(self):
        alice = self.login(self.srv, "alice")
        pid = self.open_prechat(self.srv, alice)
        m1, m2 = (self.post_message(self.srv, alice, pid, f"history {i}") for i in (1, 2))
        s = self.stream(self.srv, alice, pid)
        self.assertEqual(s.header("Content-Type", "").split(";")[0].strip(), "text/event-stream", s.headers)
        self.assertEqual(s.header("X-Accel-Buffering"), "no", s.headers)
        self.assertEqual(s.blocks[0].get("retry"), "2000", f"first block: {s.describe()}")
        first_meta = s.events("meta")[0]
        note("stream open -> first meta", first_meta["t"] - s.t_open)
        self.assertLessEqual(first_meta["t"] - s.t_open, AT_ONCE + 0.5, "the first meta came late")
        self.assertEqual(json.loads(first_meta["data"]), self.meta(self.srv, alice, pid)[1])
        # live messages, in order, each with its id, and the meta after them
        live = [self.post_message(self.srv, alice, pid, f"live {i}") for i in (3, 4, 5)]
        want = [m["id"] for m in live]
        s.wait(lambda x: len(x.messages()) >= 3, ANSWER, "three live message events")
        self.assertEqual(s.message_ids(), want, f"live messages (nothing from before the stream): {s.describe()}")
        for (eid, doc), m in zip(s.messages(), live):
            self.assertEqual(doc["id"], eid)
            self.assertEqual(doc["body"], m["body"])
            self.assertEqual(doc["prechatId"], pid)
        s.wait(lambda x: x.metas()[-1]["messageCount"] == 5, ANSWER, "meta with messageCount 5")
        self.assertEqual(s.metas()[-1]["lastMessageId"], want[-1])
        last_seen = s.message_ids()[-1]
        # forced disconnect; two more while away; resume from the last id seen
        s.close()
        away = [self.post_message(self.srv, alice, pid, f"away {i}")["id"] for i in (6, 7)]
        r = self.stream(self.srv, alice, pid, headers={"Last-Event-ID": str(last_seen)})
        r.wait(lambda x: len(x.messages()) >= 2, ANSWER, "the missed messages")
        self.assertEqual(r.message_ids(), away, f"resume after {last_seen}: {r.describe()}")
        m8 = self.post_message(self.srv, alice, pid, "live 8")["id"]
        r.wait(lambda x: m8 in x.message_ids(), ANSWER, "a live message after the resume")
        m9 = self.post_message(self.srv, alice, pid, "live 9")["id"]
        r.wait(lambda x: m9 in x.message_ids(), ANSWER, "another live message")
        self.assertEqual(r.message_ids(), away + [m8, m9], f"resumed stream (no duplicates): {r.describe()}")
        # ?after=0: the whole history, then live
        everything = [m1["id"], m2["id"]] + want + away + [m8, m9]
        h = self.stream(self.srv, alice, pid, query="?after=0")
        h.wait(lambda x: len(x.messages()) >= len(everything), ANSWER, "the whole history")
        self.assertEqual(h.message_ids(), everything, h.describe())
        self.assertEqual([d["body"] for _, d in h.messages()][:2], ["history 1", "history 2"])
        # ?after=K as a query parameter
        k = self.stream(self.srv, alice, pid, query=f"?after={away[-1]}")
        m10 = self.post_message(self.srv, alice, pid, "live 10")["id"]
        for x in (h, k, r):
            x.wait(lambda y: m10 in y.message_ids(), ANSWER, "live 10")
        self.assertEqual(k.message_ids(), [m8, m9, m10], k.describe())
        self.assertEqual(h.message_ids(), everything + [m10], h.describe())
        self.assertEqual(r.message_ids(), away + [m8, m9, m10], r.describe())
        self.assertIsNone(r.ended, "the stream ended")

    def test_07_close_ends_streams_after_final_meta(self):
        alice, carol = self.login(self.srv, "alice"), self.login(self.srv, "carol")
        pid = self.open_prechat(self.srv, alice)
        m1 = self.post_message(self.srv, alice, pid, "before close")["id"]
        etag = self.meta(self.srv, alice, pid)[0].header("ETag")
        base = waiters(self.srv)
        live = self.stream(self.srv, alice, pid)
        hist = self.stream(self.srv, alice, pid, query="?after=0")
        hist.wait(lambda x: x.message_ids() == [m1], ANSWER, "the history")
        agent = self.stream(self.srv, carol, pid)
        held = self.hold_meta(self.srv, alice, pid, etag)
        self.addCleanup(held.close)
        wait_waiters(self.srv, base + 4)
        r = self.post(self.srv, f"/api/prechats/{pid}/close", alice)
        t_ack = time.monotonic()
        self.assertStatus(r, (200, 204), "close")
        for label, s in (("live", live), ("history", hist)):
            dt = self.assertStreamEnds(s, t_ack, f"{label} stream on close")
            note(f"close -> {label} stream end", dt)
            last = [b for b in s.blocks if b.get("event")][-1]
            self.assertEqual(last.get("event"), "meta", f"{label}: last event: {s.describe()}")
            self.assertEqual(json.loads(last["data"])["status"], "closed", s.describe())
        # an agent who was reading the waiting pre-chat: it is no longer theirs to read; the stream ends
        agent.wait_end(WITHIN + 2, "the agent's stream on close")
        r = self.assertStatus(held.response(ANSWER), 200, "held meta on close")
        self.assertEqual(r.json()["status"], "closed", r)
        wait_waiters(self.srv, base)
        # a stream opened on a closed pre-chat: the missed messages, the closed meta, the end
        late = self.stream(self.srv, alice, pid, query="?after=0", initial=False)
        late.wait_end(ANSWER, "a stream of a closed pre-chat")
        self.assertEqual(late.status, 200)
        self.assertEqual(late.message_ids(), [m1], late.describe())
        self.assertEqual(late.metas()[-1]["status"], "closed", late.describe())

    def test_08_bounds(self):
        e1, e2, e3 = (self.login(self.srv, "erin") for _ in range(3))
        pid = self.open_prechat(self.srv, e1)
        etag = self.meta(self.srv, e1, pid)[0].header("ETag")
        base = waiters(self.srv)
        held = []
        try:
            for cookie in (e1, e2):
                for _ in range(20):
                    held.append(self.hold_meta(self.srv, cookie, pid, etag, wait=30))
            wait_waiters(self.srv, base + 40)
            for h in held:
                self.assertHeld(h, "one of 20 long-polls of a session")
            # the 21st of e1, as a meta long-poll, a messages long-poll or a stream
            for label, req in (
                    ("meta", lambda: self.hold_meta(self.srv, e1, pid, etag, wait=30)),
                    ("messages", lambda: self.hold_messages(self.srv, e1, pid, 0, wait=30)),
                    ("events", lambda: Held(self.srv.port, f"/api/prechats/{pid}/events", e1))):
                h = req()
                self.addCleanup(h.close)
                doc = self.assertJsonError(h.response(ANSWER), 429, f"21st waiter of a session ({label})")
                self.assertEqual(doc["error"], "too_many_waiters", doc)
            # the user's 41st (a third session with none of its own): 429 as well
            h = self.hold_meta(self.srv, e3, pid, etag, wait=30)
            self.addCleanup(h.close)
            doc = self.assertJsonError(h.response(ANSWER), 429, "41st waiter of a user")
            self.assertEqual(doc["error"], "too_many_waiters", doc)
            # answering at once is not waiting: a plain poll still works
            r = self.assertStatus(self.get(self.srv, f"/api/prechats/{pid}/meta", e1), 200)
            self.assertEqual(r.header("ETag"), etag)
            self.assertEqual(waiters(self.srv), base + 40)
            # release: a change answers all 40
            self.post_message(self.srv, e1, pid, "release")
            for h in held:
                r = self.assertStatus(h.response(ANSWER), 200, "a released long-poll")
                self.assertEqual(r.json()["messageCount"], 1)
            wait_waiters(self.srv, base)
            # the places are free again
            etag = self.meta(self.srv, e1, pid)[0].header("ETag")
            again = [self.hold_meta(self.srv, e1, pid, etag, wait=30) for _ in range(20)]
            held.extend(again)
            wait_waiters(self.srv, base + 20)
            for h in again:
                self.assertHeld(h, "a long-poll after the others were answered")
            self.post_message(self.srv, e1, pid, "release again")
            for h in again:
                self.assertStatus(h.response(ANSWER), 200, "released again")
            wait_waiters(self.srv, base)
        finally:
            for h in held:
                h.close()

    def test_09_closed_clients_give_their_places_back(self):
        """A client that goes away (a closed tab, a reloaded EventSource) must not keep its place: the server
        notices the closed connection, tessera_waiters drops and the session may wait again."""
        h1, h2 = self.login(self.srv, "hank"), self.login(self.srv, "hank")
        pid = self.open_prechat(self.srv, h1)
        etag = self.meta(self.srv, h1, pid)[0].header("ETag")
        limit = ANSWER
        with self.subTest("streams"):
            base = waiters(self.srv)
            streams = [self.stream(self.srv, h1, pid) for _ in range(20)]
            wait_waiters(self.srv, base + 20)
            for s in streams:
                s.close()  # everything received was read: an orderly close (FIN), as a browser does
            t0 = time.monotonic()
            try:
                wait_until(lambda: waiters(self.srv) <= base, limit, "tessera_waiters back")
            except HarnessError:
                self.fail(f"20 closed streams still counted {limit}s after their clients closed them: "
                          f"tessera_waiters {waiters(self.srv)} (was {base} before)")
            note("closed streams -> waiters back", time.monotonic() - t0)
            s = self.stream(self.srv, h1, pid, initial=False)
            s.wait(lambda x: x.status is not None, ANSWER, "status")
            self.assertEqual(s.status, 200, f"a new stream after 20 closed ones: {s.body[:200]!r}")
            s.wait(lambda x: x.events("meta"), ANSWER, "its meta")
            s.close()
            wait_until(lambda: waiters(self.srv) <= base, limit, "the new stream's place back after its close")
        with self.subTest("long-polls"):
            base = waiters(self.srv)
            polls = [self.hold_meta(self.srv, h2, pid, etag, wait=60) for _ in range(20)]
            wait_waiters(self.srv, base + 20)
            for p in polls:
                p.close()
            t0 = time.monotonic()
            try:
                wait_until(lambda: waiters(self.srv) <= base, limit, "tessera_waiters back")
            except HarnessError:
                self.fail(f"20 closed long-polls (wait=60) still counted {limit}s after their clients closed "
                          f"them: tessera_waiters {waiters(self.srv)} (was {base} before)")
            note("closed long-polls -> waiters back", time.monotonic() - t0)

    def test_99_keepalive_on_idle_stream(self):
        probes = self.probes
        for p in probes:
            p.pump(0)
            self.assertEqual(p.status, 200, p.body[:200])
            if time.monotonic() - p.t_open < 14.0:
                self.assertEqual(p.keepalives(), [], "a keep-alive before 15 s")
        deadline = max(p.t_open for p in probes) + 17.0 + (3.0 if SLOW else 0.0)
        pump_all(probes, lambda: all(p.keepalives() for p in probes) or time.monotonic() >= deadline,
                 deadline - time.monotonic() + 1.0, "keep-alives")
        missing = [round(time.monotonic() - p.t_open, 1) for p in probes if not p.keepalives()]
        if missing:
            self.fail(f"{len(missing)} of {len(probes)} idle streams had no keep-alive comment {min(missing)}-"
                      f"{max(missing)} s after they opened (one is due every 15 s)")
        first = [p.keepalives()[0]["t"] - p.t_open for p in probes]
        note("idle streams -> first keep-alive (latest, s after open; an upper bound)", max(first))
        for p, t in zip(probes, first):
            self.assertGreaterEqual(t, 14.0, "keep-alive too early")
            self.assertEqual(p.events("message"), [])
            self.assertIsNone(p.ended)


# -------------------------------------------------------------------------------------------------------
# two instances


class PairTests:
    """Mixed into a class whose setUpClass sets cls.a, cls.b (two instances on shared backends) and cls.lat."""

    lat = LAT

    @classmethod
    def start_pair(cls, database, env, users=("alice", "bob", "carol", "frank", "gina")):
        cls.a = cls.track_class(TesseraServer(strategy=cls.strategy, database=database, env=env))
        cls.b = cls.track_class(TesseraServer(strategy=cls.strategy, database=database, env=env))
        add_users(cls.a, list(users))
        cls.a.start()
        cls.b.start()
        for s in (cls.a, cls.b):
            wait_events_flowing(s)
            # the subclasses differ by this only; the line is written just after the loops start serving
            wait_until(lambda: "listening on" in s.log_text(all_runs=False), 10, f"the start-up line of port {s.port}")
            if f"strategy {cls.strategy}," not in s.log_text(all_runs=False):
                raise HarnessError(f"port {s.port} does not run the {cls.strategy} strategy: {s.log_text()[:600]}")

    def setUp(self):
        self.assertTrue(self.a.alive() and self.b.alive(), "a server died in an earlier test")

    def test_1_meta_longpoll_woken_across_instances(self):
        a, b = self.a, self.b
        alice = self.login(a, "alice")
        pid = self.open_prechat(a, alice)
        for i in range(2):
            self.wake_latency(a, a, alice, pid, f"{self.label} same instance #{i}", LAT)
            self.wake_latency(b, a, alice, pid, f"{self.label} B woken by A #{i}", self.lat)
            self.wake_latency(a, b, alice, pid, f"{self.label} A woken by B #{i}", self.lat)

    def test_2_messages_longpoll_woken_across_instances(self):
        a, b = self.a, self.b
        alice, carol = self.login(a, "alice"), self.login(b, "carol")
        pid = self.open_prechat(a, alice)
        m1 = self.post_message(a, alice, pid, "one")
        base = waiters(b)
        hv = self.hold_messages(b, alice, pid, m1["id"], wait=20)
        ha = self.hold_messages(b, carol, pid, m1["id"], wait=20)
        for h in (hv, ha):
            self.addCleanup(h.close)
        wait_waiters(b, base + 2)
        self.assertHeld(hv)
        m2 = self.post_message(a, alice, pid, "two")
        t_post = time.monotonic()
        for label, h in (("visitor", hv), ("agent", ha)):
            r = self.assertStatus(h.response(ANSWER), 200, label)
            self.assertEqual([m["id"] for m in r.json()["messages"]], [m2["id"]], r)
            self.assertEqual(r.json()["messages"][0]["body"], "two")
            note(f"{self.label} messages wake B by A ({label})", h.t_ready - t_post)
            self.assertLessEqual(h.t_ready - t_post, self.lat, f"{label}: messages long-poll answered late")

    def test_3_stream_on_one_instance_hears_the_other(self):
        a, b = self.a, self.b
        alice = self.login(a, "alice")
        pid = self.open_prechat(a, alice)
        m0 = self.post_message(a, alice, pid, "before")["id"]
        s = self.stream(b, alice, pid, headers={"Last-Event-ID": "0"})
        s.wait(lambda x: x.message_ids() == [m0], ANSWER, "the history on B")
        ids = [self.post_message(a if i % 2 else b, alice, pid, f"m{i}")["id"] for i in range(4)]
        t_post = time.monotonic()
        s.wait(lambda x: len(x.message_ids()) >= 5, ANSWER, "four messages on B")
        note(f"{self.label} stream on B gets the 4th message", s.events("message")[-1]["t"] - t_post)
        self.assertEqual(s.message_ids(), [m0] + ids, s.describe())
        self.post(a, f"/api/prechats/{pid}/close", alice)
        t_ack = time.monotonic()
        self.assertStreamEnds(s, t_ack, "stream on B when A closes the pre-chat")
        self.assertEqual(s.metas()[-1]["status"], "closed", s.describe())

    def test_4_logout_on_one_instance_ends_waits_on_the_other(self):
        a, b = self.a, self.b
        s1, s2 = self.login(a, "frank"), self.login(b, "frank")
        pid = self.open_prechat(a, s1)
        m = self.post_message(a, s1, pid, "hi")
        _, doc = self.wait_meta(b, s1, pid, lambda d: d["messageCount"] == 1, what="the message on B")
        etag = self.meta(b, s1, pid)[0].header("ETag")
        base_a, base_b = waiters(a), waiters(b)
        hm_b = self.hold_meta(b, s1, pid, etag)
        hl_b = self.hold_messages(b, s1, pid, m["id"])
        st_b = self.stream(b, s1, pid)
        hm_a = self.hold_meta(a, s1, pid, self.meta(a, s1, pid)[0].header("ETag"))
        other = self.hold_meta(b, s2, pid, etag)
        for h in (hm_b, hl_b, hm_a, other):
            self.addCleanup(h.close)
        wait_waiters(b, base_b + 4)
        wait_waiters(a, base_a + 1)
        r = self.post(a, "/api/auth/logout", s1)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout on A")
        note(f"{self.label} logout on A -> held meta 401 on B", self.assertUnauthorized(hm_b, t_ack, "meta on B"))
        self.assertUnauthorized(hl_b, t_ack, "messages on B")
        self.assertUnauthorized(hm_a, t_ack, "meta on A")
        note(f"{self.label} logout on A -> stream end on B", self.assertStreamEnds(st_b, t_ack, "stream on B"))
        # a new request with the ended session on B is refused too (no session store or near-cache there keeps it)
        def refused():
            return self.get(b, "/api/auth/session", s1).status == 401
        try:
            wait_until(refused, max(0.0, t_ack + WITHIN - time.monotonic()), "401 on B")
        except HarnessError:
            self.fail(f"GET /api/auth/session on B with the session logged out on A: "
                      f"{self.get(b, '/api/auth/session', s1)!r} {WITHIN}s after the logout (expected 401)")
        self.assertHeld(other, "the user's other session on B")
        self.post_message(a, s2, pid, "release")
        self.assertStatus(other.response(ANSWER), 200, "the other session's long-poll")

    def test_5_logout_everywhere_ends_streams_on_both(self):
        a, b = self.a, self.b
        s1, s2 = self.login(a, "gina"), self.login(b, "gina")
        pid = self.open_prechat(a, s1)
        st_a, st_b = self.stream(a, s1, pid), self.stream(b, s2, pid)
        etag = self.wait_meta(b, s2, pid, lambda d: True)[0].header("ETag")
        base_b = waiters(b)
        h_b = self.hold_meta(b, s2, pid, etag)
        self.addCleanup(h_b.close)
        wait_waiters(b, base_b + 1)
        r = self.post(a, "/api/auth/logout?everywhere=1", s1)
        t_ack = time.monotonic()
        self.assertStatus(r, 204, "logout everywhere on A")
        self.assertStreamEnds(st_a, t_ack, "stream on A")
        note(f"{self.label} logout everywhere on A -> other session's stream end on B",
             self.assertStreamEnds(st_b, t_ack, "the other session's stream on B"))
        self.assertUnauthorized(h_b, t_ack, "the other session's long-poll on B")


class RevokeCliTests:
    """Mixed into a pair class that sets cls.database and cls.redis: `tessera session revoke --user` (run with
    --database and --redis, as an operator would) ends the user's streams on both instances and answers the held
    long-poll on B 401."""

    def test_6_session_revoke_cli_ends_streams_and_waits(self):
        a, b = self.a, self.b
        s1, s2 = self.login(a, "bob"), self.login(b, "bob")
        pid = self.open_prechat(a, s1)
        st_a, st_b = self.stream(a, s1, pid), self.stream(b, s2, pid)
        etag = self.wait_meta(b, s2, pid, lambda d: True)[0].header("ETag")
        base = waiters(b)
        h = self.hold_meta(b, s2, pid, etag)
        self.addCleanup(h.close)
        wait_waiters(b, base + 1)
        r = a.run_cli("session", "revoke", "--user", "bob", "--database", self.database, "--redis", self.redis.url)
        t_ack = time.monotonic()
        self.assertEqual(r.returncode, 0, f"session revoke: {r.stdout!r} {r.stderr!r}")
        note(f"{self.label} revoke CLI -> stream end on A", self.assertStreamEnds(st_a, t_ack, "stream on A"))
        note(f"{self.label} revoke CLI -> stream end on B", self.assertStreamEnds(st_b, t_ack, "stream on B"))
        self.assertUnauthorized(h, t_ack, "held meta on B")


def wait_coherence_up(servers):
    for s in servers:
        wait_until(lambda s=s: s.metrics().get("tessera_coherence_up") == 1, START_EVENTS,
                   f"coherence up on port {s.port}")


class RedisPair(RevokeCliTests, PairTests, PushCase):
    """Two instances sharing Redis (REDIS_URL) and one SQLite file; the db strategy (sessions in the SQLite
    store). The subclasses run the same tests with the sessions in Redis (redis) and behind the near-cache and
    Redis cache-aside (cached)."""

    strategy, label = "db", "redis+sqlite"

    @classmethod
    def setUpClass(cls):
        if not HAVE_REDIS:
            raise HarnessError(NEED_REDIS)
        cls.tmp = tempfile.mkdtemp(prefix=f"tessera-push-redis-{cls.strategy}-")
        cls.redis = RedisServer().start()
        cls.database = f"sqlite:{os.path.join(cls.tmp, 'shared.db')}"
        try:
            cls.start_pair(cls.database, {"REDIS_URL": cls.redis.url})
            wait_coherence_up((cls.a, cls.b))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for s in cls.__dict__.get("_class_servers", []):
                s.finish()
        finally:
            cls.redis.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)


class RedisPairRedisStrategy(RedisPair):
    """RedisPair with the redis strategy: the sessions live in Redis, the pre-chats in the shared SQLite file."""

    strategy, label = "redis", "redis strategy+sqlite"


class RedisPairCached(RedisPair):
    """RedisPair with the cached strategy: near-cache -> Redis cache-aside -> the SQLite store."""

    strategy, label = "cached", "cached+redis+sqlite"


class PostgresPair(PairTests, PushCase):
    """Two instances sharing one PostgreSQL database, no Redis: change events by LISTEN/NOTIFY. A subclass with
    with_redis adds a Redis server (REDIS_URL) shared by the two."""

    strategy, label, with_redis = "db", "postgres", False

    @classmethod
    def setUpClass(cls):
        if not HAVE_PG:
            raise HarnessError(NEED_PG)
        if cls.with_redis and not HAVE_REDIS:
            raise HarnessError(NEED_REDIS)
        pg = postgres()
        cls.redis = None
        cls.dbname = f"tess_push_{os.getpid()}_{next(_pg_dbs)}"
        cls.database = f"postgres://{pg.db_user}@127.0.0.1:{pg.port}/{cls.dbname}"
        pg.psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
        pg.psql(f"CREATE DATABASE {cls.dbname}")
        try:
            env = {}
            if cls.with_redis:
                cls.redis = RedisServer().start()
                env["REDIS_URL"] = cls.redis.url
            cls.start_pair(cls.database, env)
            if cls.with_redis:
                wait_coherence_up((cls.a, cls.b))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for s in cls.__dict__.get("_class_servers", []):
                s.finish()
        finally:
            if cls.__dict__.get("redis") is not None:
                cls.redis.cleanup()
            if shared_postgres_if_started() is not None:
                try:
                    shared_postgres_if_started().psql(f"DROP DATABASE IF EXISTS {cls.dbname}")
                except HarnessError:
                    pass


class PostgresPairCached(RevokeCliTests, PostgresPair):
    """PostgresPair with the cached strategy and Redis: near-cache -> Redis cache-aside -> the PostgreSQL store;
    change events through Redis."""

    strategy, label, with_redis = "cached", "cached+redis+postgres", True


class SqlitePair(PairTests, PushCase):
    """Two processes sharing one SQLite file, no Redis: change events through the file's event table."""

    strategy, label, lat = "db", "sqlite file", LAT_SQLITE

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tessera-push-sqlite-")
        try:
            cls.start_pair(f"sqlite:{os.path.join(cls.tmp, 'shared.db')}", {})
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

    def test_7_meta_cache_coherent_without_redis(self):
        a, b = self.a, self.b
        alice = self.login(a, "alice")
        pid = self.open_prechat(a, alice)

        def stable(server, rounds=8):
            """Plain polls: the same ETag and body every time, 304 for it; returns (etag, doc)."""
            seen = set()
            doc = None
            for _ in range(rounds):
                r, doc = self.meta(server, alice, pid)
                seen.add((r.header("ETag"), r.body))
            self.assertEqual(len(seen), 1, f"ETag/body changed while nothing changed on port {server.port}: {seen}")
            etag = next(iter(seen))[0]
            r = self.get(server, f"/api/prechats/{pid}/meta", alice, {"If-None-Match": etag})
            self.assertStatus(r, 304, "If-None-Match with the stable tag")
            self.assertEqual(r.header("ETag"), etag)
            return etag, doc

        def seen_within(server, pred, t_ack, what, tail=0.3):
            """Plain polls (no wait) until pred(doc); must be within 1 s of t_ack, and hold for `tail` s."""
            first = None
            while True:
                t0 = time.monotonic()
                r, doc = self.meta(server, alice, pid)
                if pred(doc):
                    first = first if first is not None else time.monotonic() - t_ack
                else:
                    self.assertIsNone(first, f"{what}: the old meta again after the new one: {doc}")
                    self.assertLessEqual(t0 - t_ack, 1.0 + (1.0 if SLOW else 0.0),
                                         f"{what}: still the old meta {t0 - t_ack:.3f}s after the write: {doc}")
                if first is not None and time.monotonic() - t_ack >= first + tail:
                    return first
                time.sleep(0.01)

        etag_b0, doc_b0 = stable(b)
        etag_a0, _ = stable(a)
        self.assertEqual(etag_a0, etag_b0, "the same meta has different ETags on the two instances")
        hits = b.metrics().get("tessera_meta_cache_hits_total", 0)
        stable(b)
        self.assertGreater(b.metrics().get("tessera_meta_cache_hits_total", 0), hits,
                           "plain polls on B are not answered from its meta cache")
        m = self.post_message(a, alice, pid, "through A")
        t_ack = time.monotonic()
        dt = seen_within(b, lambda d: d["messageCount"] == 1 and d["lastMessageId"] == m["id"], t_ack,
                         "a message on A seen on B")
        note("sqlite pair: message on A seen by a plain poll on B", dt)
        etag_b1, _ = stable(b)
        self.assertNotEqual(etag_b1, etag_b0)
        m2 = self.post_message(b, alice, pid, "through B")
        t_ack = time.monotonic()
        dt = seen_within(a, lambda d: d["messageCount"] == 2 and d["lastMessageId"] == m2["id"], t_ack,
                         "a message on B seen on A")
        note("sqlite pair: message on B seen by a plain poll on A", dt)
        self.assertEqual(stable(a)[0], stable(b)[0])
        self.assertStatus(self.post(a, f"/api/prechats/{pid}/close", alice), (200, 204))
        t_ack = time.monotonic()
        seen_within(b, lambda d: d["status"] == "closed", t_ack, "a close on A seen on B")
        stable(b)


class JwtRedisPush(PushCase):
    """The jwt strategy with Redis: logout (the deny list) and `session revoke --user` (the per-user cut-off)
    end the token's streams and held requests."""

    @classmethod
    def setUpClass(cls):
        if not HAVE_REDIS:
            raise HarnessError(NEED_REDIS)
        cls.tmp = tempfile.mkdtemp(prefix="tessera-push-jwt-")
        cls.redis = RedisServer().start()
        cls.database = f"sqlite:{os.path.join(cls.tmp, 'jwt.db')}"
        cls.srv = cls.track_class(TesseraServer(strategy="jwt", database=cls.database,
                                                env={"REDIS_URL": cls.redis.url}))
        try:
            add_users(cls.srv, ["alice", "bob"])
            cls.srv.start()
            wait_until(lambda: cls.srv.metrics().get("tessera_coherence_up") == 1, START_EVENTS, "coherence up")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.finish()
        finally:
            cls.redis.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_logout_ends_token_stream(self):
        t1, t2 = self.login(self.srv, "alice"), self.login(self.srv, "alice")
        pid = self.open_prechat(self.srv, t1)
        st, other = self.stream(self.srv, t1, pid), self.stream(self.srv, t2, pid)
        r = self.post(self.srv, "/api/auth/logout", t1)
        t_ack = time.monotonic()
        self.assertStatus(r, 204)
        note("jwt logout -> stream end", self.assertStreamEnds(st, t_ack, "the token's stream"))
        m = self.post_message(self.srv, t2, pid, "still here")["id"]
        other.wait(lambda x: m in x.message_ids(), ANSWER, "the other token's stream goes on")
        self.assertIsNone(other.ended)

    def test_2_session_revoke_cli_ends_token_streams(self):
        t1, t2 = self.login(self.srv, "bob"), self.login(self.srv, "bob")
        pid = self.open_prechat(self.srv, t1)
        s1, s2 = self.stream(self.srv, t1, pid), self.stream(self.srv, t2, pid)
        etag = self.meta(self.srv, t1, pid)[0].header("ETag")
        base = waiters(self.srv)
        h = self.hold_meta(self.srv, t2, pid, etag)
        self.addCleanup(h.close)
        wait_waiters(self.srv, base + 1)
        r = self.srv.run_cli("session", "revoke", "--user", "bob", "--database", self.database, "--redis",
                             self.redis.url)
        t_ack = time.monotonic()
        self.assertEqual(r.returncode, 0, f"session revoke: {r.stdout!r} {r.stderr!r}")
        note("jwt revoke CLI -> stream end", self.assertStreamEnds(s1, t_ack, "first token's stream"))
        self.assertStreamEnds(s2, t_ack, "second token's stream")
        self.assertUnauthorized(h, t_ack, "held meta of a revoked token")


# -------------------------------------------------------------------------------------------------------
# many streams


class ManyStreams(PushCase):
    """1,000 concurrent streams: 50 sessions x 20 (the per-session bound). The jwt strategy, so that the 50
    sessions are 50 tokens (as the Node.js app issues them) rather than 50 password checks; the per-user bound
    is raised (TESSERA_MAX_WAITERS_PER_USER) since the tokens belong to two users, and the per-address connection
    bound is off (TESSERA_MAX_CONNECTIONS_PER_ADDRESS=0) since they all come from one address."""

    N_SESSIONS, PER_SESSION = 50, 20

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the server
        # All 1,000 come from 127.0.0.1: the per-address connection bound (default 256) is lifted.
        cls.srv = cls.track_class(TesseraServer(strategy="jwt", env={"TESSERA_MAX_WAITERS_PER_USER": "5000",
                                                                     "TESSERA_MAX_CONNECTIONS_PER_ADDRESS": "0"}))
        try:
            add_users(cls.srv, ["alice", "carol"])
            cls.srv.start()
            wait_events_flowing(cls.srv)
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def tokens(self, cookie, n):
        """n more tokens of the cookie's user: its claims with a fresh jti, signed with the server's secret."""
        name, _, token = cookie.partition("=")
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.assertIn("jti", claims, claims)
        out = []
        for _ in range(n):
            c = dict(claims, jti=secrets.token_hex(16))
            out.append(f"{name}={make_jwt(c, DEFAULT_SECRET.split(',')[0])}")
        return out

    def test_1000_streams(self):
        srv = self.srv
        t_start = time.monotonic()
        alice, carol = self.login(srv, "alice"), self.login(srv, "carol")
        pid = self.open_prechat(srv, alice)
        sessions = [alice] + self.tokens(alice, 9) + [carol] + self.tokens(carol, self.N_SESSIONS - 11)
        self.assertEqual(len(set(sessions)), self.N_SESSIONS)
        for ck in sessions:
            self.assertStatus(self.get(srv, "/api/auth/session", ck), 200, "a minted token")
        self.assertEqual(waiters(srv), 0)
        streams = []
        try:
            for ck in sessions:
                for _ in range(self.PER_SESSION):
                    streams.append(EventStream(srv.port, f"/api/prechats/{pid}/events", ck))
            n = len(streams)
            self.assertEqual(n, 1000)
            t_open = time.monotonic()
            pump_all(streams, lambda: all(s.events("meta") or s.ended for s in streams), 30 if SLOW else 15,
                     "the first meta on every stream")
            note("1000 streams: all initial metas after the last connect", time.monotonic() - t_open)
            bad = [(s.status, s.body[:120]) for s in streams if s.status != 200 or s.ended]
            self.assertEqual(bad, [], f"{len(bad)} of {n} streams refused or ended")
            wait_waiters(srv, n, timeout=ANSWER)
            m = self.post_message(srv, alice, pid, "to everyone")
            t_post = time.monotonic()
            pump_all(streams, lambda: all(m["id"] in s.message_ids() for s in streams), 30 if SLOW else 10,
                     "the message on every stream")
            note("1000 streams: the message on all of them", time.monotonic() - t_post)
            for s in streams:
                self.assertEqual(s.message_ids(), [m["id"]])
                self.assertEqual(s.messages()[0][1]["body"], "to everyone")
            self.assertEqual(waiters(srv), n)
        finally:
            for s in streams:
                s.close()
        t_close = time.monotonic()
        try:
            wait_waiters(srv, 0, timeout=ANSWER)
        except HarnessError:
            self.fail(f"tessera_waiters {waiters(srv)} {ANSWER}s after all 1000 clients closed their streams "
                      f"(expected 0)")
        note("1000 streams: waiters back to 0 after the clients closed", time.monotonic() - t_close)
        note("1000 streams: whole test", time.monotonic() - t_start)


# -------------------------------------------------------------------------------------------------------
# SIGTERM


class Shutdown(PushCase):
    def test_sigterm_answers_held_requests_and_ends_streams(self):
        srv = self.track(TesseraServer(strategy="db"))
        add_users(srv, ["alice"])
        srv.start()
        alice = self.login(srv, "alice")
        pid = self.open_prechat(srv, alice)
        m = self.post_message(srv, alice, pid, "hi")
        etag = self.meta(srv, alice, pid)[0].header("ETag")
        hm = self.hold_meta(srv, alice, pid, etag, wait=30)
        hl = self.hold_messages(srv, alice, pid, m["id"], wait=30)
        st = self.stream(srv, alice, pid)
        for h in (hm, hl):
            self.addCleanup(h.close)
        wait_waiters(srv, 3)
        n_blocks = len(st.blocks)
        srv.proc.send_signal(signal.SIGTERM)
        t_sig = time.monotonic()
        r = hm.response(ANSWER)
        self.assertStatus(r, 304, "held meta on SIGTERM")
        self.assertEqual(r.header("ETag"), etag, r)
        r = hl.response(ANSWER)
        self.assertStatus(r, 200, "held messages on SIGTERM")
        self.assertEqual(r.json(), {"messages": []}, r)
        st.wait_end(ANSWER, "the stream's end on SIGTERM")
        note("SIGTERM -> answers and stream end", max(hm.t_ready, hl.t_ready, st.t_end) - t_sig)
        self.assertLess(max(hm.t_ready, hl.t_ready, st.t_end) - t_sig, 5.0, "held requests answered late")
        after = st.blocks[n_blocks:]
        self.assertTrue(after and "retry" in after[-1], f"no retry: line at the stream's end: {st.describe()}")
        self.assertEqual(st.message_ids(), [], st.describe())
        try:
            rc = srv.proc.wait(timeout=10)
        except Exception:
            self.fail("the server did not exit within 10 s of SIGTERM")
        self.assertEqual(rc, 0, f"exit code {rc} after SIGTERM")


if __name__ == "__main__":
    main()

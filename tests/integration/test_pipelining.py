"""HTTP/1 connections across asynchronous answers (src/server/request.c, "holds").

While a request waits for Redis, tessera keeps the connection's read interest registered without reading
(h2o_socket_dont_read) instead of dropping and re-adding it around every answer. These cases prove that the
connection still behaves as HTTP/1 requires: answers in request order, pipelined requests sent in one write
or while an answer is held, one connection serving many asynchronous requests in a row, a half-close and a
hang-up while held. Redis is paused with SIGSTOP to hold an answer for as long as a case needs; "held" is
waited on as a condition (tessera's bytes queued unread at the paused Redis), never slept on.
"""

import os
import re
import shutil
import signal
import socket
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import HTTP_TIMEOUT, RedisServer, ServerTestCase, TesseraServer, main, wait_until  # noqa: E402

HAVE_REDIS = bool(shutil.which("redis-server"))
HOLD_DEADLINE = 10.0  # seconds for a request to reach the paused Redis


def redis_unread_bytes(port):
    """Bytes queued unread at sockets whose local port is `port` (the paused Redis's side), from /proc."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, queues = fields[1], fields[4]
            if int(local.split(":")[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                total += int(queues.split(":")[1], 16)
    return total


def read_responses(sock, count, timeout=HTTP_TIMEOUT):
    """Reads `count` whole responses (by Content-Length) from `sock`: [(status, body bytes)]."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(rest) >= n:
                status = int(re.match(rb"HTTP/1\.1 (\d{3})", head).group(1))
                out.append((status, rest[:n]))
                buf = rest[n:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {len(out)} of {count} responses")
        buf += chunk
    return out, buf


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class Pipelining(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.redis.start()
        env = {"REDIS_URL": f"redis://127.0.0.1:{cls.redis.port}", "BACKEND_TIMEOUT_MS": "30000"}
        cls.srv = cls.track_class(TesseraServer(strategy="redis", env=env, threads=1))
        cls.srv.add_user("vera", "visitor", "vera-pass-1")
        cls.srv.start()
        b = cls.srv.browser("vera")
        r = b.login("vera", "vera-pass-1")
        assert r.status == 200, r
        r = b.post("/api/prechats", {"topic": "pipelines"})
        assert r.status == 201, r
        cls.pid = r.json()["id"]
        cls.cookie = "; ".join(f"{k}={v}" for k, v in b.jar.items())

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.redis.cleanup()

    def tearDown(self):
        os.kill(self.redis.proc.pid, signal.SIGCONT)  # never leave Redis paused for the next case

    def get(self, path):
        return (f"GET {path} HTTP/1.1\r\nHost: t\r\nCookie: {self.cookie}\r\n\r\n").encode()

    def meta(self):
        return self.get(f"/api/prechats/{self.pid}/meta")

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=HTTP_TIMEOUT)
        self.addCleanup(s.close)
        return s

    def pause_and_hold(self, sock, data):
        """Pauses Redis, sends `data` and waits until tessera's lookup for it is queued at Redis."""
        before = redis_unread_bytes(self.redis.port)
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        sock.sendall(data)
        wait_until(lambda: redis_unread_bytes(self.redis.port) > before, HOLD_DEADLINE, "the lookup reaching Redis")

    def test_pipelined_in_one_write_answered_in_order(self):
        # Asynchronous (session lookups in Redis) and synchronous (/healthz) answers interleaved: HTTP/1
        # answers in request order whatever finishes first.
        s = self.connect()
        reqs = [self.meta(), self.get("/healthz"), self.get("/api/prechats/999999/meta"), self.meta(),
                self.get("/healthz"), self.meta()]
        s.sendall(b"".join(reqs))
        got, rest = read_responses(s, len(reqs))
        self.assertEqual([st for st, _ in got], [200, 200, 404, 200, 200, 200])
        self.assertIn(b'"status"', got[0][1])
        self.assertEqual(rest, b"")

    def test_many_asynchronous_requests_on_one_connection(self):
        # Each answer must give the connection back to h2o reading: one left not reading hangs the next.
        s = self.connect()
        for i in range(200):
            s.sendall(self.meta())
            got, _ = read_responses(s, 1)
            self.assertEqual(got[0][0], 200, f"request {i}")

    def test_pipelined_while_held(self):
        s = self.connect()
        self.pause_and_hold(s, self.meta())
        s.sendall(self.get("/healthz") + self.meta())  # arrives while the first answer is held
        os.kill(self.redis.proc.pid, signal.SIGCONT)
        got, _ = read_responses(s, 3)
        self.assertEqual([st for st, _ in got], [200, 200, 200])
        self.assertIn(b'"status"', got[2][1])

    def test_half_close_while_held(self):
        s = self.connect()
        self.pause_and_hold(s, self.meta())
        s.shutdown(socket.SHUT_WR)
        os.kill(self.redis.proc.pid, signal.SIGCONT)
        got, _ = read_responses(s, 1)
        self.assertEqual(got[0][0], 200)

    def test_hang_up_while_held(self):
        s = self.connect()
        self.pause_and_hold(s, self.meta())
        s.close()
        os.kill(self.redis.proc.pid, signal.SIGCONT)
        # The server goes on serving, on new connections and on the others it holds.
        s2 = self.connect()
        s2.sendall(self.meta())
        got, _ = read_responses(s2, 1)
        self.assertEqual(got[0][0], 200)
        self.assertTrue(self.srv.alive())


if __name__ == "__main__":
    main()

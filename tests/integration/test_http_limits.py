"""
HTTP limits over real sockets:

- the request head: at most TESSERA_MAX_HEADERS fields and TESSERA_MAX_HEADER_BYTES bytes (request line and
  fields); past either, a JSON 431 (one 64 KB header, 40 headers of 5 KB, a 70 KB header name, 80 fields);
- the errors h2o answers itself (broken Content-Length or chunked body, unknown Transfer-Encoding, a body over
  h2o's bound, an unknown Expect) carry tessera's JSON error body; what h2o refuses before it has a request at
  all (a head it cannot parse) keeps h2o's fixed text answer, and the server goes on serving;
- the header timeout (TESSERA_HEADER_TIMEOUT_MS / --header-timeout): a head trickled byte by byte, a silent
  connection and an idle keep-alive connection are closed (waited on with a deadline shorter than h2o's own
  10 s default);
- connections per client address (TESSERA_MAX_CONNECTIONS_PER_ADDRESS / --max-connections-per-address): past
  the bound a new connection gets a fixed JSON 429 and is closed; a close gives the place back; 0 is no bound;
- cleartext HTTP/2: an h2c upgrade is answered in HTTP/1.1 and an HTTP/2 preface is refused unless TESSERA_H2C=1
  (or --h2c), with which both work.
"""
import os
import select
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import HTTP_TIMEOUT, Response, ServerTestCase, TesseraServer, wait_until  # noqa: E402

H2O_DEFAULT_TIMEOUT = 10.0  # h2o's own request timeout: a cut must come well before it
CUT_DEADLINE = 8.0  # how long a test waits for a connection the server should cut after 1 s
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
H2C_UPGRADE = (b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


def head(path="/healthz", fields=(), method="GET", extra=b""):
    """A request head: `fields` is a list of (name, value) str or bytes pairs."""
    out = [f"{method} {path} HTTP/1.1\r\nHost: t\r\n".encode()]
    for k, v in fields:
        k = k if isinstance(k, bytes) else k.encode()
        v = v if isinstance(v, bytes) else v.encode()
        out.append(k + b": " + v + b"\r\n")
    return b"".join(out) + b"\r\n" + extra


def read_response(sock, deadline):
    """One HTTP/1.1 response (by Content-Length) or what came before the server closed; (Response or None,
    closed)."""
    buf, closed = b"", False
    while True:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no complete response before the deadline; got {buf[:200]!r}")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed = True
            break
        buf += chunk
        h, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            length = None
            for line in h.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            if length is not None and len(rest) >= length:
                break
    return parse_response(buf), closed


def parse_response(buf):
    h, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep or not h.startswith(b"HTTP/1."):
        return None
    status_line, *lines = h.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest)


def exchange(port, data, timeout=HTTP_TIMEOUT):
    """Sends `data` on a new connection and reads one response; (Response or None, closed after it)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; the answer may still be readable
        resp, closed = read_response(s, deadline)
        if not closed:
            s.settimeout(0.5)
            try:
                closed = s.recv(1) == b""
            except socket.timeout:
                closed = False
            except ConnectionResetError:
                closed = True
        return resp, closed


def wait_closed(sock, deadline, trickle=None):
    """Waits until the server closes `sock` (True) or the deadline passes (False). With `trickle`, sends one
    byte of it every 100 ms meanwhile, as a slow client would."""
    i = 0
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], 0.1)
        if r:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
        elif trickle is not None:
            try:
                sock.send(trickle[i % len(trickle):i % len(trickle) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return True
            i += 1
    return False


def metric(srv, name):
    return srv.metrics().get(name)


class HeadBounds(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db", threads=1))
        cls.small = cls.track_class(TesseraServer(strategy="db", threads=1, env={
            "TESSERA_MAX_HEADER_BYTES": "4096", "TESSERA_MAX_HEADERS": "8"}))
        try:
            cls.srv.start()
            cls.small.start()
        except Exception:
            cls.srv.cleanup()
            cls.small.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()
        cls.small.finish()

    def assert431(self, srv, data, what):
        resp, closed = exchange(srv.port, data)
        self.assertIsNotNone(resp, f"{what}: no answer")
        doc = self.assertJsonError(resp, 431, what)
        self.assertEqual(doc["error"], "header_too_large", what)
        self.assertTrue(closed, f"{what}: the connection stayed open after the 431")
        return doc

    def test_one_64k_header(self):
        self.assert431(self.srv, head(fields=[("X-Big", "a" * 65536)]), "one 64 KB header")

    def test_40_headers_of_5k(self):
        self.assert431(self.srv, head(fields=[(f"X-H{i}", "b" * 5120) for i in range(40)]), "40 headers of 5 KB")

    def test_70k_header_name(self):
        self.assert431(self.srv, head(fields=[("X" * 71680, "1")]), "a 70 KB header name")

    def test_64k_target(self):
        self.assert431(self.srv, head(path="/healthz?" + "q" * 65536), "a 64 KB request target")

    def test_too_many_fields(self):
        doc = self.assert431(self.srv, head(fields=[(f"X-N{i}", "1") for i in range(80)]), "80 header fields")
        self.assertIn("too many", doc["message"])

    def test_within_bounds_is_served(self):
        fields = [(f"X-H{i}", "c" * 500) for i in range(20)] + [("Cookie", "pad=" + "d" * 16000)]
        resp, _ = exchange(self.srv.port, head(fields=fields))
        self.assertStatus(resp, 200, "26 KB of header fields (a 16 KB cookie), under the 32 KiB default")

    def test_configured_bounds(self):
        self.assert431(self.small, head(fields=[("X-Big", "e" * 5000)]), "5 KB over TESSERA_MAX_HEADER_BYTES=4096")
        self.assert431(self.small, head(fields=[(f"X-N{i}", "1") for i in range(10)]),
                       "10 fields over TESSERA_MAX_HEADERS=8")
        resp, _ = exchange(self.small.port, head(fields=[(f"X-N{i}", "1") for i in range(6)]))
        self.assertStatus(resp, 200, "6 small fields under both bounds")

    def test_h2o_error_answers_are_json(self):
        cases = [
            ("an unknown Transfer-Encoding", 400,
             head("/api/auth/login", [("Transfer-Encoding", "gzip")], method="POST")),
            ("a broken Content-Length", 400, head("/api/auth/login", [("Content-Length", "abc")], method="POST")),
            ("a broken chunked body", 400,
             head("/api/auth/login", [("Transfer-Encoding", "chunked")], method="POST", extra=b"zz\r\n")),
            ("a body over h2o's bound", 413,
             head("/api/auth/login", [("Content-Length", "999999999")], method="POST")),
            ("an unknown Expect", 417,
             head("/api/auth/login", [("Expect", "teapot"), ("Content-Length", "2")], method="POST", extra=b"{}")),
        ]
        for what, status, data in cases:
            with self.subTest(what):
                resp, _ = exchange(self.srv.port, data)
                self.assertIsNotNone(resp, f"{what}: no answer")
                doc = self.assertJsonError(resp, status, what)
                self.assertTrue(doc["message"], what)
                self.assertEqual(resp.header("Server"), "tessera", what)

    def test_unparsable_head_keeps_h2o_answer_and_server_serves_on(self):
        # h2o writes a fixed text 400 to the socket when its parser refuses the head: no handler or filter
        # runs, so it cannot carry JSON (docs/server.md). The server itself is unaffected.
        for what, data in [("a bad request line", b"GARBAGE\r\n\r\n"),
                           ("a control byte in If-None-Match", head("/healthz", [("If-None-Match", b"ju\x01nk")])),
                           ("101 header fields (h2o's own bound)", head(fields=[(f"X{i}", "1") for i in range(101)]))]:
            with self.subTest(what):
                resp, closed = exchange(self.srv.port, data)
                self.assertIsNotNone(resp, f"{what}: no answer")
                self.assertEqual(resp.status, 400, f"{what}: {resp!r}")
                self.assertTrue(closed, what)
        resp, _ = exchange(self.srv.port, head("/healthz", [("If-None-Match", "junk")]))
        self.assertStatus(resp, 200, "If-None-Match: junk (printable) is just an ETag that does not match")


class HeaderTimeout(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db", threads=1, extra_args=["--header-timeout", "1000"]))
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def test_slow_head_is_cut(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            self.assertTrue(wait_closed(s, time.monotonic() + CUT_DEADLINE, trickle=b"abcdefgh"),
                            f"a head trickled byte by byte was still open after {CUT_DEADLINE} s "
                            f"(h2o's default is {H2O_DEFAULT_TIMEOUT} s)")
        self.assertStatus(exchange(self.srv.port, head())[0], 200, "served after the cut")

    def test_silent_connection_is_cut(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=5) as s:
            self.assertTrue(wait_closed(s, time.monotonic() + CUT_DEADLINE), "a silent connection stayed open")

    def test_idle_keepalive_is_cut(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=5) as s:
            s.sendall(head())
            resp, closed = read_response(s, time.monotonic() + HTTP_TIMEOUT)
            self.assertStatus(resp, 200)
            self.assertFalse(closed)
            self.assertTrue(wait_closed(s, time.monotonic() + CUT_DEADLINE), "an idle keep-alive stayed open")


class PerAddressBound(ServerTestCase):
    LIMIT = 3

    def held_connection(self, srv):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(head())
        resp, closed = read_response(s, time.monotonic() + HTTP_TIMEOUT)
        self.assertStatus(resp, 200, "a connection under the bound")
        self.assertFalse(closed)
        return s

    def test_excess_connection_gets_429_and_a_close_frees_a_place(self):
        # Two loops: the kernel spreads connections over both listeners; the bound is one count for all.
        srv = self.track(TesseraServer(strategy="db", threads=2, env={
            "TESSERA_MAX_CONNECTIONS_PER_ADDRESS": str(self.LIMIT)}))
        srv.start()
        wait_until(lambda: metric(srv, "tessera_connections") == 1, 5, "start-up connections to close")
        held = [self.held_connection(srv) for _ in range(self.LIMIT)]
        try:
            for what, data in [("a connection that sends nothing", b""), ("a request", head())]:
                resp, closed = exchange(srv.port, data)
                self.assertIsNotNone(resp, f"{what} past the bound: no answer")
                doc = self.assertJsonError(resp, 429, f"{what} past the bound")
                self.assertEqual(doc["error"], "too_many_connections")
                self.assertEqual(resp.header("Retry-After"), "1")
                self.assertTrue(closed, f"{what} past the bound: left open")
            held.pop().close()
            # The close reaches the server asynchronously: retry until a new connection is served.
            wait_until(lambda: exchange(srv.port, head())[0].status == 200, 5, "a place freed by a close")
            # /metrics is one more connection: it may come before the server saw the last one close (429)
            wait_until(lambda: metric(srv, "tessera_connections_refused_total") >= 2, 5,
                       "tessera_connections_refused_total >= 2")
        finally:
            for s in held:
                s.close()

    def test_zero_is_no_bound(self):
        srv = self.track(TesseraServer(strategy="db", threads=1,
                                       extra_args=["--max-connections-per-address", "0"]))
        srv.start()
        held = []
        try:
            for _ in range(300):  # over the default of 256
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                held.append(s)
            for s in held[-5:]:
                s.sendall(head())
                self.assertStatus(read_response(s, time.monotonic() + HTTP_TIMEOUT)[0], 200)
        finally:
            for s in held:
                s.close()


class CleartextHttp2(ServerTestCase):
    def start(self, **kw):
        srv = self.track(TesseraServer(strategy="db", threads=1, **kw))
        srv.start()
        return srv

    def first_frame_type(self, sock, skip_head):
        """The type of the first HTTP/2 frame the server sends (after an HTTP/1.1 head when `skip_head`)."""
        deadline, buf = time.monotonic() + HTTP_TIMEOUT, b""
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            frames = buf.partition(b"\r\n\r\n")[2] if skip_head else buf
            if skip_head and b"\r\n\r\n" not in buf:
                continue
            if len(frames) >= 9:
                return frames[3], buf
        return None, buf

    def test_off_by_default(self):
        srv = self.start()
        resp, _ = exchange(srv.port, H2C_UPGRADE)
        self.assertStatus(resp, 200, "an h2c upgrade must be answered in HTTP/1.1 when h2c is off")
        self.assertIsNone(resp.header("Upgrade"), resp)
        resp, closed = exchange(srv.port, PREFACE)
        self.assertIsNotNone(resp, "an HTTP/2 preface with h2c off: no HTTP/1.1 answer")
        self.assertEqual(resp.status, 400, resp)
        self.assertTrue(closed)

    def test_upgrade_when_enabled(self):
        srv = self.start(env={"TESSERA_H2C": "1"})
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(H2C_UPGRADE)
            ftype, buf = self.first_frame_type(s, skip_head=True)
            self.assertTrue(buf.startswith(b"HTTP/1.1 101 "), buf[:200])
            self.assertEqual(ftype, 0x04, f"the first HTTP/2 frame after 101 is not SETTINGS: {buf[:200]!r}")

    def test_prior_knowledge_when_enabled(self):
        srv = self.start(extra_args=["--h2c"])
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(PREFACE)
            ftype, buf = self.first_frame_type(s, skip_head=False)
            self.assertEqual(ftype, 0x04, f"no SETTINGS frame in answer to the preface: {buf[:200]!r}")


if __name__ == "__main__":
    unittest.main(verbosity=2)

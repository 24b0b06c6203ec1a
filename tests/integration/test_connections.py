"""
The connection bound (TESSERA_MAX_CONNECTIONS): past it, tessera stops accepting and new connections wait in
the kernel's backlog; when a connection closes, the waiting one is served. The server never spins or fails.
"""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import ServerTestCase, TesseraServer, wait_until  # noqa: E402

LIMIT = 4
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def metric(srv, name):
    body = srv.browser().get("/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"no metric {name}")


class ConnectionBound(ServerTestCase):
    def test_excess_connection_waits_until_one_closes(self):
        srv = self.track(TesseraServer(strategy="db", threads=1, env={"TESSERA_MAX_CONNECTIONS": str(LIMIT)}))
        srv.start()
        # The start-up /healthz polls closed their connections: wait until only the asking one is open.
        wait_until(lambda: metric_or_none(srv) == 1, 5, "start-up connections to close")
        held = []
        try:
            for _ in range(LIMIT):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(REQUEST)  # keep-alive: the connection stays open after the answer
                self.assertIn(b"200 OK", s.recv(4096))
                held.append(s)
            extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)  # the kernel accepts it
            extra.sendall(REQUEST)
            extra.settimeout(0.5)
            with self.assertRaises(socket.timeout, msg="served past the connection bound"):
                extra.recv(4096)
            held.pop().close()
            extra.settimeout(5)
            self.assertIn(b"200 OK", extra.recv(4096), "the waiting connection was not served after a close")
            extra.close()
        finally:
            for s in held:
                s.close()
        wait_until(lambda: metric_or_none(srv) is not None and metric_or_none(srv) <= 1, 5,
                   "connections to be closed")


def metric_or_none(srv):
    try:
        return metric(srv, "tessera_connections")
    except Exception:
        return None


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""GET /metrics in the Prometheus text format: every sample has its # HELP and # TYPE lines, counters end in
_total, values are integers, and the counters move with the traffic."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (Browser, PostgresServer, RedisServer, ServerTestCase, TesseraServer, free_port, main, parse_metrics,
                             wait_until)  # noqa: E402


class Metrics(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="cached"))
        cls.srv.add_user("mia", "visitor", "mia-pw")
        cls.srv.start()

    def text(self):
        r = Browser(self.srv.port).get("/metrics")
        self.assertStatus(r, 200)
        self.assertTrue(r.header("Content-Type", "").startswith("text/plain"), r)
        return r.body.decode()

    def test_every_sample_has_help_and_type(self):
        helped, typed, samples = {}, {}, []
        for line in self.text().splitlines():
            if line.startswith("# HELP "):
                name, _, text = line[7:].partition(" ")
                self.assertNotIn(name, helped, f"two HELP lines for {name}")
                self.assertTrue(text.strip(), line)
                helped[name] = text
            elif line.startswith("# TYPE "):
                name, _, kind = line[7:].partition(" ")
                self.assertIn(kind, ("counter", "gauge", "histogram"), line)
                self.assertIn(name, helped, f"TYPE before HELP for {name}")
                typed[name] = kind
            elif line:
                m = re.fullmatch(r'(tessera_[a-z0-9_]+)(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? (\d+(\.\d+)?)',
                                 line)
                self.assertIsNotNone(m, f"not a sample line: {line!r}")
                samples.append(m.group(1))
                if m.group(5) is not None:
                    self.assertTrue(m.group(1).endswith("_sum"), f"only a histogram's _sum is fractional: {line!r}")
        self.assertGreater(len(samples), 20)
        for name in samples:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            if typed.get(family) == "histogram":
                continue
            self.assertIn(name, typed, f"{name} has no # TYPE")
            self.assertEqual(typed[name] == "counter", name.endswith("_total"), name)

    def test_counters_move_with_traffic(self):
        before = parse_metrics(self.text())
        b = Browser(self.srv.port)
        self.assertStatus(b.login("mia", "mia-pw"), 200)
        for _ in range(3):
            self.assertStatus(b.get("/api/auth/session"), 200)
        after = parse_metrics(self.text())
        self.assertGreaterEqual(after["tessera_requests_total"] - before["tessera_requests_total"], 5)
        self.assertGreaterEqual(after["tessera_auth_checks_total"] - before["tessera_auth_checks_total"], 3)
        self.assertGreaterEqual(after["tessera_password_hashes_total"] - before["tessera_password_hashes_total"], 1)
        self.assertGreaterEqual(after["tessera_cache_hits_total"] - before["tessera_cache_hits_total"], 1)

    def labeled(self, text, name):
        """{frozenset of (label, value): value} of one family."""
        out = {}
        for line in text.splitlines():
            m = re.fullmatch(name + r'\{((?:[a-z_]+="[^"]*",?)*)\} (\d+)', line)
            if m:
                labels = frozenset(re.findall(r'([a-z_]+)="([^"]*)"', m.group(1)))
                out[labels] = int(m.group(2))
        return out

    def test_requests_by_route_and_status_move_with_traffic(self):
        key = lambda method, route, code: frozenset({("method", method), ("route", route), ("code", code)})
        before = self.labeled(self.text(), "tessera_http_requests_total")
        self.assertIn(key("GET", "/api/auth/session", "2xx"), before)
        self.assertIn(key("GET", "/api/prechats/{id}/meta", "4xx"), before)
        b = Browser(self.srv.port)
        self.assertStatus(b.login("mia", "mia-pw"), 200)
        for _ in range(4):
            self.assertStatus(b.get("/api/auth/session"), 200)
        for _ in range(3):
            self.assertStatus(Browser(self.srv.port).get("/api/auth/session"), 401)
        for _ in range(2):
            self.assertStatus(b.get("/no/such/path"), 404)
        after = self.labeled(self.text(), "tessera_http_requests_total")

        def moved(k):
            return after.get(k, 0) - before.get(k, 0)

        # Each test of this class runs alone on its server: the differences are exactly our requests.
        self.assertEqual(moved(key("POST", "/api/auth/login", "2xx")), 1)
        self.assertEqual(moved(key("GET", "/api/auth/session", "2xx")), 4)
        self.assertEqual(moved(key("GET", "/api/auth/session", "4xx")), 3)
        self.assertEqual(moved(key("any", "other", "4xx")), 2)
        self.assertEqual(moved(key("GET", "/api/prechats/{id}/meta", "2xx")), 0)
        # The /metrics request that read `before` was counted once it had been answered.
        self.assertGreaterEqual(moved(key("GET", "/metrics", "2xx")), 1)


def histograms(text, family):
    """{label value: (buckets [(le, cumulative count)], sum, count)} of a histogram family with one label."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(family + r'_(bucket|sum|count)\{([a-z_]+)="([^"]*)"(?:,le="([^"]+)")?\} (\S+)', line)
        if not m:
            continue
        buckets, total, count = out.get(m.group(3), ([], None, None))
        if m.group(1) == "bucket":
            buckets.append((m.group(4), int(m.group(5))))
        elif m.group(1) == "sum":
            total = float(m.group(5))
        else:
            count = int(m.group(5))
        out[m.group(3)] = (buckets, total, count)
    return out


def check_histogram(tc, text, family, label):
    """Asserts the family is a valid Prometheus histogram; returns {label value: _count}."""
    tc.assertIn(f"# TYPE {family} histogram", text)
    hs = histograms(text, family)
    tc.assertTrue(hs, f"no samples of {family}")
    counts = {}
    for value, (buckets, total, count) in hs.items():
        tc.assertGreaterEqual(len(buckets), 2, value)
        tc.assertEqual(buckets[-1][0], "+Inf", buckets)
        les = [float(le) for le, _ in buckets[:-1]]
        tc.assertEqual(les, sorted(les), buckets)
        cums = [n for _, n in buckets]
        tc.assertEqual(cums, sorted(cums), f"{family}{{{label}={value}}} buckets not cumulative: {cums}")
        tc.assertEqual(cums[-1], count, "+Inf == _count")
        tc.assertIsNotNone(total)
        tc.assertGreaterEqual(total, 0.0)
        if count > 0:
            tc.assertGreater(total, 0.0)
        counts[value] = count
    return counts


class AuthHistogram(ServerTestCase):
    """tessera_auth_duration_seconds counts one observation per session check, labeled by strategy."""

    def moved_by(self, strategy, redis=False):
        extra = []
        if redis:
            rs = RedisServer()
            self.addCleanup(rs.cleanup)
            rs.start()
            extra = ["--redis", rs.url]
        srv = self.track(TesseraServer(strategy=strategy, extra_args=extra))
        srv.add_user("ana", "visitor", "ana-pw")
        srv.start()
        text = lambda: Browser(srv.port).get("/metrics").body.decode()
        before = check_histogram(self, text(), "tessera_auth_duration_seconds", "strategy")
        self.assertEqual(list(before), [strategy])
        b = Browser(srv.port)
        self.assertStatus(b.login("ana", "ana-pw"), 200)
        for _ in range(5):
            self.assertStatus(b.get("/api/auth/session"), 200)
        for _ in range(2):
            self.assertStatus(Browser(srv.port).get("/api/auth/session"), 401)
        after = check_histogram(self, text(), "tessera_auth_duration_seconds", "strategy")
        # Seven authenticated requests (five with the cookie, two without): seven checks; /metrics and the
        # login are not authenticated routes.
        self.assertEqual(after[strategy] - before[strategy], 7)
        return srv

    def test_store_histogram_moves_with_store_calls(self):
        srv = self.track(TesseraServer(strategy="db"))
        srv.add_user("eve", "visitor", "eve-pw")
        srv.start()
        text = lambda: Browser(srv.port).get("/metrics").body.decode()
        t0 = text()
        before, c0 = check_histogram(self, t0, "tessera_store_duration_seconds", "store"), parse_metrics(t0)
        self.assertEqual(list(before), ["sqlite"])
        b = Browser(srv.port)
        self.assertStatus(b.login("eve", "eve-pw"), 200)
        for _ in range(4):
            self.assertStatus(b.get("/api/auth/session"), 200)
        self.assertStatus(b.post("/api/auth/logout"), 204)
        t1 = text()
        after, c1 = check_histogram(self, t1, "tessera_store_duration_seconds", "store"), parse_metrics(t1)
        calls = lambda c: c["tessera_store_gets_total"] + c["tessera_store_writes_total"]
        # The login's set, four gets, the logout's destroy (and any throttled touch): every call is timed once.
        self.assertGreaterEqual(after["sqlite"] - before["sqlite"], 6)
        self.assertEqual(after["sqlite"] - before["sqlite"], calls(c1) - calls(c0))

    def test_db(self):
        self.moved_by("db")

    def test_cached_with_redis(self):
        self.moved_by("cached", redis=True)


class BackendCounters(ServerTestCase):
    """tessera_backend_{errors,timeouts,reconnects}_total{backend} move when Redis goes away under the server."""

    def test_redis_stopped_and_back(self):
        rs = RedisServer()
        self.addCleanup(rs.cleanup)
        rs.start()
        srv = self.track(TesseraServer(strategy="redis", extra_args=["--redis", rs.url]))
        srv.add_user("ivy", "visitor", "ivy-pw")
        srv.start()
        metrics = lambda: parse_metrics(Browser(srv.port).get("/metrics").body.decode())
        fams = Browser(srv.port).get("/metrics").body.decode()
        for fam in ("errors", "timeouts", "reconnects"):
            self.assertIn(f"# TYPE tessera_backend_{fam}_total counter", fams)
            for backend in ("redis", "postgres"):
                self.assertRegex(fams, rf'tessera_backend_{fam}_total{{backend="{backend}"}} \d+')
        b = Browser(srv.port)
        self.assertStatus(b.login("ivy", "ivy-pw"), 200)
        self.assertStatus(b.get("/api/auth/session"), 200)
        m0 = metrics()
        self.assertEqual(m0["tessera_backend_errors_total"], 0, "no errors while Redis is up")

        rs.stop()
        # A session check while Redis is down fails closed (503) and is counted.
        self.assertJsonError(b.get("/api/auth/session"), 503)
        wait_until(lambda: metrics()["tessera_backend_reconnects_total"] > m0["tessera_backend_reconnects_total"],
                   10, "a reconnect attempt counted")
        rs.start()
        wait_until(lambda: Browser(srv.port).get("/readyz").status == 200, 15, "ready after Redis came back")
        m1 = metrics()
        self.assertGreater(m1["tessera_backend_errors_total"], m0["tessera_backend_errors_total"])
        self.assertGreater(m1["tessera_backend_reconnects_total"], m0["tessera_backend_reconnects_total"])
        # Only Redis went away: the labeled samples say which (parse_metrics sums labels; read them apart).
        text = Browser(srv.port).get("/metrics").body.decode()
        self.assertRegex(text, r'tessera_backend_errors_total\{backend="redis"\} [1-9]\d*')
        self.assertRegex(text, r'tessera_backend_errors_total\{backend="postgres"\} 0\n')
        # The server answers again: a fresh login and check work.
        b2 = Browser(srv.port)
        self.assertStatus(b2.login("ivy", "ivy-pw"), 200)
        self.assertStatus(b2.get("/api/auth/session"), 200)


@unittest.skipUnless(os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres")), "PostgreSQL not installed")
class PostgresCounters(ServerTestCase):
    """With PostgreSQL: the store histogram is labeled postgres, and the postgres backend counters move when it
    is stopped under the server."""

    def test_postgres_stopped_and_back(self):
        pg = PostgresServer()
        self.addCleanup(pg.cleanup)
        pg.start()
        srv = self.track(TesseraServer(strategy="db", database=pg.url, env={"BACKEND_TIMEOUT_MS": "500"}))
        srv.add_user("pam", "visitor", "pam-pw")
        srv.start()
        text = lambda: Browser(srv.port).get("/metrics").body.decode()
        b = Browser(srv.port)
        self.assertStatus(b.login("pam", "pam-pw"), 200)
        h0 = check_histogram(self, text(), "tessera_store_duration_seconds", "store")
        self.assertEqual(list(h0), ["postgres"])
        self.assertStatus(b.get("/api/auth/session"), 200)
        t0 = text()
        h1 = check_histogram(self, t0, "tessera_store_duration_seconds", "store")
        self.assertGreaterEqual(h1["postgres"] - h0["postgres"], 1)
        pgval = lambda t, fam: int(re.search(rf'tessera_backend_{fam}_total\{{backend="postgres"\}} (\d+)', t).group(1))
        e0, r0 = pgval(t0, "errors"), pgval(t0, "reconnects")
        self.assertEqual(e0, 0, "no PostgreSQL errors while it is up (the first connect's wait is not one)")

        pg.stop()
        self.assertJsonError(b.get("/api/auth/session"), 503)
        wait_until(lambda: pgval(text(), "reconnects") > r0, 15, "a PostgreSQL reconnect attempt counted")
        pg.start()
        wait_until(lambda: Browser(srv.port).get("/readyz").status == 200, 20, "ready after PostgreSQL came back")
        t1 = text()
        self.assertGreater(pgval(t1, "errors"), e0)
        self.assertRegex(t1, r'tessera_backend_errors_total\{backend="redis"\} 0\n')
        self.assertStatus(b.get("/api/auth/session"), 200, "the session is still there")


class MetricsListen(ServerTestCase):
    """--metrics-listen / TESSERA_METRICS_LISTEN: /metrics alone on its own port; the main port keeps it."""

    def check(self, srv, mport):
        m = Browser(mport).get("/metrics")
        self.assertStatus(m, 200)
        self.assertTrue(m.header("Content-Type", "").startswith("text/plain"), m)
        self.assertIn("# TYPE tessera_requests_total counter", m.body.decode())
        for path in ("/", "/api/auth/session", "/readyz", "/metrics/x", "/no/such/path"):
            self.assertJsonError(Browser(mport).get(path), 404, f"{path} on the metrics port")
        self.assertJsonError(Browser(mport).post("/metrics", b"{}"), 405, "POST /metrics on the metrics port")
        # The main port still serves /metrics, and everything else.
        self.assertStatus(Browser(srv.port).get("/metrics"), 200)
        self.assertStatus(Browser(srv.port).get("/readyz"), 200)
        # The same counters behind both: a request on the main port shows on the metrics port.
        before = parse_metrics(Browser(mport).get("/metrics").body.decode())["tessera_requests_total"]
        for _ in range(3):
            self.assertJsonError(Browser(srv.port).get("/no/such/path"), 404)
        after = parse_metrics(Browser(mport).get("/metrics").body.decode())["tessera_requests_total"]
        self.assertGreaterEqual(after - before, 3)

    def test_flag(self):
        mport = free_port()
        srv = self.track(TesseraServer(extra_args=["--metrics-listen", f"127.0.0.1:{mport}"]))
        srv.start()
        self.check(srv, mport)

    def test_environment(self):
        mport = free_port()
        srv = self.track(TesseraServer(env={"TESSERA_METRICS_LISTEN": f"127.0.0.1:{mport}"}))
        srv.start()
        self.check(srv, mport)



if __name__ == "__main__":
    main()

"""GET /metrics in the Prometheus text format: every sample has its # HELP and # TYPE lines, counters end in
_total, values are integers, and the counters move with the traffic."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import Browser, ServerTestCase, TesseraServer, main, parse_metrics  # noqa: E402


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
                self.assertIn(kind, ("counter", "gauge"), line)
                self.assertIn(name, helped, f"TYPE before HELP for {name}")
                typed[name] = kind
            elif line:
                m = re.fullmatch(r"(tessera_[a-z0-9_]+) (\d+)", line)
                self.assertIsNotNone(m, f"not a sample line: {line!r}")
                samples.append(m.group(1))
        self.assertGreater(len(samples), 20)
        for name in samples:
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


if __name__ == "__main__":
    main()

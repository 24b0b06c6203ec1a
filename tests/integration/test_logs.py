"""The server's log: JSON lines that parse (TESSERA_LOG_FORMAT=json), levels that filter, the start-up line with
the effective configuration and no secret, the access log on (stderr or a file) and off, bad values refused."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import Browser, RedisServer, ServerTestCase, TesseraServer, main, wait_until  # noqa: E402

SECRET = "log-test-secret-0123456789abcdef-0123456789"


def json_lines(text):
    """Every line of the server's output as JSON (a line that does not parse fails the test); the harness's
    "[server-N.log]" headers are skipped."""
    return [json.loads(line) for line in text.splitlines()
            if line.strip() and not (line.startswith("[") and line.endswith(".log]"))]


class JsonLog(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(secret=SECRET, env={"TESSERA_LOG_FORMAT": "json",
                                                                    "TESSERA_ACCESS_LOG": "on"}))
        cls.srv.add_user("ann", "visitor", "ann-pw-secret")
        cls.srv.start()

    def test_start_line_has_the_configuration_and_no_secret(self):
        lines = json_lines(self.srv.log_text())
        start = [ln for ln in lines if ln["event"] == "start"]
        self.assertEqual(len(start), 1, lines)
        s = start[0]
        self.assertEqual(s["level"], "info")
        self.assertEqual(s["strategy"], "db")
        self.assertEqual(s["log_format"], "json")
        self.assertEqual(s["access_log"], "on")
        self.assertEqual(s["secrets"], "redacted")
        self.assertEqual(s["secret_count"], 1)
        self.assertEqual(s["listen"], f"127.0.0.1:{self.srv.port}")
        for ln in lines:
            self.assertIn("ts", ln)
            self.assertIn(ln["level"], ("error", "warn", "info", "debug"))

    def test_access_log_lines(self):
        b = Browser(self.srv.port)
        self.assertStatus(b.login("ann", "ann-pw-secret"), 200)
        self.assertStatus(b.get("/api/auth/session?access_token=tok-in-query"), 200)
        self.assertStatus(b.get("/no/such"), 404)

        def access():
            return [ln for ln in json_lines(self.srv.log_text()) if ln["event"] == "access"]

        # A line is written when its request is disposed of, after the answer went out, and the requests ran on
        # two threads: wait for all three rather than for the last one sent.
        wanted = {"/api/auth/login", "/api/auth/session", "/no/such"}
        wait_until(lambda: wanted <= {a["path"] for a in access()}, 10, "the access lines of three requests")
        by_path = {a["path"]: a for a in access()}
        self.assertEqual(by_path["/api/auth/login"]["method"], "POST")
        self.assertEqual(by_path["/api/auth/login"]["status"], 200)
        self.assertEqual(by_path["/api/auth/session"]["status"], 200)
        self.assertGreater(by_path["/api/auth/session"]["bytes"], 0)
        self.assertEqual(by_path["/no/such"]["status"], 404)
        for a in access():
            self.assertIsInstance(a["duration_us"], int)
            self.assertIn(a["thread"], (0, 1))
        text = self.srv.log_text()
        # The query string, the password, the secret and the cookie never reach the log.
        for secret in ("tok-in-query", "ann-pw-secret", SECRET):
            self.assertNotIn(secret, text)


class TextLogLevels(ServerTestCase):
    def test_text_format_and_level_filter(self):
        srv = self.track(TesseraServer(secret=SECRET, extra_args=["--log-level", "warn"]))
        srv.start()
        self.assertStatus(Browser(srv.port).get("/healthz"), 200)
        srv.stop()
        text = srv.log_text()
        # info lines (the start-up line, "change events flowing") are filtered out at warn.
        self.assertNotIn("listening on", text)
        self.assertNotIn(" info ", text)
        self.assertNotIn("access", text)

    def test_text_access_log_to_a_file(self):
        srv = TesseraServer(secret=SECRET)
        path = os.path.join(srv.tmpdir, "access.log")
        srv.extra_args += ["--access-log", path]
        self.track(srv)
        srv.start()
        self.assertStatus(Browser(srv.port).get("/healthz"), 200)
        self.assertIn("listening on", srv.log_text())
        def read():
            if not os.path.exists(path):
                return ""
            with open(path, encoding="utf-8") as f:
                return f.read()

        wait_until(lambda: "/healthz" in read(), 10, "the access log file")
        line = [ln for ln in read().splitlines() if "/healthz" in ln][0]
        self.assertIn(" info access method=GET path=/healthz status=200 ", line)
        self.assertNotIn("/healthz", srv.log_text().split("listening on", 1)[1])

    def test_bad_values_are_refused(self):
        srv = TesseraServer(secret=SECRET)
        for args, env, word in ((["--log-level", "loud"], {}, "--log-level"),
                                ([], {"TESSERA_LOG_FORMAT": "xml"}, "TESSERA_LOG_FORMAT"),
                                (["--access-log", "maybe"], {}, "--access-log"),
                                (["--access-log", "/nonexistent-dir/a.log"], {}, "access log")):
            r = subprocess.run([srv.bin, "serve", "--database", "sqlite:" + os.path.join(srv.tmpdir, "x.db"), *args],
                               env={**srv.env, **env}, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, env, r.stderr))
            err = r.stderr.decode()
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn(word, err)


class BackendDownUp(ServerTestCase):
    def test_redis_stopped_and_restarted_is_logged(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        srv = self.track(TesseraServer(strategy="cached", secret=SECRET,
                                       env={"TESSERA_LOG_FORMAT": "json", "REDIS_URL": redis.url}))
        srv.start()

        def events(name):
            return [ln for ln in json_lines(srv.log_text()) if ln["event"] == name]

        wait_until(lambda: len(events("backend.up")) >= 1, 20, "backend.up after start")
        redis.stop()
        wait_until(lambda: len(events("backend.down")) >= 1, 20, "backend.down once Redis is stopped")
        down = events("backend.down")[0]
        self.assertEqual(down["level"], "warn")
        self.assertEqual(down["backend"], "coherence")
        ups = len(events("backend.up"))
        redis.start()
        wait_until(lambda: len(events("backend.up")) > ups, 30, "backend.up once Redis is back")


if __name__ == "__main__":
    main()

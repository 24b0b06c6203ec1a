"""PostgreSQL store and appdb: runs the C integration tests (pgstore_test, appdb_pg_test, built next to the tessera
binary) against a throwaway PostgreSQL 15 started here.

pgstore_test gets TESS_PG_URL, TESS_PG_PID (it pauses the server with SIGSTOP/SIGCONT itself) and a control pipe
(TESS_CTL_OUT / TESS_CTL_IN): it writes "kill" (immediate shutdown, as close to a crash as a restartable cluster
gets) or "start" (restart on the same port and data dir), and waits for "ok <postmaster pid>".
"""

import os
import select
import signal
import subprocess
import sys
import time
import unittest

from tessera_harness import (PostgresServer, STOP_TIMEOUT, HarnessError, _stop_process, main, port_open, tessera_bin,
                             wait_until)

RUN_TIMEOUT = float(os.environ.get("TESS_C_TEST_TIMEOUT", "120"))


def c_test_path(name):
    """The C test binaries are built into the same directory as the tessera binary (or TESS_C_TEST_DIR)."""
    d = os.environ.get("TESS_C_TEST_DIR") or os.path.dirname(tessera_bin())
    path = os.path.join(d, name)
    if not os.access(path, os.X_OK):
        raise HarnessError(f"C test binary not found: {path} (configure with -DBUILD_TESTING=ON)")
    return path


def resume_tree(pid):
    """SIGCONT to the postmaster `pid` and its children (the C test pauses them all)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                if int(fields[1]) == pid:
                    pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass


def have_postgres():
    return os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres"))


@unittest.skipUnless(have_postgres(), "PostgreSQL 15 not installed (scripts/setup.sh installs it)")
class PgStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PostgresServer()
        try:
            cls.pg.start()
        except Exception:
            cls.pg.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def setUp(self):
        if self.pg.proc is None or self.pg.proc.poll() is not None:
            self.pg.start()  # a previous test left it down

    def _handle(self, cmd):
        """Serves one control command from the C test; returns the reply line."""
        if cmd == "kill":
            _stop_process(self.pg.proc, signal.SIGQUIT, STOP_TIMEOUT)
            wait_until(lambda: not port_open(self.pg.port), STOP_TIMEOUT, "postgres port to close")
            return f"ok {self.pg.proc.pid}"
        if cmd == "start":
            self.pg.start()
            return f"ok {self.pg.proc.pid}"
        return "err unknown command"

    def run_c_test(self, name):
        exe = c_test_path(name)
        c2p_r, c2p_w = os.pipe()  # the test's requests
        p2c_r, p2c_w = os.pipe()  # our replies
        env = dict(os.environ, TESS_PG_URL=self.pg.url, TESS_PG_PID=str(self.pg.proc.pid),
                   TESS_CTL_OUT=str(c2p_w), TESS_CTL_IN=str(p2c_r))
        out_path = os.path.join(self.pg.tmpdir, f"{name}.out")
        started = time.monotonic()
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([exe], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    pass_fds=(c2p_w, p2c_r))
        os.close(c2p_w)
        os.close(p2c_r)
        buf = b""
        try:
            deadline = started + RUN_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError(f"{name} did not finish within {RUN_TIMEOUT:.0f}s")
                r, _, _ = select.select([c2p_r], [], [], min(left, 1.0))
                if not r:
                    continue
                chunk = os.read(c2p_r, 4096)
                if not chunk:
                    break  # the test exited (or closed its end)
                buf += chunk
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    reply = self._handle(line.decode().strip())
                    os.write(p2c_w, reply.encode() + b"\n")
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(c2p_r)
            os.close(p2c_w)
            # never leave the server stopped (SIGSTOP) behind a crashed test
            if self.pg.proc is not None and self.pg.proc.poll() is None:
                resume_tree(self.pg.proc.pid)
        with open(out_path, "rb") as f:
            output = f.read().decode(errors="replace")
        took = time.monotonic() - started
        sys.stderr.write(f"\n----- {name} ({took:.1f}s) -----\n{output}")
        if rc != 0:
            sys.stderr.write(f"\n===== postgres log =====\n{self.pg.log_text()}\n")
        self.assertEqual(rc, 0, f"{name} exited with {rc}")
        self.assertNotIn("[  FAILED  ]", output)
        self.assertIn("[  PASSED  ]", output)
        return output

    def test_appdb_pg(self):
        out = self.run_c_test("appdb_pg_test")
        self.assertNotIn("[  SKIPPED ]", out)

    def test_pgstore(self):
        out = self.run_c_test("pgstore_test")
        self.assertNotIn("[  SKIPPED ]", out)  # the pause and restart tests ran


if __name__ == "__main__":
    main()

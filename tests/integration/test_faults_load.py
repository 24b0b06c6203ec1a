"""Faults under load. While bench/soak_load.c (compiled here) sends mixed traffic (polls with ETags, sessions,
message lists and posts, event streams, login -> logout lives) and test_faults.py's client threads record
every reply of a few sessions (one of them logged out), one of these happens and is undone:

- kill -9 of Redis (redis strategy; AOF with appendfsync always, so the sessions survive the restart);
- kill -9 of every PostgreSQL process (db strategy; synchronous_commit on): every message answered 201,
  before or after, is there when read back;
- a TCP proxy between tessera and Redis, then PostgreSQL, that stops forwarding without closing anything;
- kill -9 of tessera (cached strategy, SQLite and Redis), restarted on the same port: the sessions made
  before it died are served (a logged-out one stays 401), no acknowledged message is lost;
- SQLite's disk full (a small tmpfs mounted here; skipped where mounting is not allowed): writes answer 503,
  reads go on, no acknowledged message is lost, writes succeed again once there is room;
- a file-size limit (RLIMIT_FSIZE, as `ulimit -f` sets it; no root needed) reached by the database: writes
  answer 503 and the server lives (it used to die of SIGXFSZ).

Checked over every recorded reply: never a 5xx but 503 (every 503 JSON with Retry-After), never a 200 for the
logged-out session, no reply slower than the backend timeout + 1 s; while the backend is away the recorded
sessions get 503 and /readyz 503; within RECOVERY (1 s) of the backend answering again (or of the proxy
forwarding again, or of the disk having room) a request succeeds. The load generator's own counters: no 5xx
but 503, no 200 after a logout, no request unanswered for 10 s. test_faults.py has the single-outage cases
(SIGTERM and SIGSTOP of the backends, an empty Redis); this file adds kill -9, stalls, a full disk and load.
"""

import collections
import errno
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_faults as tf  # noqa: E402
from tessera_harness import (Browser, HarnessError, PostgresServer, RedisServer, TesseraServer,  # noqa: E402
                             main, port_open, wait_until)

RECOVERY = 1.0  # seconds from the backend being back to a request succeeding
LOAD_RATE = 300  # soak_load requests a second (plus its streams and one login life a second)
LOAD_USERS = 3
REPORT = []  # one row per finished test, written to $TESS_FAULTS_REPORT (Markdown) when that is set
SOAK_LOAD_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "soak_load.c")
_BUILT = {}


def soak_load_bin():
    """bench/soak_load.c compiled once per run into a temp dir."""
    if "bin" not in _BUILT:
        d = tempfile.mkdtemp(prefix="tessera-soak-load-")
        exe = os.path.join(d, "soak_load")
        r = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-D_GNU_SOURCE", "-o", exe, SOAK_LOAD_SRC],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise HarnessError(f"cannot compile soak_load.c: {r.stderr.decode(errors='replace')}")
        _BUILT["bin"], _BUILT["dir"] = exe, d
    return _BUILT["bin"]


class SoakLoad:
    """soak_load against one server, bounded (it stops by itself after `seconds`); stop() ends it early and
    returns its counters as a dict."""

    def __init__(self, port, users_file, tmpdir, seconds=240):
        self.err_path = os.path.join(tmpdir, "soak_load.err")
        self.out_path = os.path.join(tmpdir, "soak_load.out")
        self.t0 = time.monotonic()  # soak_load's own clock starts a little later: its windows start later
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [soak_load_bin(), "--port", str(port), "--users", users_file, "--seconds", str(seconds),
                 "--rate", str(LOAD_RATE), "--conns", "16", "--streams", "4", "--stream-seconds", "3",
                 "--login-rate", "1", "--progress", "1"], stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def windows(self):
        """soak_load's progress lines so far: [(start, end) on time.monotonic(), requests/s, errors]."""
        out = []
        with open(self.err_path, errors="replace") as f:
            for line in f:
                if line.startswith("soak_load: from="):
                    kv = dict(x.split("=", 1) for x in line.split()[1:])
                    out.append(((self.t0 + float(kv["from"].rstrip("s")), self.t0 + float(kv["to"].rstrip("s"))),
                                float(kv["requests/s"]), int(kv["errors"])))
        return out

    def wait_clean(self, since, what):
        """Waits for a second of load that began after `since` with answers and no error."""
        wait_until(lambda: any(w[0] >= since and rate > 0 and errs == 0 for w, rate, errs in self.windows()),
                   20, f"a second of load without error after {what}", interval=0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        with open(self.out_path) as f:
            line = f.read().strip()
        if self.proc.returncode != 0 or not line:
            raise HarnessError(f"soak_load exited {self.proc.returncode}: {self.log()}")
        return dict(kv.split("=", 1) for kv in line.split())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()[-3000:]


class StallProxy:
    """A TCP proxy from a free loopback port to 127.0.0.1:upstream. stall() stops moving bytes, both ways, on
    every connection, new ones included, and closes nothing; resume() moves them again."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.socks, self.threads = [], []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        with self._lock:
            self.threads.append(t)
        t.start()

    def _accept(self):
        while not self.closed.is_set():
            if not select.select([self.lsock], [], [], 0.1)[0]:
                continue
            try:
                c, _ = self.lsock.accept()
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                continue
            with self._lock:
                self.socks += [c, u]
            self._spawn(self._pump, c, u)
            self._spawn(self._pump, u, c)

    def _pump(self, src, dst):
        try:
            while not self.closed.is_set():
                if not self.flowing.wait(0.1):
                    continue
                if not select.select([src], [], [], 0.1)[0] or not self.flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stall(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def close(self):
        self.closed.set()
        self.flowing.set()
        for t in list(self.threads):
            t.join(timeout=5)
        for s in self.socks + [self.lsock]:
            s.close()


class LoadFaultCase(tf.FaultTestCase):
    """test_faults.FaultTestCase (recorded client threads, their checks) plus soak_load running through the
    fault."""

    def start_load(self):
        """Adds LOAD_USERS visitors with a pre-chat each, and starts soak_load on them."""
        srv = self.server
        path = os.path.join(srv.tmpdir, "load.users")
        lines = []
        for i in range(LOAD_USERS):
            name, pw = f"load{i}", f"load-pass-{i}"
            srv.add_user(name, "visitor", pw)
            b = srv.browser(name)
            self.assertStatus(b.login(name, pw), 200, f"login {name}")
            pid = self.assertStatus(b.post("/api/prechats", {"topic": "load"}), 201).json()["id"]
            lines.append(f"{name} {pw} {pid} {tf.cookie_header(srv, b)}\n")
        with open(path, "w") as f:
            f.writelines(lines)
        self.load = SoakLoad(srv.port, path, srv.tmpdir)
        self.addCleanup(self.load.kill)
        return self.load

    def check_load(self, counters, replies, fault):
        """Asserts on soak_load's counters; records the test's row of the report."""
        by = collections.Counter(r.status for r in replies)
        rec = getattr(self, "recovery_took", None)
        REPORT.append((self._testMethodName, self.strategy, fault, len(replies),
                       ", ".join(f"{k if k is not None else 'refused'}: {v}"
                                 for k, v in sorted(by.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))),
                       max((r.t1 - r.t0 for r in replies), default=0.0), rec, counters))
        sys.stderr.write(f"  [{self._testMethodName}] soak_load: " + " ".join(
            f"{k}={counters[k]}" for k in ("requests", "errors", "status_503", "err_io", "posts", "events")) + "\n")
        self.assertGreater(int(counters["requests"]), 100, "soak_load sent next to nothing")
        self.assertEqual(counters["status_5xx_other"], "0", f"soak_load saw a 5xx but 503:\n{self.load.log()}")
        self.assertEqual(counters["err_loggedout_200"], "0", "a logged-out session answered 200 under load")
        self.assertEqual(counters["err_timeout"], "0", f"a request hung for 10 s under load:\n{self.load.log()}")

    def first_success(self, since, what, probe=None):
        """Probes every 20 ms from `since` until a request succeeds; asserts that it took at most RECOVERY."""
        b = Browser(self.server.port)
        probe = probe or (lambda: b.get("/api/auth/session", cookies=self.alice_cookie,
                                        timeout=2 * tf.SLOWEST_REPLY).status == 200)
        deadline = since + RECOVERY + 10
        while True:
            try:
                if probe():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail(f"no success within {RECOVERY + 10}s of {what}")
            time.sleep(0.02)
        took = time.monotonic() - since
        self.recovery_took = took
        self.assertLessEqual(took, RECOVERY, f"first success {took:.2f}s after {what} (limit {RECOVERY}s)")
        wait_until(lambda: self.readyz() == 200, RECOVERY + 10, "/readyz 200", interval=0.02)

    def check_acked(self, traffic, pid):
        """Every message answered 201 is there, with its body."""
        acked = dict(traffic.acked)
        self.assertGreater(len(acked), 0, "no message was acknowledged")
        b = Browser(self.server.port)
        got, after = {}, 0
        while True:
            r = self.assertStatus(b.get(f"/api/prechats/{pid}/messages?after={after}&limit=200",
                                        cookies=self.alice_cookie), 200)
            page = r.json()["messages"]
            if not page:
                break
            got.update((x["id"], x["body"]) for x in page)
            after = page[-1]["id"]
        missing = {k: v for k, v in acked.items() if got.get(k) != v}
        self.assertEqual(missing, {}, f"{len(missing)} of {len(acked)} acknowledged messages lost")

    def backend_outage(self, labels, traffic, take_down, bring_back, what, pid=None):
        """The common run: load and traffic, one outage, the recovery, the checks."""
        load = self.start_load()
        traffic.start()
        m = self.outage(traffic, labels, take_down, bring_back)
        self.assertJsonError(self.down_login, 503, f"login while {what}")
        self.first_success(m["up"], what + " ended")
        traffic.wait_samples(labels, m["up"] + RECOVERY)
        load.wait_clean(m["up"] + RECOVERY, what + " ended")
        counters = load.stop()
        traffic.stop()
        if pid is not None:
            self.check_acked(traffic, pid)
        replies = self.finish(traffic)
        self.check_load(counters, replies, what)
        self.check_all(replies)
        ok = tf.OK + (201,)
        self.check_window(replies, labels, m["begin"], m["down_begin"], ok, "before the fault")
        self.check_window(replies, labels, m["down"], m["up_begin"], (503,), f"while {what}")
        self.check_window(replies, labels, m["up"] + RECOVERY, float("inf"), ok, f"{RECOVERY}s after {what} ended")
        self.check_window(replies, ["lou-logged-out"], m["up"] + RECOVERY, float("inf"), (401,),
                          "the logged-out session afterwards")


def _kill9_all(pids, what):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: all(tf._proc_state(p) in ("gone", "Z") for p in pids), 10, f"{what} killed")


@unittest.skipUnless(tf.HAVE_REDIS, "redis-server not installed (scripts/setup.sh installs it)")
class RedisLoadFaults(LoadFaultCase):
    strategy = "redis"

    def start_redis(self, *extra):
        redis = RedisServer(extra_args=extra)
        self.addCleanup(redis.cleanup)
        redis.start()
        self.backends.append(redis)
        return redis

    def test_a_redis_kill9(self):
        redis = self.start_redis("--appendonly", "yes", "--appendfsync", "always")
        self.start_server(extra_args=["--redis", redis.url])
        traffic, _, labels = self.set_up_traffic()

        def kill():
            redis.proc.kill()
            redis.proc.wait(timeout=10)
            wait_until(lambda: not port_open(redis.port), 10, "the Redis port closed")
        self.backend_outage(labels, traffic, kill, redis.start, "Redis was killed")

    def test_b_redis_behind_a_stalled_proxy(self):
        redis = self.start_redis()
        proxy = StallProxy(redis.port)
        self.addCleanup(proxy.close)
        self.start_server(extra_args=["--redis", f"redis://127.0.0.1:{proxy.port}"])
        traffic, _, labels = self.set_up_traffic()
        self.backend_outage(labels, traffic, proxy.stall, proxy.resume, "the proxy to Redis stalled")


@unittest.skipUnless(tf.HAVE_PG, "PostgreSQL 15 not installed (scripts/setup.sh installs it)")
class PostgresLoadFaults(LoadFaultCase):
    strategy = "db"

    def start_pg(self):
        pg = PostgresServer(extra_args=["-c", "synchronous_commit=on"])  # a 201 is on disk before it is sent
        self.addCleanup(pg.cleanup)
        self.backends.append(pg)
        return pg.start()

    def test_c_postgres_kill9_keeps_acknowledged_messages(self):
        pg = self.start_pg()
        self.start_server(database=pg.url)
        traffic, pid, labels = self.set_up_traffic(writer=True)

        def kill():
            _kill9_all([pg.proc.pid] + tf._children(pg.proc.pid), "PostgreSQL")
            pg.proc.wait(timeout=10)
            wait_until(lambda: not port_open(pg.port), 10, "the PostgreSQL port closed")
        self.backend_outage(labels, traffic, kill, pg.start, "PostgreSQL was killed", pid=pid)

    def test_d_postgres_behind_a_stalled_proxy(self):
        pg = self.start_pg()
        proxy = StallProxy(pg.port)
        self.addCleanup(proxy.close)
        self.start_server(database=f"postgres://postgres@127.0.0.1:{proxy.port}/postgres")
        traffic, pid, labels = self.set_up_traffic(writer=True)
        self.backend_outage(labels, traffic, proxy.stall, proxy.resume, "the proxy to PostgreSQL stalled", pid=pid)


@unittest.skipUnless(tf.HAVE_REDIS, "redis-server not installed (scripts/setup.sh installs it)")
class TesseraKill9(LoadFaultCase):
    strategy = "cached"

    def test_e_tessera_kill9_and_restart(self):
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.start()
        self.backends.append(redis)
        srv = self.start_server(extra_args=["--redis", redis.url])
        traffic, pid, labels = self.set_up_traffic(writer=True)
        load = self.start_load()
        traffic.start()
        begin = time.monotonic()
        traffic.wait_samples(labels, begin)
        dead_from = time.monotonic()
        srv.kill9()
        srv.problems.clear()  # the kill is the test, not an unclean exit
        srv.start()  # same port, same database and Redis
        back = time.monotonic()
        b = Browser(srv.port)
        # the first request after the restart, with a session made before it died (the logged-out one stays
        # 401: checked over the replies below)
        self.assertStatus(b.get("/api/auth/session", cookies=self.alice_cookie), 200, "a session made before")
        self.recovery_took = time.monotonic() - back
        traffic.wait_samples(labels, back)
        load.wait_clean(back, "the restart")
        counters = load.stop()
        traffic.stop()
        self.check_acked(traffic, pid)
        replies = self.finish(traffic)
        # what ran while no server was there fails to connect: that is not a reply
        self.check_load(counters, replies, "tessera killed, restarted")
        replies = [r for r in replies if r.t1 < dead_from or r.t0 > back]
        self.check_all(replies)
        self.check_window(replies, labels, begin, dead_from, tf.OK + (201,), "before the kill")
        self.check_window(replies, labels, back, float("inf"), tf.OK + (201,), "after the restart")
        self.check_window(replies, ["lou-logged-out"], back, float("inf"), (401,), "the logged-out session")


class DiskFull(LoadFaultCase):
    strategy = "db"
    DISK_MB = 16

    def mount_disk(self):
        d = tempfile.mkdtemp(prefix="tessera-disk-")
        self.addCleanup(shutil.rmtree, d, True)
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.DISK_MB}m,mode=0755", "tmpfs", d],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", d], capture_output=True)
        return d

    def test_f_sqlite_disk_full(self):
        disk = self.mount_disk()
        self.start_server(database=f"sqlite:{os.path.join(disk, 'tessera.db')}")
        traffic, pid, labels = self.set_up_traffic(writer=True)
        load = self.start_load()
        traffic.start()
        begin = time.monotonic()
        traffic.wait_samples(labels, begin)
        full_from = time.monotonic()
        filler = os.path.join(disk, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)  # unbuffered: nothing left to flush at close
        try:
            chunk = b"\0" * 65536
            while True:
                os.write(fd, chunk)
        except OSError as exc:
            self.assertEqual(exc.errno, errno.ENOSPC)
        finally:
            os.close(fd)
        # the WAL may still have room for a while: wait for a write that was refused
        wait_until(lambda: any(r.label == "writer" and r.status == 503 and r.t0 >= full_from
                               for r in traffic.snapshot()), 30, "a message refused for want of room")
        refused = time.monotonic()
        traffic.wait_samples(labels, refused)  # reads go on meanwhile (checked below)
        os.unlink(filler)
        freed = time.monotonic()
        b = Browser(self.server.port)
        self.first_success(freed, "the disk had room again", probe=lambda: b.post(
            f"/api/prechats/{pid}/messages", {"body": "after the disk was full"}, cookies=self.alice_cookie,
            timeout=2 * tf.SLOWEST_REPLY).status == 201)
        traffic.wait_samples(labels, freed + RECOVERY)
        load.wait_clean(freed + RECOVERY, "the disk had room")
        counters = load.stop()
        traffic.stop()
        self.check_acked(traffic, pid)
        replies = self.finish(traffic)
        self.check_load(counters, replies, "the disk was full")
        self.check_all(replies)
        self.check_window(replies, labels, begin, full_from, tf.OK + (201,), "before the disk was full")
        self.check_window(replies, ["writer"], refused, freed, (201, 503), "while the disk was full")
        self.check_window(replies, [lb for lb in labels if lb != "writer"], refused, freed, tf.OK,
                          "reads while the disk was full")
        self.check_window(replies, labels, freed + RECOVERY, float("inf"), tf.OK + (201,),
                          f"{RECOVERY}s after the disk had room")

    FSIZE_LIMIT = 1 << 20  # the database's WAL passes 1 MiB after a few dozen messages

    def test_g_sqlite_file_size_limit(self):
        """The same with a file-size limit (RLIMIT_FSIZE, `ulimit -f`; no root needed): a write past it must be
        refused with 503, not kill the server with SIGXFSZ. The limit stays, so writes stay refused."""
        env = {"BACKEND_TIMEOUT_MS": str(tf.BACKEND_TIMEOUT_MS)}
        srv = self.track(TesseraServer(strategy=self.strategy, env=env))
        real, wrapper = srv.bin, os.path.join(srv.tmpdir, "tessera-fsize")
        with open(wrapper, "w") as f:
            # Python starts with SIGXFSZ ignored, and an ignored signal stays so across exec: put back the
            # default (death) that a shell's `ulimit -f` or a service manager's limit leaves a server with
            f.write(f"#!{sys.executable}\nimport os, resource, signal, sys\n"
                    f"signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
                    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({self.FSIZE_LIMIT}, {self.FSIZE_LIMIT}))\n"
                    f"os.execv({real!r}, [{real!r}] + sys.argv[1:])\n")
        os.chmod(wrapper, 0o755)
        srv.bin = wrapper
        for name, (role, password) in tf.USERS.items():
            srv.add_user(name, role, password)
        self.server = srv.start()
        traffic, pid, labels = self.set_up_traffic(writer=True)
        load = self.start_load()
        traffic.start()
        begin = time.monotonic()
        wait_until(lambda: not srv.alive() or any(r.label == "writer" and r.status == 503
                                                  for r in traffic.snapshot()), 60,
                   "a message refused at the file-size limit")
        self.assertTrue(srv.alive(), f"tessera serve died at the file-size limit (exit {srv.proc.returncode})")
        refused = time.monotonic()
        traffic.wait_samples(labels, refused)
        counters = load.stop()
        traffic.stop()
        self.assertTrue(srv.alive(), f"tessera serve died at the file-size limit (exit {srv.proc.returncode})")
        self.check_acked(traffic, pid)
        replies = self.finish(traffic)
        self.check_load(counters, replies, "a file-size limit was reached")
        self.check_all(replies)
        self.check_window(replies, ["writer"], begin, float("inf"), (201, 503), "writes")
        self.check_window(replies, [lb for lb in labels if lb != "writer"], begin, float("inf"), tf.OK, "reads")


def write_report(path):
    """The rows of the tests that finished (a failed check still leaves its row: the failure is in the log)."""
    with open(path, "w") as f:
        f.write("| test | strategy | fault | recorded replies (by status) | slowest | first success after | "
                "soak_load requests | its 503 | other 5xx | 200 after logout | refused/reset | hung 10 s |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for name, strategy, fault, n, by, slowest, rec, c in REPORT:
            f.write(f"| {name} | {strategy} | {fault} | {n} ({by}) | {slowest:.3f} s | "
                    f"{'-' if rec is None else f'{rec:.3f} s'} | {c['requests']} | {c['status_503']} | "
                    f"{c['status_5xx_other']} | {c['err_loggedout_200']} | {c['err_io']} | {c['err_timeout']} |\n")


if __name__ == "__main__":
    try:
        main()
    finally:
        if os.environ.get("TESS_FAULTS_REPORT"):
            write_report(os.environ["TESS_FAULTS_REPORT"])
        if "dir" in _BUILT:
            shutil.rmtree(_BUILT["dir"], ignore_errors=True)

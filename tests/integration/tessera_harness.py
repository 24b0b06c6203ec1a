"""Test harness for tessera's integration tests (Python standard library only).

- TesseraServer: runs `tessera serve` on a free port with its own temp dir and SQLite database, creates users
  through the CLI, waits for /healthz, stops it (SIGTERM, then SIGKILL after a deadline) and keeps its stderr in
  a file that is printed when a test fails.
- Browser: an HTTP client with its own cookie jar (one per simulated browser/user).
- RedisServer / PostgresServer: throwaway redis-server and PostgreSQL clusters on their own ports in temp dirs.

Nothing here sleeps blindly: every wait polls a condition against a deadline (see wait_until).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

START_TIMEOUT = float(os.environ.get("TESS_START_TIMEOUT", "30"))  # ASan builds start slower
STOP_TIMEOUT = float(os.environ.get("TESS_STOP_TIMEOUT", "10"))  # SIGTERM to exit; raise it under valgrind
HTTP_TIMEOUT = float(os.environ.get("TESS_HTTP_TIMEOUT", "15"))  # a request taking longer is a hang
DEFAULT_SECRET = "integration-secret-1,integration-secret-0"

# The abuse limits (tessera serve --help, "abuse limits") are set far above what any test does from its one
# address (127.0.0.1): tests log in often, some with wrong passwords on purpose, and open many pre-chats as one
# visitor. A test of the limits themselves passes limits= (flags; None keeps the server's own default).
RELAXED_LIMITS = {
    "login-max-failures": 1000000,
    "login-address-max-failures": 1000000,
    "login-queue-per-address": 65536,
    "max-open-prechats": 100000,
    "agent-max-chats": 100000,
    "message-rate": 6000000,
    "message-burst": 100000,
}


class HarnessError(Exception):
    pass


class Fatal(HarnessError):
    """Raised by a wait_until predicate when waiting longer cannot help (the process it waits on has exited)."""


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls predicate() until it returns a truthy value (returned) or timeout seconds pass (HarnessError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Fatal:
            raise
        except Exception as exc:  # the condition may raise while the service is still starting
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise HarnessError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tessera_bin():
    path = os.environ.get("TESSERA_BIN")
    if not path:
        src = os.environ.get("TESS_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
        path = os.path.join(src, "build", "tessera")
    if not os.access(path, os.X_OK):
        raise HarnessError(f"tessera binary not found or not executable: {path} (set TESSERA_BIN)")
    return os.path.abspath(path)


def serve_wrapper(log_dir):
    """The command that `tessera serve` runs under, as a list: [] normally; with TESS_VALGRIND=1 valgrind's
    memcheck (full leak check, exit code 99 on any error; its report goes to the server's log). See
    tests/integration/README.md ("Under valgrind") for the whole-suite command and its deadlines."""
    if os.environ.get("TESS_VALGRIND", "") in ("", "0"):
        return []
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")
    return ["valgrind", "--tool=memcheck", f"--error-exitcode={VALGRIND_EXIT}", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible", "--errors-for-leak-kinds=definite,indirect,possible",
            "--track-origins=yes", "--num-callers=30", f"--suppressions={supp}", "--fair-sched=yes",
            f"--log-file={os.path.join(log_dir, 'valgrind-%p.log')}"]


VALGRIND_EXIT = 99
# memcheck's error headlines, for a log that ends without a summary (the process was SIGKILLed)
VALGRIND_ERROR = re.compile(r"^==\d+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched |"
                            r"Source and destination overlap|Process terminating|.* definitely lost)", re.M)


def _stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Sends sig, waits up to timeout, then SIGKILLs. Returns (exit code, True if it exited by itself)."""
    if proc.poll() is not None:
        return proc.returncode, True
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), True
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout), False


def _die_with_parent():
    """preexec_fn: SIGKILL the child when the test process dies (e.g. killed by a ctest timeout), so that no
    server outlives its test. Linux prctl(PR_SET_PDEATHSIG); a no-op elsewhere."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:
        pass


# --------------------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), in order, names as sent
        self.body = body  # bytes
        self._json = None

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def __repr__(self):
        body = self.body[:300]
        return f"<Response {self.status} {self.reason} {dict(self.headers)!r} {body!r}>"


def parse_set_cookie(value):
    """'n=v; HttpOnly; Max-Age=3' -> ('n', 'v', {'httponly': True, 'max-age': '3'}); attribute names lowercased."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val.strip(), attrs


class Browser:
    """An HTTP client with a cookie jar, like one browser profile. One TCP connection per request, so an error
    response that closes the connection never affects the next request."""

    def __init__(self, port, host="127.0.0.1", name="browser"):
        self.host = host
        self.port = port
        self.name = name
        self.jar = {}  # cookie name -> value
        self.last_set_cookies = []  # [(name, value, attrs)] from the last response that set any

    def request(self, method, path, body=None, headers=None, cookies=True, timeout=HTTP_TIMEOUT):
        """body: None, bytes/str (sent as is) or any other value (sent as JSON). cookies: True to send the jar,
        False to send none, or a str sent verbatim as the Cookie header."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        if cookies is True:
            if self.jar:
                hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        elif isinstance(cookies, str):
            hdrs["Cookie"] = cookies
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            resp = Response(r.status, r.reason, r.getheaders(), r.read())
        finally:
            conn.close()
        self._absorb_cookies(resp)
        return resp

    def _absorb_cookies(self, resp):
        sets = [parse_set_cookie(v) for v in resp.header_all("Set-Cookie")]
        if not sets:
            return
        self.last_set_cookies = sets
        for name, value, attrs in sets:
            max_age = attrs.get("max-age")
            cleared = (max_age is not None and max_age is not True and max_age.lstrip("-").isdigit()
                       and int(max_age) <= 0) or value == ""
            if cleared:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def login(self, username, password):
        return self.post("/api/auth/login", {"username": username, "password": password})


def raw_http(port, data, host="127.0.0.1", timeout=HTTP_TIMEOUT):
    """Sends raw bytes, returns (status or None, raw response bytes). Reads until the server closes or the
    first full response (by Content-Length) arrives."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise HarnessError(f"no complete response within {timeout}s to {data[:80]!r}")
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return (int(m.group(1)) if m else None), buf


def send_large_body(port, method, path, body, headers=None, host="127.0.0.1", timeout=HTTP_TIMEOUT):
    """Sends a large body in chunks and stops as soon as the server answers early (a server may send 413 and
    close before reading the body; http.client would only see EPIPE). Returns a Response, or None when the
    server closed the connection without answering."""
    import select
    hdrs = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body)),
            "Connection": "close"}
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    buf = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head.encode())
        view, off = memoryview(body), 0
        try:
            while off < len(body):
                r, w, _ = select.select([s], [s], [], max(0.0, deadline - time.monotonic()))
                if r:
                    break  # an early answer
                if not w:
                    raise HarnessError(f"server stopped reading the body at {off} of {len(body)} bytes")
                off += s.send(view[off:off + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                head_b, sep, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head_b)
                if sep and m and len(rest) >= int(m.group(1)):
                    break
        except ConnectionResetError:
            pass
    head_b, sep, rest = buf.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ?([^\r\n]*)", head_b)
    if not m:
        return None
    headers_out = []
    for line in head_b.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers_out.append((k.strip(), v.strip()))
    return Response(int(m.group(1)), m.group(2).decode("latin-1"), headers_out, rest)


def parse_metrics(text):
    """Prometheus text -> {metric name: sum over all label sets}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


# --------------------------------------------------------------------------------------------------------
# cookie / token forgery helpers (the algorithms tessera must be compatible with)


def sign_express_cookie(sid, secret):
    """express-session / cookie-signature: 's:' + sid + '.' + base64(HMAC-SHA256(secret, sid)) without '=',
    URL-encoded as the cookie value."""
    mac = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    sig = base64.b64encode(mac).decode().rstrip("=")
    return urllib.parse.quote(f"s:{sid}.{sig}", safe="")


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt(claims, secret=None, header=None):
    """HS256 JWT as jsonwebtoken makes it; header overrides (e.g. {'alg': 'none'}) and secret=None leave the
    signature empty."""
    hdr = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = (b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = ""
    if secret is not None:
        sig = b64url(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())
    return signing_input + "." + sig


# --------------------------------------------------------------------------------------------------------
# tessera serve


class TesseraServer:
    """One `tessera serve` process with its own temp dir and SQLite database (unless database= is given)."""

    def __init__(self, strategy="db", secret=DEFAULT_SECRET, env=None, threads=2, database=None, tmpdir=None,
                 extra_args=(), limits=None):
        self.bin = tessera_bin()
        self._own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix=f"tessera-{strategy}-")
        self.database = database or f"sqlite:{os.path.join(self.tmpdir, 'tessera.db')}"
        self.strategy = strategy
        self.threads = threads
        self.extra_args = list(extra_args)
        # limits: {flag name: value} over RELAXED_LIMITS; a value of None leaves that limit at its default.
        self.limits = dict(RELAXED_LIMITS, **(limits or {}))
        self.env = dict(os.environ)
        for k in ("SESSION_SECRET", "NEXTAUTH_SECRET", "AUTH_SECRET", "SESSION_FORMAT", "SESSION_TTL", "SESSION_COOKIE",
                  "TESSERA_ENV",
                  "TESSERA_LISTEN", "DATABASE_URL", "SESSION_STRATEGY"):
            self.env.pop(k, None)
        if secret is not None:
            self.env["SESSION_SECRET"] = secret
        self.env.update(env or {})
        self.port = None
        self.proc = None
        self.starts = 0
        self.log_paths = []
        self.problems = []  # unclean exits and sanitizer reports, raised by finish()
        self.problems_checked = False
        self._saved_log = None

    # -- CLI
    def run_cli(self, *args, input=None, timeout=60):
        return subprocess.run([self.bin, *args], input=input, capture_output=True, env=self.env, timeout=timeout,
                              cwd=self.tmpdir)

    def add_user(self, name, role, password):
        """`tessera user add`; password on stdin without a trailing newline. Raises on failure."""
        r = self.run_cli("user", "add", name, "--role", role, "--password-stdin", "--database", self.database,
                         input=password.encode())
        if r.returncode != 0:
            raise HarnessError(f"user add {name} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r

    # -- process
    @property
    def cookie_name(self):
        return self.env.get("SESSION_COOKIE") or ("session-token" if self.strategy == "jwt" else "connect.sid")

    def start(self, port=None):
        """Starts the server and waits for /healthz. Keeps the previous port on a restart; when the port was
        picked here and turns out to be taken meanwhile (parallel tests), retries on another one."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("server already running")
        picked = not (port or self.port)
        self.port = port or self.port or free_port()
        for attempt in range(3):
            try:
                return self._start_once()
            except HarnessError:
                last_log = self.log_text(all_runs=False).lower()
                if not (picked and attempt < 2 and self.proc.poll() is not None and "in use" in last_log):
                    raise
                self.port = free_port()

    def _start_once(self):
        self.starts += 1
        log_path = os.path.join(self.tmpdir, f"server-{self.starts}.log")
        self.log_paths.append(log_path)
        cmd = [*serve_wrapper(self.tmpdir), self.bin, "serve", "--listen", f"127.0.0.1:{self.port}", "--database",
               self.database, "--strategy", self.strategy, "--threads", str(self.threads),
               *[a for k, v in self.limits.items() if v is not None for a in (f"--{k}", str(v))], *self.extra_args]
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=self.tmpdir, preexec_fn=_die_with_parent)

        def healthy():
            if self.proc.poll() is not None:
                raise Fatal(f"tessera serve exited with {self.proc.returncode} while starting")
            try:
                return Browser(self.port).get("/healthz", timeout=2).status == 200
            except (OSError, http.client.HTTPException):
                return False

        try:
            wait_until(healthy, START_TIMEOUT, f"tessera serve /healthz on port {self.port}")
        except HarnessError as exc:
            if self.proc.poll() is None:
                _stop_process(self.proc, signal.SIGKILL)
            raise HarnessError(f"{exc}\n--- server log ---\n{self.log_text()}") from None
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; SIGKILL after timeout. Returns (exit code, exited by itself). A server that needs the
        SIGKILL or exits non-zero (e.g. LeakSanitizer at exit) is recorded in self.problems (see finish)."""
        if self.proc is None:
            return None, True
        if self.proc.poll() is not None:
            return self.proc.returncode, True
        rc, exited = _stop_process(self.proc, signal.SIGTERM, timeout)
        if not exited:
            self.problems.append(f"run {self.starts}: still running {timeout:.0f}s after SIGTERM (killed)")
        elif rc != 0:
            self.problems.append(f"run {self.starts}: exit code {rc} after SIGTERM")
        return rc, exited

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        return self.proc.returncode if self.proc else None

    # ThreadSanitizer reports races, lock misuse and signal-unsafe calls as "WARNING: ThreadSanitizer: ..."
    # (and dies with "FATAL: ThreadSanitizer: ..."): under TSan either fails the test, as an ASan error does.
    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "SUMMARY: AddressSanitizer",
                       "SUMMARY: UndefinedBehaviorSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                       "FATAL: ThreadSanitizer")

    def sanitizer_report(self):
        """The first sanitizer or valgrind report found in the server's logs (all runs), or ''."""
        for p in self.log_paths + self.valgrind_logs():
            if p.endswith(".log") and "valgrind-" in os.path.basename(p):
                report = self._valgrind_report(p)
                if report:
                    return report
                continue
            try:
                with open(p, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            hits = [text.find(m) for m in self.SANITIZER_MARKS if m in text]
            if hits:
                start = text.rfind("\n", 0, min(hits)) + 1
                return f"[{os.path.basename(p)}]\n{text[start:start + 6000]}"
        return ""

    def valgrind_logs(self):
        """valgrind's per-process logs in the temp dir (TESS_VALGRIND runs only)."""
        try:
            names = sorted(n for n in os.listdir(self.tmpdir) if n.startswith("valgrind-") and n.endswith(".log"))
        except OSError:
            return []
        return [os.path.join(self.tmpdir, n) for n in names]

    @staticmethod
    def _valgrind_report(path):
        """The log's text when valgrind counted errors (ERROR SUMMARY: N > 0, or no summary: it died), else ''."""
        try:
            with open(path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        m = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
        if m and all(int(n) == 0 for n in m):
            return ""
        if not m and not VALGRIND_ERROR.search(text):
            return ""  # SIGKILLed (kill9): no summary, and nothing reported before it
        return f"[{os.path.basename(path)}]\n{text[-12000:]}"

    def cleanup(self):
        """Stops the server if it runs and removes the temp dir. Never raises (see finish)."""
        if self.alive():
            self.stop()
        if not self.problems_checked:
            report = self.sanitizer_report()
            if report:
                self.problems.append(f"sanitizer report in the server log:\n{report}")
            self.problems_checked = True
        if self._own_tmp and not os.environ.get("TESS_KEEP_TMP"):
            self._saved_log = self.log_text()  # printed if the test fails, after the temp dir is gone
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def finish(self):
        """cleanup(), then HarnessError if the server did not stop cleanly on SIGTERM (exit 0 within the
        deadline) or a sanitizer reported anything: this is how the ASan run catches leaks and UB."""
        self.cleanup()
        if self.problems:
            raise HarnessError(f"tessera serve ({self.strategy}, port {self.port}): " + "\n".join(self.problems))

    def log_text(self, all_runs=True):
        if self._saved_log is not None and not os.path.isdir(self.tmpdir):
            return self._saved_log
        out = []
        for p in (self.log_paths if all_runs else self.log_paths[-1:]):
            try:
                with open(p, "rb") as f:
                    out.append(f"[{os.path.basename(p)}]\n" + f.read()[-20000:].decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    # -- HTTP
    def browser(self, name="browser"):
        return Browser(self.port, name=name)

    def metrics(self):
        r = Browser(self.port).get("/metrics", cookies=False)
        if r.status != 200:
            raise HarnessError(f"/metrics answered {r.status}: {r.body[:200]!r}")
        return parse_metrics(r.body.decode())


class ServerTestCase(unittest.TestCase):
    """Base class: tests register their servers with self.track(server) (or cls.track_class); when a test
    fails, the servers' logs are printed to stderr."""

    _class_servers = []

    @classmethod
    def track_class(cls, server):
        if "_class_servers" not in cls.__dict__:
            cls._class_servers = []
        cls._class_servers.append(server)
        return server

    def track(self, server):
        """Registers a server for this test: its log is printed if the test fails, and finish() runs at the end
        (a server that does not exit cleanly on SIGTERM or logs a sanitizer report fails the test)."""
        self.__dict__.setdefault("_servers", []).append(server)
        self.addCleanup(server.finish)
        return server

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for srv in list(type(self).__dict__.get("_class_servers", [])) + self.__dict__.get("_servers", []):
                sys.stderr.write(f"\n===== log of tessera serve ({srv.strategy}, port {srv.port}) for "
                                 f"{self.id()} =====\n{srv.log_text()}\n===== end of log =====\n")
        return out

    # -- assertions shared by the suites
    def assertJsonError(self, resp, status=None, msg=None):
        """A JSON error: 4xx (or the given status/statuses), application/json, {"error": non-empty str, ...}."""
        ctx = f"{msg + ': ' if msg else ''}{resp!r}"
        if status is None:
            self.assertTrue(400 <= resp.status < 500, f"expected a 4xx, got {ctx}")
        elif isinstance(status, (tuple, list, set)):
            self.assertIn(resp.status, status, ctx)
        else:
            self.assertEqual(resp.status, status, ctx)
        ctype = resp.header("Content-Type", "")
        self.assertTrue(ctype.split(";")[0].strip().lower() == "application/json", f"Content-Type: {ctx}")
        try:
            doc = resp.json()
        except ValueError:
            self.fail(f"error body is not JSON: {ctx}")
        self.assertIsInstance(doc, dict, ctx)
        self.assertIsInstance(doc.get("error"), str, ctx)
        self.assertTrue(doc["error"], f"empty error code: {ctx}")
        self.assertIsInstance(doc.get("message"), str, ctx)
        return doc

    def assertStatus(self, resp, status, msg=None):
        ctx = f"{msg + ': ' if msg else ''}{resp!r}"
        if isinstance(status, (tuple, list, set)):
            self.assertIn(resp.status, status, ctx)
        else:
            self.assertEqual(resp.status, status, ctx)
        return resp


# --------------------------------------------------------------------------------------------------------
# Redis and PostgreSQL (for the store issue)


def _resp_encode(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line!r}")


class RedisError(Exception):
    pass


class RedisClient:
    """A minimal blocking RESP2 client for tests: RedisClient(port).command('GET', 'k')."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = _RespReader(self.sock)

    def command(self, *args):
        self.sock.sendall(_resp_encode(*args))
        return self.reader.read()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Service:
    """What RedisServer and PostgresServer share: a process on `port` with a temp dir and a log file.
    Subclasses set STOP_SIGNAL and NAME."""

    STOP_SIGNAL = signal.SIGTERM
    NAME = "service"

    def stop(self, timeout=STOP_TIMEOUT):
        """STOP_SIGNAL, SIGKILL after timeout; waits for the port to close."""
        if self.proc is None:
            return None
        rc, _ = _stop_process(self.proc, self.STOP_SIGNAL, timeout)
        wait_until(lambda: not port_open(self.port), timeout, f"{self.NAME} port {self.port} to close")
        return rc

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        if self._own_tmp and not os.environ.get("TESS_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-10000:].decode(errors="replace")
        except OSError:
            return ""


class RedisServer(_Service):
    """redis-server on its own port in a temp dir, no persistence. start() waits for PING."""

    NAME = "redis"

    def __init__(self, tmpdir=None, port=None, extra_args=(), password=None):
        self._own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="tessera-redis-")
        self.port = port
        self.password = password  # requirepass (kept across restarts); client() authenticates with it
        self.extra_args = list(extra_args) + (["--requirepass", password] if password else [])
        self.proc = None
        self.log_path = os.path.join(self.tmpdir, "redis.log")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout=START_TIMEOUT):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = self.port or free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.tmpdir, "--daemonize", "no", *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

        def pong():
            if self.proc.poll() is not None:
                raise HarnessError(f"redis-server exited with {self.proc.returncode}:\n{self.log_text()}")
            with RedisClient(self.port, timeout=1) as c:
                if self.password:
                    c.command("AUTH", self.password)
                return c.command("PING") == "PONG"

        wait_until(pong, timeout, f"redis-server PING on port {self.port}")
        return self

    def client(self):
        c = RedisClient(self.port)
        if self.password:
            c.command("AUTH", self.password)
        return c



class PostgresServer(_Service):
    """A throwaway PostgreSQL 15 cluster: initdb into a temp dir, postgres on its own port, socket in the temp
    dir, trust auth, fsync off. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user
    (like `runuser -u postgres --`) and the temp dir is handed to that user."""

    STOP_SIGNAL = signal.SIGINT  # fast shutdown
    NAME = "postgres"

    PG_BIN = os.environ.get("TESS_PG_BIN", "/usr/lib/postgresql/15/bin")

    def __init__(self, tmpdir=None, port=None, user="postgres", extra_args=()):
        self._own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="tessera-pg-")
        self.extra_args = list(extra_args)  # after the defaults: "-c", "synchronous_commit=on" overrides
        self.port = port
        self.datadir = os.path.join(self.tmpdir, "pg")
        self.sockdir = os.path.join(self.tmpdir, "sock")
        self.log_path = os.path.join(self.tmpdir, "postgres.log")
        self.proc = None
        self.db_user = user
        self.as_root = os.geteuid() == 0
        self._initialized = False

    def _popen_kw(self):
        if not self.as_root:
            return {}
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    @property
    def url(self):
        return f"postgres://{self.db_user}@127.0.0.1:{self.port}/postgres"

    def initdb(self):
        os.makedirs(self.sockdir, exist_ok=True)
        if self.as_root:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chmod(self.tmpdir, 0o755)  # mkdtemp makes it 0700: postgres must be able to enter it
            os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
            # the log file is opened by us, written through the inherited fd: no chown needed
        r = subprocess.run([os.path.join(self.PG_BIN, "initdb"), "-D", self.datadir, "-U", self.db_user,
                            "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                           capture_output=True, cwd=self.tmpdir, env=self._env(), timeout=120, **self._popen_kw())
        if r.returncode != 0:
            raise HarnessError(f"initdb failed ({r.returncode}): {r.stdout.decode()}{r.stderr.decode()}")
        self._initialized = True

    def _env(self):
        env = dict(os.environ)
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
            env.pop(k, None)
        env["LC_ALL"] = "C"
        return env

    def start(self, timeout=START_TIMEOUT):
        if not self._initialized:
            self.initdb()
        self.port = self.port or free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.PG_BIN, "postgres"), "-D", self.datadir, "-p", str(self.port), "-k",
                 self.sockdir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                 "synchronous_commit=off", "-c", "full_page_writes=off", *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir, env=self._env(),
                **self._popen_kw())

        def ready():
            if self.proc.poll() is not None:
                raise Fatal(f"postgres exited with {self.proc.returncode}:\n{self.log_text()}")
            r = subprocess.run([os.path.join(self.PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                "-U", self.db_user, "-d", "postgres", "-t", "1"], capture_output=True, timeout=10)
            return r.returncode == 0

        wait_until(ready, timeout, f"pg_isready on port {self.port}")
        return self

    def psql(self, sql, db="postgres"):
        """Runs sql with psql over TCP; returns stdout (unaligned, tuples only). Raises on error."""
        exe = shutil.which("psql") or "/usr/bin/psql"
        r = subprocess.run([exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", self.db_user, "-d", db, "-c", sql],
                           capture_output=True, env=self._env(), timeout=60)
        if r.returncode != 0:
            raise HarnessError(f"psql failed ({r.returncode}): {r.stderr.decode()}")
        return r.stdout.decode()



def main():
    """unittest.main with verbose output; the exit code is non-zero on any failure."""
    unittest.main(verbosity=2, buffer=False)


# -------------------------------------------------------------------------------------------------------
# One PostgreSQL cluster per test module, started on first use; stop it in the module's tearDownModule.

_SHARED_PG = None


def shared_postgres():
    global _SHARED_PG
    if _SHARED_PG is None:
        _SHARED_PG = PostgresServer().start()
    return _SHARED_PG


def shared_postgres_if_started():
    return _SHARED_PG


def stop_shared_postgres():
    global _SHARED_PG
    if _SHARED_PG is not None:
        _SHARED_PG.cleanup()
        _SHARED_PG = None

"""
tessera behind nginx: GET /auth as nginx's auth_request, the way a deployment puts session checks in front of
other services. nginx (Debian's nginx-light, started here on its own port in a temp dir) proxies /api/ to
tessera and guards /app/ with auth_request; large_client_header_buffers 4 16k lets an 8 KB cookie through
(nginx's defaults would refuse it before tessera sees it).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import (Browser, ServerTestCase, TesseraServer, _die_with_parent, _stop_process,  # noqa: E402
                             free_port, port_open, wait_until)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    large_client_header_buffers 4 16k;
    server {{
        listen 127.0.0.1:{port};
        location = /_session {{
            internal;
            proxy_pass http://127.0.0.1:{upstream}/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location /app/ {{
            auth_request /_session;
            auth_request_set $session_user $upstream_http_x_session_user;
            auth_request_set $session_role $upstream_http_x_session_role;
            # (not `return`: it runs before the access phase and would skip auth_request)
            root {tmp}/www;
            default_type text/plain;
            add_header X-App-User $session_user;
            add_header X-App-Role $session_role;
        }}
        location /api/ {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
        }}
        # docs/push.md's block for the long-polls and the event stream, as documented
        location /api/prechats {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 75s;
        }}
    }}
}}
"""


@unittest.skipUnless(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"), "nginx is not installed")
class NginxAuthRequest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db"))
        cls.srv.add_user("nina", "visitor", "nina-pw")
        cls.srv.start()
        cls.tmp = tempfile.mkdtemp(prefix="tessera-nginx-")
        cls.port = free_port()
        os.makedirs(os.path.join(cls.tmp, "www", "app"))
        for name in ("dashboard", "x"):
            with open(os.path.join(cls.tmp, "www", "app", name), "w") as f:
                f.write("app page\n")
        # nginx's workers drop root: the pages must be readable by them.
        os.chmod(cls.tmp, 0o755)
        for d, _, files in os.walk(os.path.join(cls.tmp, "www")):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
        conf = os.path.join(cls.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=cls.tmp, port=cls.port, upstream=cls.srv.port))
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        cls.log = open(os.path.join(cls.tmp, "nginx.out"), "wb")
        cls.nginx = subprocess.Popen([exe, "-p", cls.tmp, "-c", conf], stdin=subprocess.DEVNULL, stdout=cls.log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_until(lambda: cls.nginx.poll() is None and port_open(cls.port), 10, f"nginx on port {cls.port}")

    @classmethod
    def tearDownClass(cls):
        _stop_process(cls.nginx, signal.SIGQUIT)
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.srv.finish()

    def test_auth_request_guards_the_app(self):
        b = Browser(self.port)
        r = b.get("/app/dashboard")
        self.assertStatus(r, 401, "no session")
        self.assertStatus(b.login("nina", "nina-pw"), 200)  # through nginx's /api/ proxy
        r = self.assertStatus(b.get("/app/dashboard"), 200)
        self.assertEqual((r.header("X-App-User"), r.header("X-App-Role")), ("1", "visitor"))

    def test_forged_and_garbage_cookies_are_refused(self):
        b = Browser(self.port)
        for cookie in ("connect.sid=s%3Aabc.def", "connect.sid=garbage", "connect.sid=" + "A" * 3000):
            self.assertStatus(b.get("/app/x", cookies=cookie), 401, cookie[:40])

    def test_large_cookie_header_passes_nginx(self):
        b = Browser(self.port)
        self.assertStatus(b.login("nina", "nina-pw"), 200)
        session = b.jar["connect.sid"]
        big = "; ".join(f"pad{i}={'x' * 1000}" for i in range(8))  # ≈8 KB of other cookies
        r = self.assertStatus(b.get("/app/x", cookies=f"{big}; connect.sid={session}"), 200)
        self.assertEqual(r.header("X-App-User"), "1")

    def test_logout_through_nginx_ends_access(self):
        b = Browser(self.port)
        self.assertStatus(b.login("nina", "nina-pw"), 200)
        cookie = f"connect.sid={b.jar['connect.sid']}"
        self.assertStatus(b.get("/app/x", cookies=cookie), 200)
        self.assertStatus(b.post("/api/auth/logout", cookies=cookie), 204)
        self.assertStatus(b.get("/app/x", cookies=cookie), 401)


    def test_browser_posts_through_nginx_pass_the_origin_check(self):
        """nginx forwards the browser's Host ($http_host, port included): a page of the site nginx serves may
        post, another site's page may not."""
        b = Browser(self.port)
        own = {"Origin": f"http://127.0.0.1:{self.port}"}
        self.assertStatus(b.request("POST", "/api/auth/login", body={"username": "nina", "password": "nina-pw"},
                                    headers=own), 200)
        pid = self.assertStatus(b.request("POST", "/api/prechats", body={"topic": "t"}, headers=own), 201).json()["id"]
        for origin in (f"http://127.0.0.1:{self.srv.port}", "https://evil.example"):  # tessera's own port is not it
            with self.subTest(origin):
                self.assertJsonError(b.request("POST", f"/api/prechats/{pid}/messages", body={"body": "x"},
                                               headers={"Origin": origin}), 403)
                self.assertJsonError(b.request("POST", "/api/auth/logout", headers={"Origin": origin}), 403)
        self.assertStatus(b.request("POST", f"/api/prechats/{pid}/messages", body={"body": "x"}, headers=own), 201)
        self.assertStatus(b.request("POST", "/api/auth/logout", headers=own), 204)
        self.assertStatus(b.get("/app/x"), 401)

    def test_event_stream_through_nginx_is_not_buffered(self):
        """docs/push.md's location block: events pass nginx as they happen (X-Accel-Buffering: no)."""
        b = Browser(self.port)
        self.assertStatus(b.login("nina", "nina-pw"), 200)
        pid = self.assertStatus(b.post("/api/prechats", {"topic": "through nginx"}), 201).json()["id"]
        cookie = f"connect.sid={b.jar['connect.sid']}"
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            sock.sendall(f"GET /api/prechats/{pid}/events HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
            seen = b""

            def read_until(marker, deadline):
                nonlocal seen
                while marker not in seen:
                    if time.monotonic() > deadline:
                        self.fail(f"{marker!r} not through nginx in time; got {seen[-300:]!r}")
                    sock.settimeout(max(0.05, deadline - time.monotonic()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        self.fail(f"stream closed early: {seen[-300:]!r}")
                    seen += chunk

            read_until(b"event: meta", time.monotonic() + 5)
            self.assertIn(b"text/event-stream", seen.split(b"\r\n\r\n")[0].lower())
            posted = time.monotonic()
            self.assertStatus(b.post(f"/api/prechats/{pid}/messages", {"body": "through nginx"}), 201)
            read_until(b"event: message", posted + 1.0)  # buffered, it would wait for more bytes or the end
            self.assertIn(b"through nginx", seen)
        finally:
            sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

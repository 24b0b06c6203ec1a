"""docs/nextjs.md's recipe, run as written: its nginx server block (read from the doc, only the addresses moved to
free ports), tessera configured as the doc says, and a stand-in for the Next.js app
(tests/interop/nextjs_standin.mjs) that signs users in with the real next-auth package.

For both of the doc's modes -- JWT sessions (strategy jwt) and database sessions (Prisma's tables on PostgreSQL,
strategy cached) -- through nginx:
- the app's sign-in sets NextAuth's cookie; NextAuth's own /api/auth/session still reaches the app;
- the pre-chat API reaches tessera with that session: a visitor opens a pre-chat (201), an agent sees and joins it;
- /dashboard passes auth_request with the user and role handed to the app; without a session it redirects to
  the sign-in page;
- after the app's sign-out the browser's next request is refused; in database mode the old token replayed is
  refused too (the app deleted its row, a trigger told tessera).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop_express as tie  # noqa: E402  (npm ci of tests/interop, PostgreSQL)
from tessera_harness import (START_TIMEOUT, Browser, HarnessError, ServerTestCase, TesseraServer,  # noqa: E402
                             _die_with_parent, _stop_process, free_port, main, port_open, wait_until)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOC = os.path.join(ROOT, "docs", "nextjs.md")
STANDIN = os.path.join(ROOT, "tests", "interop", "nextjs_standin.mjs")
PRISMA_PG = os.path.join(ROOT, "tests", "interop", "prisma", "postgresql.sql")
SECRET = "nextjs-recipe-secret-0123456789abcdef0123"
COOKIE = "next-auth.session-token"
HAVE_NGINX = bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))


def setUpModule():
    tie.setUpModule()


def tearDownModule():
    tie.tearDownModule()


def doc_server_block():
    """The nginx block that follows the doc's "tested" marker."""
    with open(DOC) as f:
        text = f.read()
    m = re.search(r"<!-- tested: tests/integration/test_nextjs_recipe.py -->\s*```nginx\n(.*?)```", text, re.S)
    if m is None:
        raise AssertionError("docs/nextjs.md lost its tested nginx block")
    return m.group(1)


class _Recipe:
    mode = None

    @classmethod
    def tessera(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not HAVE_NGINX:
            raise unittest.SkipTest("nginx is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="tessera-nextjs-")
        os.chmod(cls.tmp, 0o755)
        cls.srv = cls.track_class(cls.tessera())
        cls.srv.add_user("ada", "agent", "ada-pw")
        cls.srv.start()
        # the app
        env = tie._node_env()
        env.update({"PORT": str(free_port()), "NEXTAUTH_SECRET": SECRET, "MODE": cls.mode,
                    "DATABASE_URL": getattr(cls, "database_url", "")})
        cls.app_port = int(env["PORT"])
        cls.app_log = open(os.path.join(cls.tmp, "app.log"), "wb")
        cls.app = subprocess.Popen([shutil.which("node"), STANDIN], cwd=os.path.dirname(STANDIN), env=env,
                                   stdin=subprocess.DEVNULL, stdout=cls.app_log, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent)
        wait_until(lambda: cls.app.poll() is None and port_open(cls.app_port), START_TIMEOUT, "the stand-in app")
        # nginx, with the doc's server block
        cls.port = free_port()
        block = (doc_server_block().replace("127.0.0.1:8080", f"127.0.0.1:{cls.srv.port}")
                 .replace("127.0.0.1:3000", f"127.0.0.1:{cls.app_port}")
                 .replace("listen 80;", f"listen 127.0.0.1:{cls.port};"))
        conf = os.path.join(cls.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {cls.tmp}/nginx.pid;
error_log {cls.tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {cls.tmp}/body;
    proxy_temp_path {cls.tmp}/proxy;
    fastcgi_temp_path {cls.tmp}/fastcgi;
    uwsgi_temp_path {cls.tmp}/uwsgi;
    scgi_temp_path {cls.tmp}/scgi;
{block}
}}
""")
        cls.nginx_log = open(os.path.join(cls.tmp, "nginx.out"), "wb")
        cls.nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", cls.tmp, "-c", conf],
                                     stdin=subprocess.DEVNULL, stdout=cls.nginx_log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        wait_until(lambda: cls.nginx.poll() is None and port_open(cls.port), 10, f"nginx on port {cls.port}")

    @classmethod
    def tearDownClass(cls):
        for p, sig in ((getattr(cls, "nginx", None), signal.SIGQUIT), (getattr(cls, "app", None), signal.SIGTERM)):
            if p is not None:
                _stop_process(p, sig)
        super().tearDownClass()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def browser(self):
        return Browser(self.port)

    def sign_in(self, user_id, role):
        b = self.browser()
        r = b.post("/api/auth/test-signin", {"userId": user_id, "role": role})
        if r.status != 200:
            raise HarnessError(f"sign-in through the app failed: {r!r}")
        self.assertIn(COOKIE, b.jar)
        return b

    def test_the_apps_own_routes_stay_the_apps(self):
        b = self.sign_in("clxvisitor1", "visitor")
        r = b.get("/api/auth/session")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"servedBy": "next"})

    def test_prechat_api_through_nginx(self):
        v = self.sign_in("clxvisitor2", "visitor")
        a = self.sign_in("clxagent2", "agent")
        origin = {"Origin": f"http://127.0.0.1:{self.port}"}
        r = v.post("/api/prechats", {"topic": "an order"}, headers=origin)
        self.assertStatus(r, 201)
        pid = r.json()["id"]
        self.assertStatus(v.get(f"/api/prechats/{pid}/meta"), 200)
        self.assertIn(pid, [p["id"] for p in a.get("/api/prechats").json()["prechats"]])
        self.assertStatus(a.post(f"/api/prechats/{pid}/join", headers=origin), 200)
        self.assertStatus(a.post(f"/api/prechats/{pid}/messages", {"body": "hello from the agent"}, headers=origin),
                          201)
        msgs = v.get(f"/api/prechats/{pid}/messages").json()["messages"]
        self.assertEqual([m["body"] for m in msgs], ["hello from the agent"])
        # another site's page cannot use the visitor's session
        self.assertStatus(v.post("/api/prechats", {"topic": "x"}, headers={"Origin": "https://evil.example"}), 403)

    def test_dashboard_behind_auth_request(self):
        b = self.sign_in("clxagent3", "agent")
        r = b.get("/dashboard")
        self.assertStatus(r, 200)
        self.assertEqual(r.body.decode(), "dashboard of clxagent3 (agent)")
        r = self.browser().get("/dashboard")
        self.assertEqual(r.status, 302, r)
        self.assertTrue(r.header("Location", "").endswith("/api/auth/signin"), r)
        r = self.browser().get("/dashboard", cookies=f"{COOKIE}=forged.garbage.value")
        self.assertEqual(r.status, 302, r)

    def test_sign_out_by_the_app(self):
        b = self.sign_in("clxvisitor4", "visitor")
        token = b.jar[COOKIE]
        self.assertStatus(b.get("/dashboard"), 200)
        self.assertStatus(b.post("/api/auth/signout"), 200)
        self.assertNotIn(COOKIE, b.jar)
        self.assertEqual(b.get("/dashboard").status, 302)
        self.assertStatus(b.get("/api/prechats"), 401)
        if self.mode == "database":
            # the token replayed: its row is gone, and every tessera instance knows within a second
            wait_until(lambda: self.browser().get("/api/prechats", cookies=f"{COOKIE}={token}").status == 401, 1.05,
                       "the deleted session refused")


class JwtSessions(_Recipe, ServerTestCase):
    mode = "jwt"

    @classmethod
    def tessera(cls):
        return TesseraServer(strategy="jwt", secret=SECRET, env={"SESSION_FORMAT": "nextauth"})


class DatabaseSessions(_Recipe, ServerTestCase):
    mode = "database"
    DB = "nextjs_recipe"

    @classmethod
    def tessera(cls):
        if tie.PG is None:
            raise unittest.SkipTest("PostgreSQL 15 missing")
        tie.PG.psql(f"DROP DATABASE IF EXISTS {cls.DB}")
        tie.PG.psql(f"CREATE DATABASE {cls.DB}")
        with open(PRISMA_PG) as f:
            tie.PG.psql(f.read(), db=cls.DB)
        cls.database_url = f"postgres://{tie.PG.db_user}@127.0.0.1:{tie.PG.port}/{cls.DB}"
        return TesseraServer(strategy="cached", secret=SECRET, database=cls.database_url,
                             env={"SESSION_FORMAT": "nextauth", "NEXTAUTH_ROLE_COLUMN": "role"})


if __name__ == "__main__":
    main()

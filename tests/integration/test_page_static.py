"""
The page's files (web/, compiled into the binary): GET / and GET /static/<name> with their Content-Type, a
strong ETag and 304, HEAD, the security headers (a CSP without inline script or style, nosniff, no referrer,
never framed); no path outside the table is ever served (`..`, `%2e%2e`, encoded slashes, NUL, absolute
paths and forms: 404 JSON); other methods 405. The server runs from a temp dir (not the source tree): the page
needs no path to be found. The files themselves: no inline script, style or event handler; no innerHTML.
"""

import html.parser
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import Browser, ServerTestCase, TesseraServer, raw_http  # noqa: E402

SOURCE = os.environ.get("TESS_SOURCE_DIR") or os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(SOURCE, "web")
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/static/icon.svg": ("icon.svg", "image/svg+xml"),
}


def read(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


class StaticFiles(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db"))
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def get(self, path, **kw):
        return Browser(self.srv.port).get(path, cookies=False, **kw)

    def assertPageHeaders(self, r, what):
        csp = r.header("Content-Security-Policy", "")
        directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
        self.assertEqual(directives.get("default-src"), ["'self'"], f"{what}: {csp}")
        self.assertEqual(directives.get("script-src"), ["'self'"], f"{what}: {csp}")
        self.assertEqual(directives.get("style-src"), ["'self'"], f"{what}: {csp}")
        self.assertEqual(directives.get("frame-ancestors"), ["'none'"], f"{what}: {csp}")
        self.assertEqual(directives.get("object-src"), ["'none'"], f"{what}: {csp}")
        self.assertNotIn("unsafe", csp, what)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", what)
        self.assertEqual(r.header("X-Frame-Options"), "DENY", what)
        self.assertEqual(r.header("Referrer-Policy"), "no-referrer", what)
        self.assertEqual(r.header("Cache-Control"), "no-cache", what)

    def test_1_assets_types_etags_304_head(self):
        tags = set()
        for path, (name, ctype) in ASSETS.items():
            r = self.assertStatus(self.get(path), 200, path)
            self.assertEqual(r.header("Content-Type"), ctype, path)
            self.assertEqual(r.body, read(name), f"{path} serves web/{name} as it is")
            self.assertPageHeaders(r, path)
            etag = r.header("ETag")
            self.assertRegex(etag, r'^"[0-9a-f]{16}"$', path)
            tags.add(etag)
            r2 = self.assertStatus(self.get(path, headers={"If-None-Match": etag}), 304, f"{path} revalidated")
            self.assertEqual(r2.body, b"")
            self.assertEqual(r2.header("ETag"), etag)
            self.assertStatus(self.get(path, headers={"If-None-Match": f'W/{etag}, "x"'}), 304, f"{path} weak")
            self.assertStatus(self.get(path, headers={"If-None-Match": '"0000000000000000"'}), 200, f"{path} old")
            h = Browser(self.srv.port).request("HEAD", path, cookies=False)
            self.assertStatus(h, 200, f"HEAD {path}")
            self.assertEqual(h.body, b"")
            self.assertEqual(h.header("Content-Type"), ctype)
        self.assertEqual(len(tags), len(ASSETS), "each file its own tag")
        r = self.assertStatus(self.get("/?utm_source=mail"), 200, "a query string")
        self.assertEqual(r.body, read("index.html"))

    def test_2_nothing_outside_the_table(self):
        paths = [
            "/static/../../etc/passwd", "/../../../../etc/passwd", "/static/..%2f..%2fetc%2fpasswd",
            "/static/%2e%2e/%2e%2e/etc/passwd", "/static/%2E%2E/%2E%2E/etc/passwd", "/static/%252e%252e/etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd", "/static/./app.js", "/static/../static/app.js", "/static//app.js",
            "//static/app.js", "/static/app.js/", "/static/app.js%00.png", "/static/app.js%00", "/static/%2fetc%2fpasswd",
            "/static//etc/passwd", "//etc/passwd", "/static/", "/static", "/static/APP.JS", "/index.html",
            "/static/index.html", "/static/nope.js", "/web/app.js", "/static/app.js;x", "/static/app%2ejs",
            "/static/..\\..\\etc\\passwd", "/static/C:/Windows/win.ini",
        ]
        for p in paths:
            status, raw = raw_http(self.srv.port, f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head, _, body = raw.partition(b"\r\n\r\n")
            self.assertEqual(status, 404, f"{p}: {raw[:200]!r}")
            self.assertIn(b"application/json", head.lower(), p)
            self.assertRegex(body, rb'^\{"error":"not_found"', p)
            self.assertNotIn(b"root:", body, p)
            self.assertNotIn(b"content-security-policy", head.lower(), f"{p} is not the page")
        # absolute-form request targets
        for target in ("http://127.0.0.1/etc/passwd", "http://127.0.0.1/static/../../etc/passwd", "/etc/passwd"):
            status, raw = raw_http(self.srv.port,
                                   f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            self.assertIn(status, (400, 404), f"{target}: {raw[:200]!r}")
            self.assertNotIn(b"root:", raw, target)
        # a raw NUL or control byte in the target: h2o's parser refuses the request line (400), nothing served
        for target in (b"/static/app.js\x00", b"/\x00/etc/passwd", b"/static/\x7f"):
            status, raw = raw_http(self.srv.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertIn(status, (400, 404), f"{target!r}: {raw[:200]!r}")
            self.assertNotIn(b"root:", raw)
            self.assertNotIn(b"use strict", raw)

    def test_3_other_methods_405(self):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r = Browser(self.srv.port).request(method, "/static/app.js", body=b"{}" if method != "OPTIONS" else None,
                                               headers={"Content-Type": "application/json"}, cookies=False)
            self.assertJsonError(r, 405, method)
            self.assertEqual(r.header("Allow"), "GET, HEAD", method)
        r = Browser(self.srv.port).request("POST", "/", cookies=False)
        self.assertJsonError(r, 405, "POST /")

    def test_4_the_api_is_unchanged(self):
        self.assertStatus(self.get("/healthz"), 200)
        self.assertJsonError(self.get("/api/auth/session"), 401)
        self.assertJsonError(self.get("/api/nope"), 404)


class _Inline(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "style":
            self.problems.append("a <style> element")
        if tag == "script":
            self.in_script = True
            if not (a.get("src") or "").startswith("/static/"):
                self.problems.append(f"a script without a /static/ src: {attrs}")
        for k, v in attrs:
            if k == "style" or k.startswith("on"):
                self.problems.append(f"<{tag} {k}=...>")
            if k in ("src", "href") and v and re.match(r"(?i)\s*(javascript:|https?:|//)", v):
                self.problems.append(f"<{tag} {k}={v}>: another origin or a javascript: URL")

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.problems.append("an inline script")


class PageSource(unittest.TestCase):
    def test_no_inline_script_style_or_handlers(self):
        p = _Inline()
        p.feed(read("index.html").decode())
        self.assertEqual(p.problems, [])

    def test_script_writes_text_never_markup(self):
        js = read("app.js").decode()
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                    ".style."):
            self.assertNotIn(bad, js, bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)

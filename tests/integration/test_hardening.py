"""
Findings of the security review (issue "Hardening"), one test each, against a real tessera serve:
  - JSON quirks: a \\u0000 escape (cJSON would cut "pw\\u0000junk" to "pw" and log in) and repeated member
    names (cJSON keeps the first, JSON.parse the last) are refused with 400;
  - the Server header names tessera, not the h2o version.
(Production's secret length is tested in test_config.py.)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import ServerTestCase, TesseraServer  # noqa: E402


class JsonQuirksAndServerHeader(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.track_class(TesseraServer(strategy="db"))
        cls.srv.add_user("nul", "visitor", "pw")
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def post_raw(self, path, text):
        return self.srv.browser().request("POST", path, body=text.encode(),
                                          headers={"Content-Type": "application/json"})

    def test_nul_escape_is_refused(self):
        r = self.post_raw("/api/auth/login", '{"username":"nul","password":"pw\\u0000junk"}')
        self.assertJsonError(r, 400)
        r = self.post_raw("/api/auth/login", '{"username":"nul","password":"pw"}')
        self.assertStatus(r, 200)
        # An escaped backslash followed by the text "u0000" is no NUL: a wrong password, not a bad body.
        r = self.post_raw("/api/auth/login", '{"username":"nul","password":"pw\\\\u0000junk"}')
        self.assertJsonError(r, 401)

    def test_repeated_member_names_are_refused(self):
        r = self.post_raw("/api/auth/login", '{"username":"nul","password":"wrong","password":"pw"}')
        self.assertJsonError(r, 400)
        b = self.srv.browser()
        self.assertStatus(b.login("nul", "pw"), 200)
        r = b.request("POST", "/api/prechats", body=b'{"topic":"a","topic":"b"}',
                      headers={"Content-Type": "application/json"})
        self.assertJsonError(r, 400)

    def test_server_header_does_not_advertise_h2o(self):
        b = self.srv.browser()
        for path in ("/healthz", "/no-such-path"):
            r = b.get(path)
            self.assertEqual(r.header("Server"), "tessera", path)


if __name__ == "__main__":
    unittest.main(verbosity=2)

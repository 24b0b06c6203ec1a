"""
Redis URLs with credentials and a database index: AUTH (password, and ACL user + password) and SELECT are done
on every connection of tessera serve, and wrong credentials fail closed (503, never a session).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import RedisServer, ServerTestCase, TesseraServer  # noqa: E402

PASSWORD = "s3cr3t/pa ss"          # needs percent-encoding in a URL
ACL_USER, ACL_PASSWORD = "tessera", "acl-pw"


def quote(s):
    from urllib.parse import quote as q
    return q(s, safe="")


class RedisCredentials(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        with cls.redis.client() as c:
            c.command("ACL", "SETUSER", ACL_USER, "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all")
            c.command("CONFIG", "SET", "requirepass", PASSWORD)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.redis.cleanup()

    def serve(self, url):
        srv = self.track(TesseraServer(strategy="redis", env={"REDIS_URL": url}))
        srv.add_user("rita", "visitor", "rita-pw")
        srv.start()
        return srv

    def login_and_check(self, srv, db):
        b = srv.browser()
        self.assertStatus(b.login("rita", "rita-pw"), 200)
        self.assertStatus(b.get("/api/auth/session"), 200)
        with self.redis.client() as c:
            c.command("AUTH", "default", PASSWORD)
            c.command("SELECT", str(db))
            keys = c.command("KEYS", "session:*")
        self.assertTrue(any(not k.startswith(b"session:user:") for k in keys), f"no session key in db {db}: {keys}")
        return b

    def test_password_and_database(self):
        srv = self.serve(f"redis://:{quote(PASSWORD)}@127.0.0.1:{self.redis.port}/3")
        self.login_and_check(srv, 3)
        self.assertStatus(srv.browser().get("/readyz"), 200)

    def test_acl_user(self):
        srv = self.serve(f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{self.redis.port}/4")
        self.login_and_check(srv, 4)

    def test_wrong_password_fails_closed(self):
        srv = self.serve(f"redis://:wrong@127.0.0.1:{self.redis.port}/5")
        b = srv.browser()
        r = b.login("rita", "rita-pw")
        self.assertStatus(r, 503, "a login that cannot be stored")
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertStatus(b.get("/readyz"), 503)
        self.assertNotIn(PASSWORD, srv.log_text(), "a secret was logged")


if __name__ == "__main__":
    unittest.main(verbosity=2)

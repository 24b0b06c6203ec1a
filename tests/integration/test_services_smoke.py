"""Quick self-test of the harness's Redis and PostgreSQL helpers (used by the store tests): start each on its own
port in a temp dir, talk to it, stop it, and check that it is gone. A few seconds in all."""

import os
import shutil
import unittest

from tessera_harness import PostgresServer, RedisServer, main, port_open


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed (scripts/setup.sh installs it)")
class RedisSmoke(unittest.TestCase):
    def test_start_command_stop(self):
        srv = RedisServer()
        self.addCleanup(srv.cleanup)
        srv.start()
        with srv.client() as c:
            self.assertEqual(c.command("SET", "session:x", '{"userId":1}', "EX", "60"), "OK")
            self.assertEqual(c.command("GET", "session:x"), b'{"userId":1}')
            self.assertGreater(c.command("TTL", "session:x"), 0)
            self.assertIsNone(c.command("GET", "session:missing"))
        srv.stop()
        self.assertFalse(port_open(srv.port))
        # restartable on the same port (the fault tests stop and restart the store)
        srv.start()
        with srv.client() as c:
            self.assertEqual(c.command("PING"), "PONG")


@unittest.skipUnless(os.path.exists(os.path.join(PostgresServer.PG_BIN, "postgres")), "PostgreSQL 15 not installed")
class PostgresSmoke(unittest.TestCase):
    def test_start_query_stop_restart(self):
        srv = PostgresServer()
        self.addCleanup(srv.cleanup)
        srv.start()
        self.assertTrue(srv.url.startswith("postgres://"))
        srv.psql("CREATE TABLE t (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)")
        srv.psql("INSERT INTO t VALUES ('a', '{\"userId\":1}', now() + interval '1 day')")
        self.assertEqual(srv.psql("SELECT sess->>'userId' FROM t WHERE sid = 'a'").strip(), "1")
        srv.stop()
        self.assertFalse(port_open(srv.port))
        srv.start()  # same data dir, same port
        self.assertEqual(srv.psql("SELECT count(*) FROM t").strip(), "1")


if __name__ == "__main__":
    main()

"""contrib/: the systemd unit and its environment file (issue 12 §3).

- test_env_matches_config: the variables of contrib/tessera.env are exactly the ones the server's configuration
  reads (every quoted upper-case name in src/app/config.c and src/app/limits.c), in both directions.
- test_env_defaults_are_valid: every variable of tessera.env set to the default it shows (the SQLite path in a
  temp dir, a secret for production) passes `tessera check` (exit 0): the documented defaults are accepted.
- test_unit_hardening: the unit has the hardening the deployment notes promise (DynamicUser, StateDirectory,
  ProtectSystem=strict, ...) and reads /etc/tessera/tessera.env.
- test_systemd_analyze_verify: `systemd-analyze verify` loads the unit without a word (an unknown key or a bad
  value is only a warning there, so any output fails the test). It needs no running systemd (PID 1 may be
  anything): only ExecStart's binary must exist, so a copy of the unit points at the built binary. Skipped,
  with the reason, where systemd-analyze is not installed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tessera_harness import main, tessera_bin  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV_FILE = os.path.join(ROOT, "contrib", "tessera.env")
UNIT_FILE = os.path.join(ROOT, "contrib", "tessera.service")
LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


def env_entries():
    with open(ENV_FILE) as f:
        return [m.groups() for m in (LINE.match(ln.strip()) for ln in f) if m]


def config_names():
    names = set()
    for rel in ("src/app/config.c", "src/app/limits.c"):
        with open(os.path.join(ROOT, rel)) as f:
            names |= set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])"', f.read()))
    return names


class ContribTests(unittest.TestCase):
    def test_env_matches_config(self):
        names = [n for n, _ in env_entries()]
        self.assertEqual(len(names), len(set(names)), "a variable appears twice")
        known = config_names()
        self.assertGreater(len(known), 30)
        self.assertEqual(sorted(set(names) - known), [], "in tessera.env but not read by the server")
        self.assertEqual(sorted(known - set(names)), [], "read by the server but missing from tessera.env")

    def test_env_defaults_are_valid(self):
        tmp = tempfile.mkdtemp(prefix="tessera-contrib-")
        try:
            env = {k: v for k, v in os.environ.items()
                   if not re.match(r"^(TESSERA_|SESSION_|DATABASE_URL|REDIS_URL|JWT_|CACHE_|NEXTAUTH_|AUTH_SECRET|"
                                   r"META_CACHE|BACKEND_TIMEOUT)", k)}
            for name, value in env_entries():
                if value != "":
                    env[name] = value
            env["DATABASE_URL"] = f"sqlite:{os.path.join(tmp, 'tessera.db')}"
            env["SESSION_SECRET"] = "x" * 40
            r = subprocess.run([tessera_bin(), "check"], capture_output=True, env=env, cwd=tmp, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
            self.assertIn("ok: config:", r.stdout.decode())
            env["TESSERA_MAX_HEADERS"] = "100000"  # and the same check does refuse a bad value
            r = subprocess.run([tessera_bin(), "check"], capture_output=True, env=env, cwd=tmp, timeout=60)
            self.assertEqual(r.returncode, 1)
            self.assertIn("TESSERA_MAX_HEADERS", r.stdout.decode())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unit_hardening(self):
        with open(UNIT_FILE) as f:
            text = f.read()
        for line in ("DynamicUser=yes", "StateDirectory=tessera", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
                     "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
                     "MemoryDenyWriteExecute=yes", "EnvironmentFile=/etc/tessera/tessera.env",
                     "ExecStart=/usr/bin/tessera serve"):
            self.assertIn(line, text)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_analyze_verify(self):
        tmp = tempfile.mkdtemp(prefix="tessera-unit-")
        try:
            with open(UNIT_FILE) as f:
                text = f.read().replace("/usr/bin/tessera", os.path.abspath(tessera_bin()))
            path = os.path.join(tmp, "tessera.service")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, timeout=120)
            out = (r.stdout + r.stderr).decode(errors="replace").strip()
            self.assertEqual(r.returncode, 0, out)
            self.assertEqual(out, "", "systemd-analyze warned")
            # the same verify does catch a bad value
            with open(path, "w") as f:
                f.write(text.replace("ProtectSystem=strict", "ProtectSystem=sideways"))
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, timeout=120)
            self.assertIn("sideways", (r.stdout + r.stderr).decode(errors="replace"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""
The pre-chat page (`GET /`, web/) end to end in real headless Chromium: tests/browser/story.js drives
Debian's /usr/bin/chromium with playwright-core (tests/browser/package.json; installed here with `npm ci`
when missing) through the whole story against one `tessera serve` — two visitors wait and see the queue move,
the agent's waiting list is live, messages both ways, a network drop (`context.setOffline`) with messages sent
meanwhile and every message shown once and in order afterwards, close, logout, a session ended elsewhere
(401 -> the login form), a browser without EventSource on long-poll that fetches nothing while hidden.
Screenshots go to <build>/artifacts/page/ (TESS_ARTIFACTS overrides).
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_harness import ServerTestCase, TesseraServer  # noqa: E402

BROWSER_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
CHROMIUM = "/usr/bin/chromium"
STORY_TIMEOUT = 120


def _node_env():
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    return env


def _playwright_present(node):
    r = subprocess.run([node, "-e", "require.resolve('playwright-core')"], cwd=BROWSER_DIR, capture_output=True,
                       env=_node_env(), timeout=60)
    return r.returncode == 0


def artifacts_dir():
    if os.environ.get("TESS_ARTIFACTS"):
        return os.environ["TESS_ARTIFACTS"]
    bin_path = os.environ.get("TESSERA_BIN", "build/tessera")
    return os.path.join(os.path.dirname(os.path.abspath(bin_path)), "artifacts", "page")


def setUpModule():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    if not node or not npm:
        raise unittest.SkipTest("node/npm not installed: the browser test needs them")
    if not _playwright_present(node):
        try:
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, capture_output=True,
                               env=_node_env(), timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise unittest.SkipTest(f"npm ci in tests/browser failed: {exc!r}")
        if r.returncode != 0 or not _playwright_present(node):
            tail = (r.stdout + r.stderr).decode(errors="replace")[-600:]
            raise unittest.SkipTest(f"npm ci in tests/browser failed ({r.returncode}): {tail}")


class PageStory(ServerTestCase):
    def test_whole_story_in_chromium(self):
        server = self.track(TesseraServer(strategy="cached"))
        for name, role in (("alice", "visitor"), ("carol", "visitor"), ("dave", "visitor"), ("bob", "agent")):
            server.add_user(name, role, f"{name}-pw")
        server.start()
        out = artifacts_dir()
        os.makedirs(out, exist_ok=True)
        try:
            r = subprocess.run([shutil.which("node"), os.path.join(BROWSER_DIR, "story.js"),
                                f"http://127.0.0.1:{server.port}", out], cwd=BROWSER_DIR, capture_output=True,
                               env=_node_env(), timeout=STORY_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            self.fail(f"the browser story took over {STORY_TIMEOUT} s:\n{(exc.stdout or b'').decode()}"
                      f"{(exc.stderr or b'').decode()}")
        log = (r.stdout + r.stderr).decode(errors="replace")
        print(log, end="")
        self.assertEqual(r.returncode, 0, f"the browser story failed:\n{log}")
        self.assertIn("story: PASS", log)
        for name in ("visitor-waiting", "agent-waiting-list", "conversation-visitor", "conversation-agent",
                     "phone-visitor", "phone-agent"):
            path = os.path.join(out, f"{name}.png")
            self.assertTrue(os.path.getsize(path) > 5000, f"screenshot {path}")


if __name__ == "__main__":
    unittest.main(verbosity=2)

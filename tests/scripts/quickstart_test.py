"""End to end: scripts/quickstart.sh starts, restarts after a crashed host
or mount daemon, stops, and keeps the files across all of it. It runs on a
temp store and mount point (VAR_DIR, MOUNT_DIR) with the given build tree.

usage: quickstart_test.py BUILD_DIR"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
QUICKSTART = os.path.join(ROOT, "scripts", "quickstart.sh")
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
import util  # noqa: E402
BUILD_DIR = None


class QuickstartTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="quickstart_test_")
        self.var = os.path.join(self.tmp, "var")
        self.mnt = os.path.join(self.tmp, "mnt")
        self.env = dict(os.environ, BUILD_DIR=BUILD_DIR, VAR_DIR=self.var,
                        MOUNT_DIR=self.mnt, VOLUME="qs")

    def tearDown(self):
        if util.mounts_under(self.tmp):
            subprocess.run(["fusermount3", "-u", self.mnt])
        for pid in util.pids_naming(self.tmp):
            os.kill(pid, signal.SIGTERM)
            util.wait_gone(pid, 10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def quickstart(self, *args):
        result = subprocess.run([QUICKSTART, *args], env=self.env,
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0,
                         result.stdout[-3000:] + result.stderr[-3000:])
        return result.stdout

    def host_pid(self):
        with open(os.path.join(self.var, "host.pid"), encoding="ascii") as f:
            return int(f.read())

    def mount_daemon_pid(self):
        daemons = util.pids_with_arg(self.mnt)
        self.assertEqual(len(daemons), 1)
        return daemons[0]

    def write_file(self, name, data):
        path = os.path.join(self.mnt, name)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def read_file(self, name):
        with open(os.path.join(self.mnt, name), "rb") as f:
            return f.read()

    def test_files_survive_a_killed_host_and_a_restart(self):
        self.assertIn("EnclaveFS is running", self.quickstart())
        self.write_file("before", b"written before the crash\n")

        # A killed host leaves its socket files behind; the rerun must wait
        # for the new host, not take the stale sockets for it.
        host = self.host_pid()
        os.kill(host, signal.SIGKILL)
        self.assertTrue(util.wait_gone(host, 10))
        self.assertIn("EnclaveFS is running", self.quickstart())
        self.assertNotEqual(self.host_pid(), host)
        self.write_file("after", b"written after the restart\n")

        self.quickstart("stop")
        self.assertEqual(util.mounts_under(self.tmp), [])
        self.assertEqual(util.pids_naming(self.tmp), [])

        self.quickstart()
        self.assertEqual(self.read_file("before"),
                         b"written before the crash\n")
        self.assertEqual(self.read_file("after"), b"written after the restart\n")
        self.quickstart("stop")

    def test_rerun_replaces_a_dead_mount(self):
        self.quickstart()
        self.write_file("kept", b"synced before the daemon died\n")
        daemon = self.mount_daemon_pid()
        os.kill(daemon, signal.SIGKILL)
        self.assertTrue(util.wait_gone(daemon, 10))

        out = self.quickstart()
        self.assertIn("removing the dead mount", out)
        self.assertNotEqual(self.mount_daemon_pid(), daemon)
        self.assertEqual(self.read_file("kept"),
                         b"synced before the daemon died\n")
        self.quickstart("stop")

    def test_unknown_argument_is_refused(self):
        result = subprocess.run([QUICKSTART, "start-please"], env=self.env,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage: scripts/quickstart.sh [stop]", result.stderr)
        self.assertFalse(os.path.exists(self.var))


if __name__ == "__main__":
    BUILD_DIR = sys.argv.pop(1)
    unittest.main()

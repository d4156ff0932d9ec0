"""Tests of what bench/run checks before a run: bad arguments and unusable
work dirs fail at once, with one line that names the problem and a non-zero
exit, before anything is built, installed or mounted; a file-system daemon
already running is warned of."""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "..", "..", "bench", "run")


def bench_run(*args):
    return subprocess.run([sys.executable, RUN, "--no-docs", *args],
                          capture_output=True, text=True, timeout=60)


def bench_run_in(workdir, *args):
    """A one-job run of the native directory in `workdir`."""
    return bench_run(*args, "--systems", "native", "--jobs", "seqwrite",
                     "--workdir", workdir)


class RefusalTest(unittest.TestCase):
    def assert_refused(self, result, rc, message):
        self.assertEqual(result.returncode, rc, result.stderr)
        self.assertIn(message, result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_unknown_system(self):
        self.assert_refused(bench_run("--systems", "native,zfs"), 2,
                            "unknown system(s): zfs")

    def test_runs_below_one(self):
        self.assert_refused(bench_run("--runs", "0"), 2,
                            "--runs must be at least 1")

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_work_dir_under_a_file(self):
        with tempfile.NamedTemporaryFile() as f:
            workdir = os.path.join(f.name, "bench")
            self.assert_refused(
                bench_run_in(workdir), 1,
                f"cannot use work dir {workdir}: Not a directory")

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_foreign_work_dir_left_untouched(self):
        # bench/run deletes its work dir's stores, mnt and run subdirectories:
        # a directory it did not make must be refused, not emptied.
        with tempfile.TemporaryDirectory() as workdir:
            keep = os.path.join(workdir, "mnt", "keep")
            os.makedirs(os.path.dirname(keep))
            open(keep, "w").close()
            self.assert_refused(
                bench_run_in(workdir), 1,
                f"work dir {workdir} is not empty and no bench/run made it")
            self.assertTrue(os.path.exists(keep))

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_work_dir_held_by_another_run(self):
        with tempfile.TemporaryDirectory() as workdir:
            with open(os.path.join(workdir, ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.assert_refused(
                    bench_run_in(workdir), 1,
                    f"another bench/run is using {workdir}")

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_warns_of_a_file_system_daemon_already_running(self):
        with tempfile.TemporaryDirectory() as tmp:
            # A process whose command name is enclavefs-host, as the
            # quickstart's host would be.
            fake = os.path.join(tmp, "enclavefs-host")
            shutil.copy("/bin/sleep", fake)
            daemon = subprocess.Popen([fake, "30"])
            try:
                foreign = os.path.join(tmp, "work")
                os.makedirs(os.path.join(foreign, "keep"))
                result = bench_run_in(foreign)
                # Tests run in parallel may have daemons of their own, listed
                # in any order beside this one.
                self.assertIn("already running: ", result.stderr)
                self.assertIn(f"enclavefs-host (pid {daemon.pid})",
                              result.stderr)
            finally:
                daemon.kill()
                daemon.wait()

    @unittest.skipUnless(os.geteuid() == 0, "mounts a small tmpfs")
    def test_work_dir_without_room(self):
        with tempfile.TemporaryDirectory() as small:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs",
                            small], check=True)
            try:
                workdir = os.path.join(small, "bench")
                self.assert_refused(
                    bench_run_in(workdir, "--quick"), 1,
                    "and this run needs about 0.1 GiB")
                self.assertEqual(os.listdir(workdir), [".lock"])
            finally:
                subprocess.run(["umount", small], check=True)

    def run_with_only_apt_get(self, *args):
        """Runs bench/run with a PATH that holds nothing but a stand-in
        apt-get, which logs its arguments and fails the install, so every
        tool the native seqwrite job needs is missing; returns the result
        and the apt-get calls."""
        with tempfile.TemporaryDirectory() as tmp:
            calls = os.path.join(tmp, "calls")
            bin_dir = os.path.join(tmp, "bin")
            os.mkdir(bin_dir)
            apt_get = os.path.join(bin_dir, "apt-get")
            with open(apt_get, "w") as f:
                f.write(f'#!/bin/sh\necho "$*" >> {calls}\n'
                        '[ "$1" = update ] || exit 100\n')
            os.chmod(apt_get, 0o755)
            result = subprocess.run(
                [sys.executable, RUN, "--no-docs", "--systems", "native",
                 "--jobs", "seqwrite", "--workdir", os.path.join(tmp, "w"),
                 *args],
                capture_output=True, text=True, timeout=60,
                env=dict(os.environ, PATH=bin_dir))
            if not os.path.exists(calls):
                return result, []
            with open(calls) as f:
                return result, f.read().splitlines()

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_missing_tools_are_installed(self):
        result, calls = self.run_with_only_apt_get()
        self.assertEqual(calls, ["update -qq",
                                 "install -y -qq fio fuse3 gnuplot-nox"])
        self.assertIn("==> installing fio fuse3 gnuplot-nox", result.stdout)
        self.assert_refused(result, 1, "install -y -qq fio fuse3 gnuplot-nox "
                            "exited 100")

    @unittest.skipUnless(os.geteuid() == 0, "bench/run runs as root only")
    def test_no_install_deps_names_the_missing_tools(self):
        result, calls = self.run_with_only_apt_get("--no-install-deps",
                                                   "--no-charts")
        self.assertEqual(calls, [])
        self.assert_refused(result, 1,
                            "install them with\n  apt-get install -y fio "
                            "fuse3\n")


if __name__ == "__main__":
    unittest.main()

"""End to end: a short bench/run of EnclaveFS and the native directory
measures every job it is given, records EnclaveFS's wire and host figures,
and leaves nothing mounted or running. Speed is not asserted.

usage: run_e2e_test.py BUILD_DIR"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "..", "..", "bench")
RUN = os.path.join(BENCH, "run")
sys.path.insert(0, os.path.join(BENCH, "lib"))
import util  # noqa: E402
JOBS = ["seqwrite", "seqread-cold", "randrw", "cp", "ls-cold", "rm"]
SYSTEMS = ["enclavefs", "native"]
BUILD_DIR = None


def read_fuse_io_uring():
    """The fuse module's enable_uring ("Y"/"N"), None if the kernel has no
    FUSE over io_uring."""
    try:
        with open(util.FUSE_IO_URING_PARAM, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


class QuickRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.uring_before = read_fuse_io_uring()
        cls.tmp = tempfile.mkdtemp(prefix="bench_e2e_")
        cls.workdir = os.path.join(cls.tmp, "work")
        cls.result = subprocess.run(
            [sys.executable, RUN, "--quick", "--no-docs", "--no-charts",
             "--build-dir", BUILD_DIR, "--workdir", cls.workdir,
             "--systems", ",".join(SYSTEMS), "--jobs", ",".join(JOBS)],
            capture_output=True, text=True, timeout=600)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.result.returncode, 0,
                         self.result.stdout[-3000:] + self.result.stderr)

    def document(self):
        runs = os.listdir(os.path.join(self.workdir, "results"))
        self.assertEqual(len(runs), 1)
        path = os.path.join(self.workdir, "results", runs[0], "results.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def results(self):
        return self.document()["results"]

    def test_enclavefs_served_over_io_uring_and_setting_put_back(self):
        machine = self.document()["machine"]
        self.assertEqual(read_fuse_io_uring(), self.uring_before)
        mounts = machine["enclavefs_transport"]
        if self.uring_before is None:  # no FUSE over io_uring in this kernel
            self.assertTrue(mounts.startswith("io_uring in 0 of "), mounts)
        else:
            # setup, and a remount for each of the two cold jobs
            self.assertIn("io_uring in 3 of 3 mounts", mounts)

    def test_every_job_measured_on_every_system(self):
        measured = {(r["job"], r["system"]) for r in self.results()
                    if r["value"] is not None and r["value"] > 0}
        self.assertEqual(measured, {(j, s) for j in JOBS for s in SYSTEMS})

    def test_enclavefs_rows_carry_wire_and_host_figures(self):
        rows = {r["job"]: r for r in self.results()
                if r["system"] == "enclavefs"}
        # A sealed block is larger than the plaintext it carries.
        self.assertGreaterEqual(rows["seqwrite"]["wire_bytes_per_user_byte"],
                                1.0)
        # A cold read fetches its blocks from the host.
        self.assertGreater(rows["seqread-cold"]["host_requests"], 0)

    def test_table_has_both_ratios(self):
        self.assertIn("enclavefs/native", self.result.stdout)
        self.assertIn("enclavefs/best-peer", self.result.stdout)

    def test_nothing_left_mounted_or_running(self):
        self.assertEqual(util.mounts_under(self.tmp), [])
        # Any argument that names a path in the temp dir: the host's
        # --store, fio's directory, ...
        self.assertEqual(util.pids_naming(self.tmp), [])

if __name__ == "__main__":
    BUILD_DIR = sys.argv.pop(1)
    unittest.main()

"""Unit tests of bench/lib/util.py's CPU counters, which bench/run records
per measurement."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "bench", "lib"))

import util  # noqa: E402


def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class CpuCountersTest(unittest.TestCase):
    def test_process_time_counts_a_busy_child_and_not_an_idle_one(self):
        # The busy child says when it has spun its 0.5 s, then waits.
        busy = subprocess.Popen(
            [sys.executable, "-c",
             "import time\nend = time.process_time() + 0.5\n"
             "while time.process_time() < end: pass\n"
             "print('spun', flush=True)\ntime.sleep(30)"],
            stdout=subprocess.PIPE, text=True)
        idle = subprocess.Popen(["sleep", "30"])
        try:
            self.assertEqual(busy.stdout.readline(), "spun\n")
            self.assertGreaterEqual(util.process_cpu_seconds([busy.pid]), 0.4)
            self.assertLess(util.process_cpu_seconds([idle.pid]), 0.1)
            both = util.process_cpu_seconds([busy.pid, idle.pid])
            self.assertGreaterEqual(both, 0.4)
        finally:
            for p in (busy, idle):
                p.kill()
                p.wait()
            busy.stdout.close()

    def test_a_process_that_is_gone_counts_nothing(self):
        gone = subprocess.Popen(["true"])
        gone.wait()
        self.assertEqual(util.process_cpu_seconds([gone.pid]), 0)

    def test_machine_time_covers_our_own_work(self):
        before = util.machine_cpu_seconds()
        spin(0.3)
        self.assertGreaterEqual(util.machine_cpu_seconds() - before, 0.25)


if __name__ == "__main__":
    unittest.main()

"""Unit tests of bench/lib/report.py: the ratios bench/run reports, over the
median and within each run."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "bench", "lib"))

import report  # noqa: E402
from jobs import all_jobs  # noqa: E402

SYSTEMS = ["enclavefs", "gocryptfs", "securefs", "native"]
JOBS = {j.name: j for j in all_jobs()}


def rows(job, per_run):
    """Rows of `job` from {run: {system: value}}."""
    return [{"run": run, "job": job, "system": system, "value": value}
            for run, values in per_run.items()
            for system, value in values.items()]


def summary_of(job, per_run):
    return report.summarize(rows(job, per_run), [JOBS[job]], SYSTEMS)[0]


class PerRunRatioTest(unittest.TestCase):
    def test_median_ahead_can_hide_a_run_behind(self):
        s = summary_of("seqread-cold", {
            1: {"enclavefs": 700, "gocryptfs": 600, "securefs": 500},
            2: {"enclavefs": 750, "gocryptfs": 1000, "securefs": 500},
            3: {"enclavefs": 680, "gocryptfs": 590, "securefs": 650},
        })
        # Medians 700 vs gocryptfs 600: ahead.
        self.assertAlmostEqual(s["enclavefs_vs_best_peer"], 700 / 600)
        per_run = s["enclavefs_vs_best_peer_per_run"]
        self.assertEqual(sorted(per_run), [1, 2, 3])
        self.assertAlmostEqual(per_run[1], 700 / 600)
        self.assertAlmostEqual(per_run[2], 750 / 1000)
        self.assertAlmostEqual(per_run[3], 680 / 650)
        self.assertEqual(report.even_in_every_run([s], 3), (0, 1))

    def test_times_are_inverted_per_run(self):
        s = summary_of("cp", {
            1: {"enclavefs": 4.0, "securefs": 5.0, "native": 1.0},
            2: {"enclavefs": 5.0, "securefs": 4.0, "native": 1.0},
        })
        self.assertAlmostEqual(s["enclavefs_vs_best_peer_per_run"][1], 1.25)
        self.assertAlmostEqual(s["enclavefs_vs_best_peer_per_run"][2], 0.8)
        self.assertAlmostEqual(s["enclavefs_vs_native_per_run"][1], 0.25)

    def test_even_in_every_run_counts_only_complete_jobs(self):
        ahead = summary_of("randwrite", {
            1: {"enclavefs": 2.0, "securefs": 1.0},
            2: {"enclavefs": 1.0, "securefs": 1.0},
        })
        failed_run = summary_of("randread-cold", {
            1: {"enclavefs": 2.0, "securefs": 1.0},
            2: {"enclavefs": None, "securefs": 1.0},
        })
        self.assertEqual(failed_run["enclavefs_vs_best_peer_per_run"].keys(),
                         {1})
        self.assertEqual(report.even_in_every_run([ahead, failed_run], 2),
                         (1, 2))

    def test_table_shows_each_run_in_order_and_marks_gaps(self):
        s = summary_of("randread-cold", {
            1: {"enclavefs": 3.0, "securefs": 1.0, "native": 1.5},
            2: {"enclavefs": None, "securefs": 1.0, "native": 1.5},
            3: {"enclavefs": 1.0, "securefs": 2.0, "native": 1.0},
        })
        table = report.table_markdown([s], SYSTEMS, 3)
        line = next(row for row in table.splitlines()
                    if row.startswith("| randread-cold"))
        self.assertIn("| 3.00 / n/a / 0.50 | 2.00 / n/a / 1.00 |", line)
        self.assertIn("on 0 of 1 jobs", table)

    def test_single_run_table_has_no_per_run_columns(self):
        s = summary_of("seqwrite", {1: {"enclavefs": 2.0, "securefs": 1.0}})
        table = report.table_markdown([s], SYSTEMS, 1)
        self.assertNotIn("per run", table)
        self.assertIn("| 2.00 |", table)


class DiskTableTest(unittest.TestCase):
    def test_cold_jobs_show_disk_reads_and_rate_while_busy(self):
        mib = 1 << 20
        job_rows = [
            {"run": 1, "job": "seqread-cold", "system": "enclavefs",
             "value": 800, "disk_read_bytes": 1024 * mib,
             "disk_busy_seconds": 2.0},
            {"run": 1, "job": "seqread-cold", "system": "gocryptfs",
             "value": 900, "disk_read_bytes": 512 * mib,
             "disk_busy_seconds": 0.25},
            {"run": 1, "job": "seqread-cold", "system": "securefs",
             "value": 700},  # measured before disk counters existed
            {"run": 1, "job": "seqwrite", "system": "enclavefs",
             "value": 500, "disk_read_bytes": 0, "disk_busy_seconds": 1.0},
        ]
        summary = report.summarize(
            job_rows, [JOBS["seqwrite"], JOBS["seqread-cold"]], SYSTEMS)
        table = report.disk_table_markdown(summary, SYSTEMS)
        self.assertIn("| seqread-cold | 1024 / 512 | 512 / 2048 | n/a | n/a |",
                      table)
        self.assertNotIn("seqwrite", table)  # not a cold job

    def test_no_table_without_disk_counters(self):
        s = summary_of("seqread-cold", {1: {"enclavefs": 1.0, "securefs": 1.0}})
        self.assertEqual(report.disk_table_markdown([s], SYSTEMS), "")


class CpuTableTest(unittest.TestCase):
    def test_data_jobs_per_gib_and_metadata_jobs_per_run(self):
        gib = 1 << 30
        job_rows = [
            {"run": 1, "job": "seqread-cold", "system": "enclavefs",
             "value": 800, "user_bytes": gib // 2, "cpu_seconds": 1.2,
             "daemon_cpu_seconds": 0.9},
            {"run": 2, "job": "seqread-cold", "system": "enclavefs",
             "value": 800, "user_bytes": gib, "cpu_seconds": 2.0,
             "daemon_cpu_seconds": 1.4},
            {"run": 1, "job": "seqread-cold", "system": "native",
             "value": 1800, "user_bytes": gib, "cpu_seconds": 0.5},
            {"run": 1, "job": "seqread-cold", "system": "securefs",
             "value": 700, "user_bytes": gib},  # before CPU was recorded
            {"run": 1, "job": "rm", "system": "gocryptfs", "value": 2.0,
             "user_bytes": 0, "cpu_seconds": 3.0,
             "daemon_cpu_seconds": 1.0},
        ]
        summary = report.summarize(
            job_rows, [JOBS["seqread-cold"], JOBS["rm"]], SYSTEMS)
        table = report.cpu_table_markdown(summary, SYSTEMS)
        # Medians of 2.4 and 2.0 s/GiB, and of 1.8 and 1.4; native has no
        # processes of its own.
        self.assertIn("| seqread-cold | GiB | 2.20 / 1.60 | n/a | n/a | "
                      "0.50 / n/a |", table)
        self.assertIn("| rm | run | n/a | 3.00 / 1.00 | n/a | n/a |", table)

    def test_no_table_without_cpu_counters(self):
        s = summary_of("seqread-cold", {1: {"enclavefs": 1.0, "securefs": 1.0}})
        self.assertEqual(report.cpu_table_markdown([s], SYSTEMS), "")


if __name__ == "__main__":
    unittest.main()

"""The benchmark jobs and how one (job, system) measurement is taken.

A Job prepares its files untimed (fio's layout phase, or copying the tree);
the caller then makes the system cold if job.cold, and measure() times the
workload and returns a Measurement. fio jobs take their figure from fio's
JSON; metadata jobs are timed here with the wall clock. Not thread-safe.
"""

import dataclasses
import functools
import json
import os
import shutil
import stat
import subprocess
import time

from util import MiB, BenchError, fsync_dir, run

FIO_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fio")
TREE_NAME = "tree"


@dataclasses.dataclass
class Params:
    """Sizes of one run: total bytes per seq/random job, random runtime."""
    seq_size: int
    rand_size: int
    runtime: int
    tree: str  # source of the metadata jobs


@dataclasses.dataclass
class Measurement:
    value: float  # in the job's unit
    user_bytes: int  # bytes the workload read or wrote
    ops: int  # fio I/Os, or entries of the tree for metadata jobs
    raw: dict = None  # fio's JSON, if any


@dataclasses.dataclass
class Job:
    name: str
    family: str  # seq, rand or meta: one chart each
    unit: str  # MiB/s, IOPS or s
    cold: bool

    def prepare(self, system, params):
        raise NotImplementedError

    def measure(self, system, params, raw_path):
        raise NotImplementedError

    def footprint(self, params):
        """(name, bytes) of the files the job keeps in a mount; jobs that
        share files share the name."""
        raise NotImplementedError

    @property
    def higher_is_better(self):
        return self.unit != "s"


@dataclasses.dataclass
class FioJob(Job):
    fio_file: str = ""  # bench/fio/<fio_file>.fio
    file_base: str = ""  # files are <file_base>.<jobnum> in the mount
    numjobs: int = 1
    fresh: bool = False  # delete the files first (a write of new files)

    def footprint(self, params):
        total = params.seq_size if self.family == "seq" else params.rand_size
        return self.file_base, total

    def _env(self, system, params, create_only):
        _, total = self.footprint(params)
        return {"DIR": system.mnt, "FILE": self.file_base,
                "SIZE": str(total // self.numjobs),
                "NUMJOBS": str(self.numjobs), "RUNTIME": str(params.runtime),
                "CREATE_ONLY": "1" if create_only else "0"}

    def _fio(self, system, params, create_only, output):
        argv = ["fio", "--output-format=json", f"--output={output}",
                os.path.join(FIO_DIR, self.fio_file + ".fio")]
        run(argv, env=self._env(system, params, create_only), timeout=1800)

    def prepare(self, system, params):
        if self.fresh:
            for n in range(self.numjobs):
                path = os.path.join(system.mnt, f"{self.file_base}.{n}")
                if os.path.exists(path):
                    os.unlink(path)
            return
        self._fio(system, params, True, os.devnull)

    def measure(self, system, params, raw_path):
        self._fio(system, params, False, raw_path)
        with open(raw_path, encoding="utf-8") as f:
            raw = json.load(f)
        if len(raw.get("jobs", [])) != 1:
            raise BenchError(f"unexpected fio output in {raw_path}")
        job = raw["jobs"][0]
        if job.get("error"):
            raise BenchError(f"fio reported error {job['error']} "
                             f"({raw_path})")
        sides = [job["read"], job["write"]]
        user_bytes = sum(s["io_bytes"] for s in sides)
        ops = sum(s["total_ios"] for s in sides)
        if self.unit == "IOPS":
            value = sum(s["iops"] for s in sides)
        else:
            value = sum(s["bw_bytes"] for s in sides) / MiB
        return Measurement(value, user_bytes, ops, raw)


@functools.lru_cache(maxsize=None)
def tree_size(path):
    """(entries, bytes of regular files) under path, path itself excluded;
    computed once per source tree."""
    entries, size = 0, 0
    for root, dirs, files in os.walk(path):
        entries += len(dirs) + len(files)
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return entries, size


def _read_tree(path):
    """Reads every regular file under path, so its pages are cached."""
    for root, _, files in os.walk(path):
        for name in files:
            file = os.path.join(root, name)
            if not stat.S_ISREG(os.lstat(file).st_mode):
                continue
            with open(file, "rb") as f:
                while f.read(MiB):
                    pass


def _timed(*steps):
    start = time.monotonic()
    for step in steps:
        step()
    return time.monotonic() - start


@dataclasses.dataclass
class MetaJob(Job):
    action: str = ""  # copy, list or remove

    def footprint(self, params):
        return TREE_NAME, tree_size(params.tree)[1]

    def prepare(self, system, params):
        tree = os.path.join(system.mnt, TREE_NAME)
        if self.action == "copy":
            if os.path.lexists(tree):
                shutil.rmtree(tree)
        elif not os.path.lexists(tree):
            _copy_tree(params.tree, tree, system.mnt)

    def measure(self, system, params, raw_path):
        tree = os.path.join(system.mnt, TREE_NAME)
        entries, size = tree_size(params.tree)
        if self.action == "copy":
            # The job before may have dropped the page cache; without this
            # the first system in the rotation would read the source cold.
            _read_tree(params.tree)
            secs = _timed(lambda: _copy_tree(params.tree, tree, system.mnt))
            return Measurement(secs, size, entries)
        if self.action == "list":
            secs = _timed(lambda: run(["ls", "-lR", tree],
                                      discard_stdout=True))
            return Measurement(secs, 0, entries)
        secs = _timed(lambda: run(["rm", "-rf", tree]),
                      lambda: _sync(system.mnt))
        return Measurement(secs, 0, entries)


def _sync(mnt):
    subprocess.run(["sync"], check=True)
    fsync_dir(mnt)


def _copy_tree(src, dst, mnt):
    run(["cp", "-a", src, dst])
    _sync(mnt)


def all_jobs():
    """Every job in the order a full run executes them."""
    jobs = []
    for suffix, numjobs in (("", 1), ("-4j", 4)):
        jobs += [
            FioJob(f"seqwrite{suffix}", "seq", "MiB/s", False, "seqwrite",
                   f"seq{suffix}", numjobs, fresh=True),
            FioJob(f"seqread-cold{suffix}", "seq", "MiB/s", True, "seqread",
                   f"seq{suffix}", numjobs),
            FioJob(f"randwrite{suffix}", "rand", "IOPS", False, "randwrite",
                   f"rand{suffix}", numjobs),
            FioJob(f"randread-cold{suffix}", "rand", "IOPS", True, "randread",
                   f"rand{suffix}", numjobs),
        ]
        if numjobs == 1:
            jobs.append(FioJob("randrw", "rand", "IOPS", False, "randrw",
                               "rand", 1))
    jobs += [MetaJob("cp", "meta", "s", False, "copy"),
             MetaJob("ls-cold", "meta", "s", True, "list"),
             MetaJob("rm", "meta", "s", False, "remove")]
    return jobs

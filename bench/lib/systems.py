"""The file systems under test: one System class per system, same interface.

A System owns its backing store under <workdir>/stores/<name> and its
mountpoint <workdir>/mnt/<name>. setup() creates the store with the system's
default settings, mount()/unmount() attach and detach it (a no-op when it
already is; unmount waits for the daemon to exit, so a remount starts with
empty daemon caches), close() releases everything it started (safe to call
at any point, also after a failure). One System is used by one thread at a
time; different Systems may be driven concurrently.
"""

import json
import os
import signal
import subprocess

from util import (BenchError, first_line, fuse_unmount,
                  is_mounted, pids_with_arg, run, stop_pid, wait_until,
                  warn)

PASSWORD = "enclavefs-bench-password"
# Generous: cryfs and securefs derive their keys with scrypt/argon2 at mount.
MOUNT_TIMEOUT = 180


class System:
    """Base class; subclasses implement the FUSE specifics."""

    name = ""
    binary = ""  # executable that must be on PATH
    apt_package = ""

    def __init__(self, workdir):
        self.store = os.path.join(workdir, "stores", self.name)
        self.mnt = os.path.join(workdir, "mnt", self.name)
        self.run_dir = os.path.join(workdir, "run")
        self.password_file = os.path.join(self.run_dir, "password")

    def setup(self):
        os.makedirs(self.store, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self._create()

    def mount(self):
        pass

    def unmount(self):
        pass

    def close(self):
        self.unmount()

    def version(self):
        """One line naming the version, for results.json."""
        raise NotImplementedError

    def stats(self):
        """Cumulative host counters (dict), or None where there is no host."""
        return None

    def processes(self):
        """PIDs of the processes that serve the mount (none for a plain
        directory), whose CPU time is the system's own work."""
        return []

    def _create(self):
        pass


class Native(System):
    """A plain directory on the work dir's file system: the upper bound."""

    name = "native"

    def setup(self):
        # The "mountpoint" is just a directory next to the other systems'.
        os.makedirs(self.mnt, exist_ok=True)

    def version(self):
        return f"kernel {os.uname().release}"


class FuseSystem(System):
    """A FUSE system mounted by a command that returns once it is live."""

    def __init__(self, workdir):
        super().__init__(workdir)
        self._daemons = []

    def _mount_command(self):
        """(argv, stdin text or None, extra env) that mounts self.mnt."""
        raise NotImplementedError

    def mount(self):
        if is_mounted(self.mnt):
            return
        argv, stdin_data, env = self._mount_command()
        run(argv, stdin_data=stdin_data, env=env, timeout=MOUNT_TIMEOUT)
        wait_until(lambda: is_mounted(self.mnt), 30, f"{self.name} mount")
        self._daemons = pids_with_arg(self.mnt)

    def unmount(self):
        self._find_daemons()
        if is_mounted(self.mnt):
            fuse_unmount(self.mnt)
        self._wait_daemons()

    def processes(self):
        return list(self._daemons)

    def _find_daemons(self):
        # Also catches a daemon whose mount command was interrupted.
        self._daemons = sorted(set(self._daemons) | set(pids_with_arg(
            self.mnt)))

    def _wait_daemons(self):
        # The daemon may still be flushing after the kernel detached it; the
        # next mount of the same store must not race with it.
        for pid in self._daemons:
            stop_pid(pid, grace=60)
        self._daemons = []


class Gocryptfs(FuseSystem):
    name = "gocryptfs"
    binary = "gocryptfs"
    apt_package = "gocryptfs"

    def _create(self):
        run(["gocryptfs", "-init", "-q", "-passfile", self.password_file,
             self.store])

    def _mount_command(self):
        return (["gocryptfs", "-q", "-passfile", self.password_file,
                 self.store, self.mnt], None, None)

    def version(self):
        return first_line(["gocryptfs", "-version"])


class Securefs(FuseSystem):
    name = "securefs"
    binary = "securefs"
    apt_package = "securefs"

    def _create(self):
        # Without --pass, securefs reads the password from a non-tty stdin.
        run(["securefs", "create", self.store], stdin_data=PASSWORD + "\n")

    def _mount_command(self):
        log_file = os.path.join(self.run_dir, "securefs.log")
        return (["securefs", "mount", "-b", "--log", log_file, self.store,
                 self.mnt], PASSWORD + "\n", None)

    def version(self):
        # The Debian build reports "GIT-NOTFOUND" as its own version.
        return "securefs " + first_line(
            ["dpkg-query", "-W", "-f", "${Version}", "securefs"])


class Cryfs(FuseSystem):
    name = "cryfs"
    binary = "cryfs"
    apt_package = "cryfs"

    def _env(self):
        # Local state (known file systems) under the work dir, not in ~.
        return {"CRYFS_FRONTEND": "noninteractive",
                "CRYFS_NO_UPDATE_CHECK": "true",
                "XDG_DATA_HOME": os.path.join(self.run_dir, "cryfs-state")}

    def _mount_command(self):
        # The first mount creates the file system with the defaults.
        return (["cryfs", self.store, self.mnt], PASSWORD + "\n", self._env())

    def version(self):
        return first_line(["cryfs", "--version"], env=self._env())


class EnclaveFs(FuseSystem):
    """The full stack: enclavefs-host serving RocksDB over a unix socket and
    the enclavefs FUSE daemon. The host keeps running (with its caches) for
    the whole run, as in production; only the enclave side remounts."""

    name = "enclavefs"
    volume = "bench"

    def __init__(self, workdir, build_dir, block_size=None,
                 direct_reads=False, io_uring=True):
        super().__init__(workdir)
        self.build_dir = build_dir
        self.block_size = block_size
        self.direct_reads = direct_reads
        self.io_uring = io_uring
        self.host_bin = os.path.join(build_dir, "host-server",
                                     "enclavefs-host")
        self.efs_bin = os.path.join(build_dir, "enclave-mount", "enclavefs")
        self.binary = self.efs_bin
        self.sock = os.path.join(self.run_dir, "host.sock")
        self.key_file = os.path.join(self.run_dir, "volume.key")
        self._host = None
        self.stats_available = False

    def _env(self):
        return {"ENCLAVEFS_RUN_DIR": self.run_dir}

    def _keyopts(self):
        return ["--host", f"unix:{self.sock}", "--volume", self.volume,
                "--key-file", self.key_file]

    def _create(self):
        self._start_host()
        run([self.host_bin, "volume", "create", self.volume, "--quota",
             "64GiB", "--store", self.store])
        with open(os.open(self.key_file, os.O_WRONLY | os.O_CREAT, 0o600),
                  "w", encoding="ascii") as f:
            f.write(os.urandom(32).hex() + "\n")
        size_opts = ["--block-size", self.block_size] if self.block_size else []
        run([self.efs_bin, "format", *self._keyopts(), *size_opts],
            env=self._env())
        self.stats_available = self._query_stats() is not None
        if not self.stats_available:
            warn("enclavefs-host has no 'volume stats --json' yet: "
                 "wire bytes and round trips are reported as n/a")

    def _start_host(self):
        log_path = os.path.join(self.run_dir, "enclavefs-host.log")
        with open(log_path, "ab") as log_file:
            log_start = log_file.tell()
            # Own session: Ctrl-C reaches only us; the trap stops it by PID.
            direct = ["--direct-reads"] if self.direct_reads else []
            self._host = subprocess.Popen(
                [self.host_bin, "serve", "--store", self.store, "--listen",
                 f"unix:{self.sock}", *direct], stdout=log_file,
                stderr=log_file, start_new_session=True)
        # `serve` prints this line once the block and admin sockets listen.
        def listening():
            with open(log_path, "rb") as f:
                f.seek(log_start)
                return b"enclavefs-host: listening on" in f.read()

        wait_until(lambda: listening() or self._host.poll() is not None, 30,
                   "enclavefs-host")
        if self._host.poll() is not None:
            raise BenchError(f"enclavefs-host exited {self._host.returncode};"
                             f" see {log_path}")

    def _mount_command(self):
        log_file = os.path.join(self.run_dir, "enclavefs-mount.log")
        transport = [] if self.io_uring else ["--no-io-uring"]
        return ([self.efs_bin, "mount", *self._keyopts(), *transport,
                 "--log-file", log_file, self.mnt], None, self._env())

    def unmount(self):
        self._find_daemons()
        if is_mounted(self.mnt):
            # Waits for the final commit and the lease release.
            try:
                run([self.efs_bin, "unmount", self.mnt], env=self._env(),
                    timeout=120)
            except BenchError as e:
                warn(f"enclavefs unmount failed ({e}); using fusermount3")
                fuse_unmount(self.mnt)
        self._wait_daemons()

    def close(self):
        self.unmount()
        if self._host is not None and self._host.poll() is None:
            self._host.send_signal(signal.SIGTERM)
            try:
                self._host.wait(timeout=30)
            except subprocess.TimeoutExpired:
                warn("enclavefs-host ignored SIGTERM for 30 s; killing it")
                self._host.kill()
                self._host.wait()
        self._host = None

    def processes(self):
        host = [self._host.pid] if self._host is not None else []
        return super().processes() + host

    def _query_stats(self):
        try:
            out = run([self.host_bin, "volume", "stats", self.volume, "--json",
                       "--store", self.store], timeout=30)
            return json.loads(out)
        except (BenchError, ValueError):
            return None

    def stats(self):
        if not self.stats_available:
            return None
        stats = self._query_stats()
        if stats is None:
            raise BenchError("enclavefs-host volume stats stopped working")
        return stats

    def version(self):
        """'enclavefs <commit>[+dirty] <build type>': there is no --version."""
        repo = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        commit = first_line(["git", "-C", repo, "rev-parse", "--short",
                             "HEAD"])
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain",
                                "--untracked-files=no"], text=True,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout.strip()
        build_type = "unknown build type"
        cache = os.path.join(self.build_dir, "CMakeCache.txt")
        if os.path.exists(cache):
            with open(cache, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("CMAKE_BUILD_TYPE:"):
                        build_type = line.split("=", 1)[1].strip() or "default"
        block_size = self.block_size or "default"
        reads = ", host direct reads" if self.direct_reads else ""
        return (f"enclavefs {commit}{'+dirty' if dirty else ''} {build_type}, "
                f"block size {block_size}{reads}")


PEERS = ("gocryptfs", "securefs", "cryfs")
ALL_SYSTEMS = ("enclavefs",) + PEERS + ("native",)


def make_system(name, workdir, build_dir, block_size=None,
                direct_reads=False, io_uring=True):
    classes = {c.name: c for c in (Native, Gocryptfs, Securefs, Cryfs)}
    if name == "enclavefs":
        return EnclaveFs(workdir, build_dir, block_size, direct_reads,
                         io_uring)
    return classes[name](workdir)


def write_password(run_dir):
    path = os.path.join(run_dir, "password")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w",
              encoding="ascii") as f:
        f.write(PASSWORD + "\n")


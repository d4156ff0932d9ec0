"""Process, mount and page-cache helpers shared by the benchmark modules.

Everything here is synchronous and single-threaded; failures raise BenchError
with the command's output tail so the caller can report one clear line.
"""

import concurrent.futures
import mmap
import os
import shutil
import signal
import subprocess
import sys
import time


GiB = 1 << 30
MiB = 1 << 20


class BenchError(Exception):
    """A benchmark step failed; the message says which and why."""


def log(msg):
    print(msg, flush=True)


def warn(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(argv, *, env=None, stdin_data=None, discard_stdout=False,
        timeout=None):
    """Runs argv to completion; returns its stdout ('' if discarded).

    Raises BenchError naming the command and the last lines of its output when
    it exits non-zero or exceeds timeout seconds. The command gets its own
    process group, stopped whole if we are interrupted: fio's forked workers
    would otherwise keep a mount busy.
    """
    full_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.Popen(
            argv, env=full_env, text=True, start_new_session=True,
            stdin=subprocess.PIPE if stdin_data is not None else None,
            stdout=subprocess.DEVNULL if discard_stdout else subprocess.PIPE,
            stderr=subprocess.PIPE)
    except FileNotFoundError as e:
        raise BenchError(f"{argv[0]}: not found") from e
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except BaseException as e:
        _stop_group(proc)
        if isinstance(e, subprocess.TimeoutExpired):
            raise BenchError(f"{argv[0]} timed out after {timeout} s") from e
        raise
    if proc.returncode != 0:
        tail = "\n".join(((out or "") + (err or "")).strip().splitlines()[-8:])
        raise BenchError(f"{' '.join(map(str, argv))} exited "
                         f"{proc.returncode}\n{tail}")
    return out or ""


def _stop_group(proc):
    """Ends proc's process group: SIGTERM first, so that a tool which runs
    its own children in other groups (ninja's compilers) stops them too;
    after up to 5 s, or at once on a second Ctrl-C, SIGKILL for any member
    still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
    proc.wait()


def first_line(argv, env=None):
    """First output line of a version command, or 'unknown' if it fails."""
    try:
        out = subprocess.run(argv, text=True, stdout=subprocess.PIPE,
                             env=dict(os.environ, **(env or {})),
                             stderr=subprocess.STDOUT, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    return lines[0] if lines else "unknown"


def _unescape_mount_field(field):
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t")
            .replace("\\012", "\n").replace("\\134", "\\"))


def mounts():
    """List of (mountpoint, fstype) currently mounted."""
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return [(_unescape_mount_field(p[1]), p[2])
                for p in (line.split() for line in f) if len(p) >= 3]


def is_mounted(path):
    return any(m == path for m, _ in mounts())


def mounts_under(directory):
    prefix = directory.rstrip("/") + "/"
    return [m for m, _ in mounts() if m == directory or m.startswith(prefix)]


def _processes():
    """(pid, /proc/PID path) of every process but this one."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name), entry.path


def _read_proc(path):
    """Bytes of a /proc file, or None once its process has exited."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def running_programs(names):
    """(pid, name) of every process whose command name is one of names."""
    found = []
    for pid, path in _processes():
        comm = _read_proc(os.path.join(path, "comm"))
        name = comm.decode(errors="replace").strip() if comm else None
        if name in names:
            found.append((pid, name))
    return sorted(found)


def fs_type(path):
    """File system type of the mount holding path (longest prefix match)."""
    best, kind = "", "unknown"
    for mountpoint, fstype in mounts():
        inside = path == mountpoint or path.startswith(
            mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) > len(best):
            best, kind = mountpoint, fstype
    return kind


def block_device_stat(path):
    """The sysfs stat file of the block device holding path, or None (a file
    system with no block device of its own, such as tmpfs or overlayfs)."""
    dev = os.stat(path).st_dev
    stat = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat"
    return stat if os.path.exists(stat) else None


def disk_counters(stat_path):
    """(bytes read, seconds with I/O in flight) of a block device so far, from
    its sysfs stat file (Documentation/block/stat.rst: sectors are 512
    bytes whatever the device's own sector size)."""
    with open(stat_path, encoding="ascii") as f:
        fields = f.read().split()
    return int(fields[2]) * 512, int(fields[9]) / 1000


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """CPU-seconds all CPUs have been busy so far, from /proc/stat: user,
    nice, system, irq and softirq (guest time is inside user). Idle, iowait
    and steal, the hypervisor's time, are not work done here."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def process_cpu_seconds(pids):
    """User plus system CPU-seconds of the given processes (all their
    threads) so far; a process that has exited counts as 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start
        # after its last ')'. utime and stime are fields 14 and 15.
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def drop_caches():
    """Writes back dirty pages and drops the page, dentry and inode caches."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError as e:
        raise BenchError(f"cannot drop caches (run as root): {e}") from e


FUSE_IO_URING_PARAM = "/sys/module/fuse/parameters/enable_uring"


def set_fuse_io_uring(value):
    """Sets the fuse module's enable_uring ("Y" or "N"), which lets FUSE
    daemons that ask for it serve requests over io_uring (Linux 6.14+);
    returns the previous value, or None when this kernel has no such
    setting."""
    try:
        with open(FUSE_IO_URING_PARAM, "r+", encoding="ascii") as f:
            before = f.read().strip()
            f.seek(0)
            f.write(value + "\n")
            return before
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BenchError(f"cannot set {FUSE_IO_URING_PARAM}: {e}") from e


def warm_free_memory(nbytes):
    """Has the kernel allocate and zero nbytes of fresh anonymous memory, then
    frees it.

    On a VM that reports free pages to its hypervisor (as these do), the
    first touch of memory that has been free for a while costs about four
    times a normal page fault. A job that allocates a lot (cryfs's cold read)
    leaves the next system in the rotation paying that for its page cache.
    Touching the memory first gives every measurement the same start:
    recently freed pages. MAP_POPULATE has the kernel touch it without a
    user page fault per 4 KiB: at about 13 us per fault on the VM of
    2026-12-05, writing to 3 GiB took 10 s, populating it 0.7 s. Capped at
    half of MemFree, so that it never evicts the page cache a warm job
    relies on."""
    nbytes = min(nbytes, _mem_free() // 2)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    with mmap.mmap(-1, nbytes, flags=flags):
        pass


def _mem_free():
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemFree:"):
                return int(line.split()[1]) * 1024
    raise BenchError("no MemFree in /proc/meminfo")


def fsync_dir(path):
    """fsync on a directory: the one durability request FUSE forwards to the
    daemon for a whole tree (sync(1) only flushes the kernel's pages)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some FUSE file systems do not implement fsyncdir
    finally:
        os.close(fd)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids_with_an_arg(matches):
    found = []
    for pid, path in _processes():
        cmdline = _read_proc(os.path.join(path, "cmdline"))
        argv = cmdline.split(b"\0") if cmdline else []
        if any(matches(a) for a in argv) and pid_alive(pid):
            found.append(pid)
    return found


def pids_with_arg(arg):
    """PIDs of processes whose argv contains arg exactly (our daemons are
    found by their unique mountpoint path)."""
    return _pids_with_an_arg(lambda a: a == arg.encode())


def pids_naming(text):
    """PIDs of processes with an argument that contains text, such as a
    temp dir that their --store or mount point lies in."""
    return _pids_with_an_arg(lambda a: text.encode() in a)


def wait_gone(pid, timeout):
    """True once pid has exited (a zombie counts), False after timeout s."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def stop_pid(pid, grace):
    """Waits up to grace seconds for pid to exit by itself, then SIGTERMs it
    (only ever called for processes this run started)."""
    if not wait_gone(pid, grace):
        warn(f"pid {pid} still running after {grace} s; sending SIGTERM")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid, 10)


def fuse_unmount(path):
    """fusermount3 -u with a few retries for a briefly busy mount; a lazy
    unmount as the last resort so nothing is left behind."""
    for _ in range(20):
        if not is_mounted(path):
            return
        if subprocess.run(["fusermount3", "-u", path],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.25)
    warn(f"{path} stays busy; detaching it lazily")
    subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def remove_tree(path):
    """rm -rf that removes the subtrees two levels down concurrently: after
    drop_caches each unlink waits for a metadata read, and the disk serves
    many at once (cryfs keeps one file per 16 KiB block)."""
    if not os.path.lexists(path):
        return
    units = []
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            units += [e.path for e in os.scandir(entry.path)]
        else:
            units.append(entry.path)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(_remove, units))
    shutil.rmtree(path, ignore_errors=True)

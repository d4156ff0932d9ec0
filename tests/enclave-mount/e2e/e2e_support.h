// Test support for the end-to-end suite: runs the real `enclavefs-host` and
// `enclavefs` binaries against a store in a fresh /tmp directory and mounts
// real FUSE filesystems.
//
// E2eVolume owns everything it starts: the temp directory, the host process
// and the mount daemons. Its destructor unmounts (fusermount3 -u, lazily if
// the mount is busy), kills any daemon or host still running by pid, and
// removes the directory, so a failed assertion never leaks a mount.
//
// The mount daemon is a grandchild of the test (enclavefs forks it); the
// process makes itself a child subreaper (PR_SET_CHILD_SUBREAPER) so that
// daemon is reparented to it and can be waited for and reaped by pid.
//
// Thread safety: none; use one E2eVolume from the test's main thread.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace enclavefs::e2e {

// Paths of the binaries under test, set by CMake.
inline constexpr char kEnclavefsBinary[] = ENCLAVEFS_BINARY;
inline constexpr char kHostBinary[] = ENCLAVEFS_HOST_BINARY;
inline constexpr char kStoreTamperBinary[] = STORE_TAMPER_BINARY;
inline constexpr char kDenyIoUringBinary[] = DENY_IO_URING_BINARY;

// errno of a failed syscall result (< 0), else 0:
// EXPECT_EQ(Errno(mkdir(path, 0755)), EEXIST).
inline int Errno(long rc) { return rc < 0 ? errno : 0; }

// Owns a file descriptor; closes it at destruction.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

struct CommandResult {
  int exit_code = -1;  // -1 if killed by a signal or not started
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (searched in PATH) with argv, waits for it and captures its
// output. `cwd` empty: the current directory.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::string& cwd = "");
// Runs `script` with /bin/sh -c.
CommandResult Shell(const std::string& script, const std::string& cwd = "");

// A directory /tmp/enclavefs-e2e-XXXXXX, removed recursively at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reads a whole file; nullopt (and errno set) on failure.
std::optional<std::string> ReadFile(const std::string& path);
// Writes `data` to `path` (created or truncated), fsyncs it. False on error.
bool WriteFileSynced(const std::string& path, const std::string& data);
// `size` deterministic pseudo-random bytes derived from `seed`.
std::string PatternBytes(uint64_t seed, size_t size);

// Waits (up to `timeout_ms`) for process `pid` to exit, reaping it when it
// is our child. True if it is gone.
bool WaitGone(pid_t pid, int timeout_ms);

// One host store with one formatted volume, and its mounts.
class E2eVolume {
 public:
  // Starts the host, creates volume "vol" with `quota` and formats it with
  // a fresh key file. Check ok() afterwards (or use ASSERT_TRUE(ok())).
  explicit E2eVolume(const std::string& quota = "1GiB");
  ~E2eVolume();
  E2eVolume(const E2eVolume&) = delete;
  E2eVolume& operator=(const E2eVolume&) = delete;

  // Empty when setup succeeded, else what failed.
  const std::string& setup_error() const { return setup_error_; }
  bool ok() const { return setup_error_.empty(); }

  const std::string& dir() const { return dir_.path(); }
  const std::string& mountpoint() const { return mountpoint_; }
  const std::string& store() const { return store_; }
  std::string host_address() const { return "unix:" + socket_; }
  // mountpoint() + "/" + relative
  std::string Path(const std::string& relative) const;

  // Host service. StartHost returns "" once it listens, else the reason.
  std::string StartHost();
  // SIGTERM (graceful) or SIGKILL; waits for the exit. Returns the exit
  // code for SIGTERM (0 expected), -1 when killed.
  int StopHost(bool kill9 = false);
  bool host_running() const { return host_pid_ > 0; }

  // `enclavefs mount` in background mode with the volume's key, plus
  // `extra` arguments. On success the mount is live and daemon_pid() set.
  // `host`: the --host value, host_address() if empty; enclavefs commands
  // run in dir(), so a relative unix path is taken from there.
  CommandResult Mount(const std::vector<std::string>& extra = {},
                      const std::string& host = "");
  // Later Mounts run `wrapper... enclavefs mount ...` (e.g. under
  // kDenyIoUringBinary); empty runs enclavefs directly.
  void set_mount_wrapper(std::vector<std::string> wrapper) {
    mount_wrapper_ = std::move(wrapper);
  }
  // `enclavefs unmount MOUNTPOINT` (waits for the daemon's final commit).
  CommandResult Unmount();
  // SIGKILL to the mount daemon; true once it is gone. The dead mount
  // stays until ForceUnmount.
  bool KillDaemon();
  // fusermount3 -u; true if it worked.
  bool ForceUnmount();
  // KillDaemon, then ForceUnmount: a crash of the enclave-side daemon.
  bool CrashMount() { return KillDaemon() && ForceUnmount(); }
  bool mounted() const { return mounted_; }
  pid_t daemon_pid() const { return daemon_pid_; }

  // Any enclavefs subcommand needing --host, --volume and the key
  // (format, fsck, info): e.g. Enclavefs("fsck").
  CommandResult Enclavefs(const std::string& subcommand,
                          const std::vector<std::string>& extra = {},
                          const std::string& host = "");

 private:
  void Setup(const std::string& quota);
  void CleanUp();
  std::vector<std::string> EnclavefsArgv(const std::string& subcommand,
                                         const std::vector<std::string>& extra,
                                         const std::string& host) const;

  TempDir dir_;
  std::string store_;
  std::string socket_;
  std::string key_file_;
  std::string mountpoint_;
  std::string host_log_;
  std::string setup_error_;
  pid_t host_pid_ = -1;
  pid_t daemon_pid_ = -1;
  bool mounted_ = false;
  std::vector<std::string> mount_wrapper_;
};

}  // namespace enclavefs::e2e

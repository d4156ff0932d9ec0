// `enclavefs mount` and `enclavefs unmount`.
//
// Background mode: the parent forks one child and waits on a ready pipe.
// The child detaches (setsid, stdin from /dev/null, stdout/stderr to the
// log file, cwd /), opens the volume and mounts it, writes its pid file,
// then sends one status byte (an ExitCode) and a message. The parent prints
// that message and exits with that code, so `enclavefs mount` returns 0
// only once the mount is live, and a failure is reported by the command the
// user ran. If the child dies first, the pipe closes empty.
#include "enclave-mount/mount.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "blockstore/transport.h"
#include "blockstore/units.h"
#include "enclave-mount/commands.h"
#include "enclave-mount/fuse_ops.h"
#include "fs/anchor.h"
#include "fs/filesystem.h"

extern char** environ;

namespace enclavefs {

std::string RunDirectory() {
  if (const char* dir = std::getenv("ENCLAVEFS_RUN_DIR"); dir && *dir)
    return dir;
  if (geteuid() == 0) return "/run/enclavefs";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    return std::string(xdg) + "/enclavefs";
  }
  return "/tmp/enclavefs-" + std::to_string(geteuid());
}

std::string EscapePath(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '.' || c == '_') {
      out.push_back(static_cast<char>(c));
    } else if (c == '/') {
      out.push_back('-');
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string PidFilePath(const std::string& run_dir,
                        const std::string& mountpoint) {
  return run_dir + "/mount" + EscapePath(mountpoint) + ".pid";
}

std::string FinalErrorPath(const std::string& run_dir,
                           const std::string& mountpoint) {
  return run_dir + "/mount" + EscapePath(mountpoint) + ".error";
}

std::string DefaultLogPath(const std::string& run_dir,
                           const std::string& volume) {
  return run_dir + "/" + volume + ".log";
}

namespace {

// The state letter of /proc/<pid>/stat ("pid (comm) state ..."; comm may
// hold spaces and ')'), or nullopt once the process is gone.
std::optional<char> ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) {
    return std::nullopt;
  }
  return line[close + 2];
}

}  // namespace

bool DaemonAlive(pid_t pid) {
  if (pid <= 0) return false;
  const std::optional<char> state = ProcessState(pid);
  return state && *state != 'Z' && *state != 'X';
}

namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Everything a mount needs, checked before forking so usage errors come
// straight from the command.
struct MountPlan {
  VolumeTarget target;
  KeySource key;
  bool takeover = false;
  std::string mountpoint;  // absolute
  std::string pid_file;
  std::string error_file;
  std::string log_file;
  VolumeOptions volume;
  FuseMountOptions fuse;
};

Outcome Usage(std::string message) {
  return Outcome::Fail(ExitCode::kUsage, std::move(message));
}

std::string Absolute(const std::string& path) {
  return stdfs::absolute(path).lexically_normal().string();
}

std::optional<pid_t> ReadPid(const std::string& pid_file) {
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

// The default cache: an eighth of the memory, within [64 MiB, 1 GiB]. A
// cache that holds the working set is what makes cold random reads fast
// (docs/performance.md).
uint64_t AutoCacheSize() {
  constexpr uint64_t kMin = 64u << 20, kMax = 1u << 30;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return kMin;
  const uint64_t eighth = static_cast<uint64_t>(pages) * page_size / 8;
  return std::clamp(eighth, kMin, kMax);
}

Outcome Prepare(const CliOptions& o, MountPlan* plan) {
  plan->target = o.target;
  // The daemon runs in /: a relative socket path is resolved here, as key
  // and anchor files are. A bad address is reported by the lease.
  if (Result<Address> address = ParseAddress(plan->target.host);
      address.ok() && address->kind == Address::Kind::kUnix) {
    address->path = Absolute(address->path);
    plan->target.host = address->ToString();
  }
  plan->takeover = o.takeover;
  std::error_code ec;
  if (!stdfs::is_directory(o.mountpoint, ec)) {
    return Usage("mountpoint " + o.mountpoint + " is not a directory");
  }
  plan->mountpoint = Absolute(o.mountpoint);
  Result<uint64_t> cache = o.cache_size == "auto"
                               ? Result<uint64_t>(AutoCacheSize())
                               : ParseSize(o.cache_size);
  if (!cache.ok()) return Usage(cache.status().message());
  plan->volume.cache_bytes = *cache;
  Result<uint64_t> dirty = ParseSize(o.dirty_limit);
  if (!dirty.ok()) return Usage(dirty.status().message());
  if (*dirty == 0 || *dirty > kMaxDirtyLimit) {
    return Usage("--dirty-limit must be between 1 byte and " +
                 HumanSize(kMaxDirtyLimit));
  }
  plan->volume.dirty_limit_bytes = *dirty;
  Result<uint64_t> write_behind = o.write_behind == "0"
                                      ? Result<uint64_t>(uint64_t{0})
                                      : ParseSize(o.write_behind);
  if (!write_behind.ok()) return Usage(write_behind.status().message());
  plan->volume.write_behind_bytes = *write_behind;
  Result<std::chrono::milliseconds> interval = ParseDuration(o.commit_interval);
  if (!interval.ok()) return Usage(interval.status().message());
  plan->volume.commit_interval = *interval;
  plan->volume.expect_generation = o.expect_generation;
  if (!o.anchor_file.empty()) {
    plan->volume.anchor = std::make_shared<AnchorFile>(Absolute(o.anchor_file));
  } else if (!o.anchor_command.empty()) {
    plan->volume.anchor = std::make_shared<AnchorCommand>(o.anchor_command);
  }
  plan->fuse.mountpoint = plan->mountpoint;
  plan->fuse.volume = o.target.volume;
  plan->fuse.extra_options = o.fuse_options;
  plan->fuse.xattrs = o.xattrs;
  plan->fuse.writeback_share = o.writeback_share;
  plan->fuse.block_fill = !o.no_block_fill;
  plan->fuse.io_uring = !o.no_io_uring;

  const std::string run_dir = RunDirectory();
  stdfs::create_directories(run_dir, ec);
  if (ec) return Usage("cannot create " + run_dir + ": " + ec.message());
  plan->pid_file = PidFilePath(run_dir, plan->mountpoint);
  plan->error_file = FinalErrorPath(run_dir, plan->mountpoint);
  if (auto pid = ReadPid(plan->pid_file); pid && DaemonAlive(*pid)) {
    return Outcome::Fail(ExitCode::kFailure,
                         plan->mountpoint +
                             " is already served by enclavefs pid " +
                             std::to_string(*pid));
  }
  plan->log_file = o.log_file.empty() ? DefaultLogPath(run_dir, o.target.volume)
                                      : Absolute(o.log_file);
  return ResolveKeySource(
      o.key, {PromptIfTerminal(Prompt::kOnce), "Passphrase", ""}, &plan->key);
}

// ---- ready pipe ----

void SendReady(int fd, const Outcome& outcome) {
  std::string message(1, static_cast<char>(outcome.code));
  message += outcome.message;
  size_t done = 0;
  while (done < message.size()) {
    ssize_t n = write(fd, message.data() + done, message.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
}

Outcome ReceiveReady(int fd, const std::string& log_file) {
  std::string message;
  char buf[512];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    message.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (message.empty()) {
    return Outcome::Fail(
        ExitCode::kFailure,
        "the mount daemon exited before the mount was ready; see " + log_file);
  }
  return {static_cast<ExitCode>(static_cast<unsigned char>(message[0])),
          message.substr(1)};
}

// Detaches the child from the terminal and the caller's directory.
Outcome Detach(const MountPlan& plan) {
  setsid();
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int log_fd = open(plan.log_file.c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (null_fd < 0 || log_fd < 0) {
    return Outcome::Fail(
        ExitCode::kFailure,
        "cannot open log file " + plan.log_file + ": " + std::strerror(errno));
  }
  std::fflush(stdout);
  std::fflush(stderr);
  dup2(null_fd, STDIN_FILENO);
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  close(null_fd);
  close(log_fd);
  if (chdir("/") != 0) spdlog::warn("chdir /: {}", std::strerror(errno));
  return Outcome::Ok();
}

// Opens and mounts the volume, tells the waiting parent (ready_fd >= 0) or
// the terminal, then serves until unmounted. Returns the exit code.
int Serve(const MountPlan& plan, int ready_fd) {
  auto finish = [&](const Outcome& outcome) {
    if (ready_fd >= 0) {
      if (!outcome.ok()) spdlog::error("mount failed: {}", outcome.message);
      SendReady(ready_fd, outcome);
      ready_fd = -1;
    } else if (outcome.ok()) {
      std::printf("%s\n", outcome.message.c_str());
      std::fflush(stdout);
    } else {
      Report(outcome);
    }
    return static_cast<int>(outcome.code);
  };
  LeasedVolume leased;
  Outcome step = OpenLeased(plan.target, plan.key, plan.takeover, &leased);
  if (!step.ok()) return finish(step);
  std::unique_ptr<Volume> volume;
  step = OpenVolume(leased, plan.volume, &volume);
  if (!step.ok()) return finish(step);
  const std::string opened =
      "volume " + plan.target.volume + " at generation " +
      std::to_string(volume->generation()) + ", root " + volume->root_hash();
  spdlog::info("opened {}", opened);
  Result<std::unique_ptr<Filesystem>> fs =
      Filesystem::Open(std::move(volume), leased.store, getuid(), getgid());
  if (!fs.ok()) return finish(FailureAt(Step::kOther, fs.status()));
  Result<std::unique_ptr<FuseServer>> server =
      FuseServer::Mount(std::move(fs).value(), leased.store, plan.fuse);
  if (!server.ok()) {
    const bool usage = server.status().code() == StatusCode::kInvalidArgument;
    return finish(Outcome::Fail(usage ? ExitCode::kUsage : ExitCode::kFailure,
                                server.status().message()));
  }
  std::error_code ec;
  stdfs::remove(plan.error_file, ec);  // an earlier daemon's, never collected
  {
    std::ofstream pid(plan.pid_file, std::ios::trunc);
    pid << getpid() << "\n";
  }
  finish(
      Outcome{ExitCode::kOk, "mounted " + opened + " on " + plan.mountpoint});
  Status served = (*server)->Run();
  server->reset();
  if (!served.ok()) {
    spdlog::error("unmounted with an error: {}", served.ToString());
    std::ofstream(plan.error_file, std::ios::trunc)
        << served.ToString() << "\n";
  }
  stdfs::remove(plan.pid_file, ec);
  if (!served.ok()) return static_cast<int>(ExitCode::kFailure);
  spdlog::info("unmounted {}; volume committed and released", plan.mountpoint);
  return 0;
}

// fusermount3 -u MOUNTPOINT; the way to unmount without privileges.
Outcome RunFusermount(const std::string& mountpoint) {
  const char* argv[] = {"fusermount3", "-u", mountpoint.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "fusermount3", nullptr, nullptr,
                   const_cast<char**>(argv), environ) != 0) {
    return Outcome::Fail(ExitCode::kFailure, "cannot run fusermount3");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Outcome::Fail(ExitCode::kFailure,
                         "fusermount3 -u " + mountpoint + " failed");
  }
  return Outcome::Ok();
}

Outcome Unmount(const std::string& mountpoint) {
  if (geteuid() != 0) return RunFusermount(mountpoint);
  if (umount2(mountpoint.c_str(), 0) == 0) return Outcome::Ok();
  if (errno == EINVAL) {
    return Outcome::Fail(ExitCode::kFailure, mountpoint + " is not mounted");
  }
  if (errno == EBUSY) {
    return Outcome::Fail(ExitCode::kBusy,
                         mountpoint + " is busy: files are still open");
  }
  return Outcome::Fail(ExitCode::kFailure, "cannot unmount " + mountpoint +
                                               ": " + std::strerror(errno));
}

}  // namespace

int RunMount(const CliOptions& o) {
  MountPlan plan;
  Outcome prepared = Prepare(o, &plan);
  if (!prepared.ok()) return Report(prepared);
  if (o.foreground) return Serve(plan, -1);

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    return Report(Outcome::Fail(ExitCode::kFailure,
                                std::string("pipe: ") + std::strerror(errno)));
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t child = fork();
  if (child < 0) {
    return Report(Outcome::Fail(ExitCode::kFailure,
                                std::string("fork: ") + std::strerror(errno)));
  }
  if (child == 0) {
    close(ready[0]);
    Outcome detached = Detach(plan);
    if (!detached.ok()) {
      SendReady(ready[1], detached);
      _exit(static_cast<int>(detached.code));
    }
    _exit(Serve(plan, ready[1]));
  }
  close(ready[1]);
  Outcome outcome = ReceiveReady(ready[0], plan.log_file);
  if (!outcome.ok()) {
    // Reap the child if it already exited, so no zombie lingers in scripts.
    waitpid(child, nullptr, WNOHANG);
    return Report(outcome);
  }
  std::printf("%s (pid %d, log %s)\n", outcome.message.c_str(),
              static_cast<int>(child), plan.log_file.c_str());
  return 0;
}

int RunUnmount(const CliOptions& o) {
  Result<std::chrono::milliseconds> timeout = ParseDuration(o.unmount_timeout);
  if (!timeout.ok()) return Report(Usage(timeout.status().message()));
  const std::string mountpoint = Absolute(o.mountpoint);
  const std::string pid_file = PidFilePath(RunDirectory(), mountpoint);
  const std::optional<pid_t> pid = ReadPid(pid_file);
  Outcome unmounted = Unmount(mountpoint);
  if (!unmounted.ok()) return Report(unmounted);
  if (pid) {
    std::error_code ec;
    const auto deadline = Clock::now() + *timeout;
    const auto notice = Clock::now() + std::chrono::seconds(1);
    bool told = false;
    while (DaemonAlive(*pid) && stdfs::exists(pid_file, ec)) {
      if (Clock::now() >= deadline) {
        return Report(Outcome::Fail(
            ExitCode::kFailure, "enclavefs (pid " + std::to_string(*pid) +
                                    ") is still committing after " +
                                    o.unmount_timeout + "; it keeps running"));
      }
      if (!told && Clock::now() >= notice) {
        std::fprintf(stderr,
                     "waiting for enclavefs (pid %d) to commit and release the "
                     "volume...\n",
                     static_cast<int>(*pid));
        told = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stdfs::remove(pid_file, ec);  // stale if the daemon died without cleanup
  }
  const std::string error_file = FinalErrorPath(RunDirectory(), mountpoint);
  if (std::ifstream in(error_file); in) {
    std::string why;
    std::getline(in, why);
    std::error_code ec;
    stdfs::remove(error_file, ec);
    return Report(Outcome::Fail(
        ExitCode::kFailure,
        "unmounted " + mountpoint + ", but the final commit failed (" + why +
            "): changes since the last commit or fsync are lost"));
  }
  std::printf("unmounted %s\n", mountpoint.c_str());
  return 0;
}

}  // namespace enclavefs

#include "tests/enclave-mount/e2e/e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace enclavefs::e2e {
namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kVolume[] = "vol";

// argv/envp for posix_spawn: pointers into `strings`, null-terminated.
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The environment plus ENCLAVEFS_RUN_DIR, so pid and log files of mounts
// made by a test stay in its own directory.
std::vector<std::string> EnvironmentWith(const std::string& run_dir) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "ENCLAVEFS_RUN_DIR=", 18) != 0) env.emplace_back(*e);
  }
  if (!run_dir.empty()) env.push_back("ENCLAVEFS_RUN_DIR=" + run_dir);
  return env;
}

// Spawns argv with stdout+stderr on `out_fd`. Returns the pid or -1.
pid_t Spawn(std::vector<std::string> argv, int out_fd, const std::string& cwd,
            const std::string& run_dir) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  if (!cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  }
  std::vector<std::string> env = EnvironmentWith(run_dir);
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, c_argv[0], &actions, nullptr, c_argv.data(),
                              c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

CommandResult RunIn(const std::vector<std::string>& argv,
                    const std::string& cwd, const std::string& run_dir) {
  CommandResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return result;
  const pid_t pid = Spawn(argv, fds[1], cwd, run_dir);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    result.output = "cannot start " + argv[0];
    return result;
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool IsZombieOrGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || line.size() < paren + 3 ||
         line[paren + 2] == 'Z';
}

// "... (pid 1234, log ...)" printed by `enclavefs mount`.
pid_t ParseDaemonPid(const std::string& output) {
  const size_t at = output.rfind("(pid ");
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::strtol(output.c_str() + at + 5, nullptr, 10));
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::string& cwd) {
  return RunIn(argv, cwd, "");
}

CommandResult Shell(const std::string& script, const std::string& cwd) {
  return RunCommand({"/bin/sh", "-c", script}, cwd);
}

TempDir::TempDir() {
  std::string pattern = "/tmp/enclavefs-e2e-XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  stdfs::remove_all(path_, ec);
}

std::optional<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string data;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      close(fd);
      errno = saved;
      return std::nullopt;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

bool WriteFileSynced(const std::string& path, const std::string& data) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  return close(fd) == 0 && synced;
}

std::string PatternBytes(uint64_t seed, size_t size) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = rng();
    std::memcpy(out.data() + i, &word, std::min<size_t>(8, size - i));
  }
  return out;
}

bool WaitGone(pid_t pid, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const pid_t reaped = waitpid(pid, nullptr, WNOHANG);
    if (reaped == pid) return true;
    if (reaped < 0 && errno == ECHILD && IsZombieOrGone(pid)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

E2eVolume::E2eVolume(const std::string& quota) {
  // Orphaned mount daemons become our children, so we can reap them.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  Setup(quota);
}

E2eVolume::~E2eVolume() { CleanUp(); }

std::string E2eVolume::Path(const std::string& relative) const {
  return mountpoint_ + "/" + relative;
}

void E2eVolume::Setup(const std::string& quota) {
  if (dir().empty()) {
    setup_error_ = "mkdtemp failed";
    return;
  }
  store_ = dir() + "/store";
  socket_ = dir() + "/host.sock";
  key_file_ = dir() + "/volume.key";
  mountpoint_ = dir() + "/mnt";
  host_log_ = dir() + "/host.log";
  stdfs::create_directories(mountpoint_);
  stdfs::create_directories(dir() + "/run");

  std::random_device random;
  std::ostringstream hex;
  for (int i = 0; i < 8; ++i) {
    hex << std::hex;
    hex.width(8);
    hex.fill('0');
    hex << random();
  }
  if (!WriteFileSynced(key_file_, hex.str() + "\n") ||
      chmod(key_file_.c_str(), 0600) != 0) {
    setup_error_ = "cannot write the key file";
    return;
  }
  if (std::string error = StartHost(); !error.empty()) {
    setup_error_ = error;
    return;
  }
  CommandResult created = RunCommand({kHostBinary, "volume", "create", kVolume,
                                      "--quota", quota, "--store", store_});
  if (created.exit_code != 0) {
    setup_error_ = "volume create: " + created.output;
    return;
  }
  CommandResult formatted = Enclavefs("format");
  if (formatted.exit_code != 0) setup_error_ = "format: " + formatted.output;
}

std::string E2eVolume::StartHost() {
  if (host_running()) return "host already running";
  const int log_fd =
      open(host_log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return "cannot open " + host_log_;
  const auto log_start = static_cast<size_t>(lseek(log_fd, 0, SEEK_END));
  host_pid_ = Spawn({kHostBinary, "serve", "--store", store_, "--listen",
                     host_address(), "--workers", "4"},
                    log_fd, "", "");
  close(log_fd);
  if (host_pid_ < 0) return "cannot start enclavefs-host";
  // `serve` prints "listening on" once every listener is bound.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    std::optional<std::string> log = ReadFile(host_log_);
    if (log && log->find("listening on", log_start) != std::string::npos) {
      return "";
    }
    if (WaitGone(host_pid_, 0)) {
      host_pid_ = -1;
      return "enclavefs-host exited: " + ReadFile(host_log_).value_or("");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "enclavefs-host did not start listening within 20 s";
}

int E2eVolume::StopHost(bool kill9) {
  if (!host_running()) return -1;
  kill(host_pid_, kill9 ? SIGKILL : SIGTERM);
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  pid_t reaped = 0;
  while ((reaped = waitpid(host_pid_, &status, WNOHANG)) == 0 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (reaped == 0) {  // stuck: do not leave it behind
    kill(host_pid_, SIGKILL);
    waitpid(host_pid_, &status, 0);
  }
  host_pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

CommandResult E2eVolume::Mount(const std::vector<std::string>& extra,
                               const std::string& host) {
  std::vector<std::string> args = {"--log-file", dir() + "/mount.log",
                                   mountpoint_};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<std::string> argv = mount_wrapper_;
  std::vector<std::string> command = EnclavefsArgv("mount", args, host);
  argv.insert(argv.end(), command.begin(), command.end());
  CommandResult result = RunIn(argv, dir(), dir() + "/run");
  if (result.exit_code == 0) {
    mounted_ = true;
    daemon_pid_ = ParseDaemonPid(result.output);
  }
  return result;
}

CommandResult E2eVolume::Unmount() {
  CommandResult result =
      RunIn({kEnclavefsBinary, "unmount", mountpoint_}, "", dir() + "/run");
  // Exit 1 after the unmount itself: the daemon's final commit failed.
  const bool unmounted =
      result.exit_code == 0 ||
      result.output.find("but the final commit failed") != std::string::npos;
  if (unmounted) {
    mounted_ = false;
    if (daemon_pid_ > 0) WaitGone(daemon_pid_, 10000);
    daemon_pid_ = -1;
  }
  return result;
}

bool E2eVolume::KillDaemon() {
  if (daemon_pid_ <= 0) return false;
  kill(daemon_pid_, SIGKILL);
  const bool gone = WaitGone(daemon_pid_, 10000);
  daemon_pid_ = -1;
  return gone;
}

bool E2eVolume::ForceUnmount() {
  const bool unmounted =
      RunCommand({"fusermount3", "-u", mountpoint_}).exit_code == 0;
  if (unmounted) mounted_ = false;
  return unmounted;
}

std::vector<std::string> E2eVolume::EnclavefsArgv(
    const std::string& subcommand, const std::vector<std::string>& extra,
    const std::string& host) const {
  std::vector<std::string> argv = {
      kEnclavefsBinary, subcommand,
      "--host",         host.empty() ? host_address() : host,
      "--volume",       kVolume,
      "--key-file",     key_file_};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

CommandResult E2eVolume::Enclavefs(const std::string& subcommand,
                                   const std::vector<std::string>& extra,
                                   const std::string& host) {
  return RunIn(EnclavefsArgv(subcommand, extra, host), dir(), dir() + "/run");
}

void E2eVolume::CleanUp() {
  if (dir().empty()) return;
  if (mounted_) {
    if (RunCommand({"fusermount3", "-u", mountpoint_}).exit_code != 0) {
      RunCommand({"fusermount3", "-u", "-z", mountpoint_});
    }
    mounted_ = false;
  }
  if (daemon_pid_ > 0 && !WaitGone(daemon_pid_, 10000)) {
    kill(daemon_pid_, SIGKILL);
    WaitGone(daemon_pid_, 5000);
  }
  StopHost();
}

}  // namespace enclavefs::e2e

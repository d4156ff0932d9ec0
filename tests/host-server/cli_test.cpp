// Runs the real enclavefs-host binary: volume commands, serve with a config
// file, refusals through the admin socket, crash durability and graceful
// shutdown. Every child is killed and reaped by its HostProcess.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "blockstore/malloc_tuning.h"
#include "tests/host-server/test_support.h"

extern char** environ;

namespace enclavefs {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::Opcode;
using testing::RawClient;
using testing::TempDir;
using testing::UnixAddress;

constexpr auto kTimeout = std::chrono::seconds(30);

// One spawned enclavefs-host with stdout and stderr captured.
class HostProcess {
 public:
  explicit HostProcess(const std::vector<std::string>& args) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<std::string> argv_storage = {ENCLAVEFS_HOST_BINARY};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) !=
        0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    fds_[0] = out[0];
    fds_[1] = err[0];
  }
  ~HostProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  HostProcess(const HostProcess&) = delete;
  HostProcess& operator=(const HostProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // True once stdout holds a line containing `needle`; false if the process
  // ends or the timeout passes first.
  bool WaitForOutput(std::string_view needle) {
    const auto deadline = Clock::now() + kTimeout;
    while (out_.find(needle) == std::string::npos) {
      if (Clock::now() > deadline || (fds_[0] < 0 && fds_[1] < 0)) return false;
      Pump(100);
    }
    return true;
  }

  void Signal(int signal_number) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, signal_number);
  }

  // Exit code, 128+N if killed by signal N, -1 (after SIGKILL) on timeout.
  int Wait() {
    const auto deadline = Clock::now() + kTimeout;
    while (!reaped_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        exit_code_ =
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
        return -1;
      }
      Pump(20);
    }
    while (fds_[0] >= 0 || fds_[1] >= 0) Pump(1000);
    return exit_code_;
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  void Pump(int timeout_ms) {
    pollfd polls[2];
    int count = 0;
    for (int fd : fds_) {
      if (fd >= 0) polls[count++] = {.fd = fd, .events = POLLIN, .revents = 0};
    }
    if (count == 0 || ::poll(polls, count, timeout_ms) <= 0) return;
    for (int i = 0; i < count; ++i) {
      if (polls[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(polls[i].fd, buf, sizeof buf);
      const int which = polls[i].fd == fds_[0] ? 0 : 1;
      if (n > 0) {
        (which == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds_[which]);
        fds_[which] = -1;
      }
    }
  }

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};  // stdout, stderr
  bool reaped_ = false;
  int exit_code_ = -1;
  std::string out_, err_;
};

struct RunResult {
  int exit_code;
  std::string out;
  std::string err;
};

RunResult RunHost(const std::vector<std::string>& args) {
  HostProcess process(args);
  const int code = process.Wait();
  return {code, process.out(), process.err()};
}

size_t LineCount(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class CliTest : public ::testing::Test {
 protected:
  std::string Store() const { return dir_.Sub("store"); }
  std::string ClientSocket() const { return dir_.Sub("client.sock"); }

  RunResult Volume(std::vector<std::string> args) {
    args.insert(args.begin(), "volume");
    args.push_back("--store");
    args.push_back(Store());
    return RunHost(args);
  }
  // Starts `serve` on a unix socket and waits until it listens.
  std::unique_ptr<HostProcess> Serve(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"serve", "--store", Store(), "--listen",
                                     "unix:" + ClientSocket()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto process = std::make_unique<HostProcess>(args);
    EXPECT_TRUE(process->WaitForOutput("listening on")) << process->err();
    return process;
  }
  // Expects exactly one "enclavefs-host: ..." line on stderr with `text`.
  static void ExpectRefusal(const RunResult& result, int exit_code,
                            std::string_view text) {
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    EXPECT_EQ(LineCount(result.err), 1u) << result.err;
    EXPECT_TRUE(result.err.starts_with("enclavefs-host: ")) << result.err;
    EXPECT_NE(result.err.find(text), std::string::npos) << result.err;
  }

  TempDir dir_;
};

TEST_F(
    CliTest,
    givenNoServer_whenVolumeCommandsRun_thenTheyWorkOnTheStoreAndRefuseMistakes) {
  RunResult created = Volume({"create", "alpha", "--quota", "10MiB"});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  ExpectRefusal(Volume({"create", "alpha", "--quota", "10M"}), 5, "alpha");
  ExpectRefusal(Volume({"create", "beta", "--quota", "12XB"}), 2,
                "invalid size '12XB'");
  ExpectRefusal(Volume({"create", "beta", "--quota", "0"}), 2, "invalid size");
  ExpectRefusal(Volume({"resize", "missing", "--quota", "1G"}), 3, "missing");
  EXPECT_EQ(Volume({"resize", "alpha", "--quota", "2GiB"}).exit_code, 0);
  EXPECT_EQ(Volume({"create", "beta", "--quota", "4096"}).exit_code, 0);

  RunResult listed = Volume({"list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(LineCount(listed.out), 3u) << listed.out;
  EXPECT_TRUE(listed.out.starts_with("NAME")) << listed.out;
  EXPECT_NE(listed.out.find("alpha  0 B   2 GiB"), std::string::npos)
      << listed.out;
  EXPECT_NE(listed.out.find("beta   0 B   4 KiB"), std::string::npos)
      << listed.out;

  EXPECT_EQ(Volume({"delete", "alpha"}).exit_code, 0);
  ExpectRefusal(Volume({"delete", "alpha"}), 3, "alpha");
  EXPECT_EQ(LineCount(Volume({"list"}).out), 2u);
}

TEST_F(CliTest, givenMissingArguments_whenRun_thenUsageExitCode) {
  EXPECT_EQ(RunHost({}).exit_code, 2);
  EXPECT_EQ(RunHost({"volume", "create", "x"}).exit_code, 2);
  EXPECT_EQ(RunHost({"volume", "frobnicate"}).exit_code, 2);
}

TEST_F(CliTest, givenConfigFile_whenServe_thenItsSettingsAreUsed) {
  const std::string config = dir_.Sub("host.toml");
  std::ofstream(config) << "[serve]\n"
                        << "store = \"" << Store() << "\"\n"
                        << "listen = [\"unix:" << ClientSocket() << "\"]\n"
                        << "admin-socket = \"" << dir_.Sub("adm.sock") << "\"\n"
                        << "workers = 2\n";
  HostProcess server({"serve", "--config", config});
  ASSERT_TRUE(server.WaitForOutput("listening on")) << server.err();
  EXPECT_NE(server.out().find("unix:" + ClientSocket()), std::string::npos);
  EXPECT_NE(server.out().find("adm.sock"), std::string::npos);

  auto client = RawClient::Connect(UnixAddress(ClientSocket()));
  ASSERT_TRUE(client);
  auto pong =
      client->Call(Opcode::kPing, protocol::Encode(protocol::PingMessage{"x"}));
  ASSERT_TRUE(pong.ok());
  EXPECT_EQ(pong->header.status, StatusCode::kOk);
  EXPECT_TRUE(std::filesystem::exists(Store() + "/CURRENT"));
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0) << server.err();
}

TEST_F(
    CliTest,
    givenRunningServer_whenDeletingHeldVolume_thenRefusedThroughAdminSocket) {
  auto server = Serve();
  // The server holds the store's lock, so these must go through its socket.
  EXPECT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  auto client = RawClient::Connect(UnixAddress(ClientSocket()));
  ASSERT_TRUE(client);
  ASSERT_EQ(client->Open("vol")->header.status, StatusCode::kOk);

  ExpectRefusal(Volume({"delete", "vol"}), 4, "held by a client");
  RunResult listed = Volume({"list"});
  EXPECT_NE(listed.out.find("yes"), std::string::npos) << listed.out;
  EXPECT_EQ(Volume({"resize", "vol", "--quota", "2M"}).exit_code, 0);

  ASSERT_EQ(client->Call(Opcode::kClose)->header.status, StatusCode::kOk);
  EXPECT_EQ(Volume({"delete", "vol"}).exit_code, 0);
  EXPECT_EQ(Volume({"list"}).out.find("vol"), std::string::npos);
}

TEST_F(CliTest, givenRunningServer_whenVolumeStatsJson_thenCountersOfVolume) {
  auto server = Serve();
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  RunResult before = Volume({"stats", "vol", "--json"});
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.out,
            "{\"requests\": 0, \"get_requests\": 0, \"commit_requests\": 0, "
            "\"keys_read\": 0, \"bytes_received\": 0, \"bytes_sent\": 0}\n");

  auto client = RawClient::Connect(UnixAddress(ClientSocket()));
  ASSERT_TRUE(client);
  ASSERT_EQ(client->Open("vol")->header.status, StatusCode::kOk);
  const std::string keys_payload =
      protocol::Encode(protocol::GetRequest{{"a", "b"}});
  auto got = client->Call(Opcode::kGet, keys_payload);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->header.status, StatusCode::kOk);

  RunResult after = Volume({"stats", "vol", "--json"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_NE(after.out.find("\"requests\": 2,"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("\"get_requests\": 1,"), std::string::npos)
      << after.out;
  EXPECT_NE(after.out.find("\"keys_read\": 2,"), std::string::npos)
      << after.out;
  RunResult table = Volume({"stats", "vol"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("get_requests"), std::string::npos) << table.out;
  ExpectRefusal(Volume({"stats", "missing"}), 3, "missing");
}

TEST_F(CliTest, givenNoServer_whenVolumeStats_thenClearErrorAndNonZeroExit) {
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  ExpectRefusal(Volume({"stats", "vol", "--json"}), 1,
                "no enclavefs-host server answers");
}

TEST_F(CliTest,
       givenServerWithAdminSocketElsewhere_whenVolumeList_thenSaysStoreInUse) {
  auto server = Serve({"--admin-socket", dir_.Sub("elsewhere.sock")});
  RunResult listed = Volume({"list"});
  ExpectRefusal(listed, 1, "does not answer");
  EXPECT_NE(listed.err.find("in use by a running server"), std::string::npos);
}

TEST_F(CliTest, givenDurableCommit_whenServerIsKilled_thenDataSurvivesRestart) {
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  {
    auto server = Serve();
    auto client = RawClient::Connect(UnixAddress(ClientSocket()));
    ASSERT_TRUE(client);
    ASSERT_EQ(client->Open("vol")->header.status, StatusCode::kOk);
    for (int i = 0; i < 10; ++i) {
      CommitBatch batch;
      batch.puts = {{"block" + std::to_string(i), std::string(1000, 'a' + i)}};
      batch.durable = true;
      ASSERT_EQ(client->Commit(batch)->header.status, StatusCode::kOk);
    }
    server->Signal(SIGKILL);
    EXPECT_EQ(server->Wait(), 128 + SIGKILL);
  }
  auto server = Serve();
  auto client = RawClient::Connect(UnixAddress(ClientSocket()));
  ASSERT_TRUE(client);
  ASSERT_EQ(client->Open("vol")->header.status, StatusCode::kOk);
  for (int i = 0; i < 10; ++i) {
    auto values = protocol::DecodeGetResponse(
        client->Get({"block" + std::to_string(i)})->payload.view());
    ASSERT_TRUE(values.ok());
    EXPECT_EQ(values->values, (GetResult{std::string(1000, 'a' + i)}));
  }
}

TEST_F(CliTest, givenRunningServer_whenSigterm_thenExitsZeroAndStoreReopens) {
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  auto server = Serve();
  auto client = RawClient::Connect(UnixAddress(ClientSocket()));
  ASSERT_TRUE(client);
  ASSERT_EQ(client->Open("vol")->header.status, StatusCode::kOk);
  CommitBatch batch;
  batch.puts = {{"k", "v"}};
  ASSERT_EQ(client->Commit(batch)->header.status, StatusCode::kOk);

  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0) << server->err();
  EXPECT_TRUE(client->ClosedByPeer());
  EXPECT_FALSE(std::filesystem::exists(ClientSocket()));

  RunResult listed = Volume({"list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("vol   2 B   1 MiB  1"), std::string::npos)
      << listed.out;
}

// The value of `name` in the environment process `pid` was started with
// ("" if absent).
std::string StartEnvironment(pid_t pid, std::string_view name) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/environ");
  const std::string prefix = std::string(name) + "=";
  std::string value;
  for (std::string entry; std::getline(file, entry, '\0');) {
    if (entry.starts_with(prefix)) value = entry.substr(prefix.size());
  }
  return value;
}

// ReexecWithHugePages: the server runs itself again, under the same pid and
// name, with malloc's huge pages asked for.
TEST_F(CliTest, givenServe_whenRunning_thenItsEnvironmentAsksForHugePages) {
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  auto server = Serve();
  const std::string tunables =
      StartEnvironment(server->pid(), "GLIBC_TUNABLES");
  EXPECT_NE(tunables.find("glibc.malloc.hugetlb=1"), std::string::npos)
      << "GLIBC_TUNABLES of the server: '" << tunables << "'";
  std::ifstream comm("/proc/" + std::to_string(server->pid()) + "/comm");
  std::string name;
  std::getline(comm, name);
  EXPECT_EQ(name, "enclavefs-host");
}

// The marker stops a second re-exec, so a program whose GLIBC_TUNABLES
// glibc filters (setuid) cannot loop: started with it, the server runs as
// it is.
TEST_F(CliTest, givenReexecMarker_whenServe_thenItDoesNotRunItselfAgain) {
  ASSERT_EQ(Volume({"create", "vol", "--quota", "1M"}).exit_code, 0);
  const char* saved = std::getenv("GLIBC_TUNABLES");
  const std::optional<std::string> tunables =
      saved ? std::optional<std::string>(saved) : std::nullopt;
  ::unsetenv("GLIBC_TUNABLES");
  ::setenv(kReexecMarker, "1", 1);
  auto server = Serve();
  ::unsetenv(kReexecMarker);
  if (tunables) ::setenv("GLIBC_TUNABLES", tunables->c_str(), 1);
  EXPECT_EQ(StartEnvironment(server->pid(), "GLIBC_TUNABLES"), "");
  EXPECT_EQ(StartEnvironment(server->pid(), kReexecMarker), "1");
}

TEST_F(CliTest, givenBadListenAddress_whenServe_thenClearErrorAndNonZeroExit) {
  RunResult result =
      RunHost({"serve", "--store", Store(), "--listen", "carrier-pigeon:1"});
  ExpectRefusal(result, 2, "carrier-pigeon");
}

}  // namespace
}  // namespace enclavefs

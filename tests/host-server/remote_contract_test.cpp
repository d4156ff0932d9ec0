// RemoteBlockStore against the BlockStore contract, served (a) by an
// in-process BlockServer and (b) by a spawned enclavefs-host process; plus
// the remote-only behaviour of Open and of the protocol size limits.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "blockstore/remote_block_store.h"
#include "host-server/admin_client.h"
#include "tests/blockstore/block_store_contract.h"
#include "tests/host-server/remote_test_support.h"

namespace enclavefs {
namespace {

using remote_test::InProcessHost;
using remote_test::kTestToken;
using remote_test::TempDir;

// The contract's quota 0 means unlimited; hosts insist on a quota.
constexpr uint64_t kUnlimitedQuota = 1ull << 50;

uint64_t HostQuota(uint64_t quota_bytes) {
  return quota_bytes == 0 ? kUnlimitedQuota : quota_bytes;
}

std::string FreshVolumeName() {
  static std::atomic<int> next{0};
  return "contract-" + std::to_string(next++);
}

std::unique_ptr<BlockStore> OpenOrFail(const RemoteOptions& options) {
  auto store = RemoteBlockStore::Open(options);
  if (!store.ok()) {
    ADD_FAILURE() << store.status().ToString();
    return nullptr;
  }
  return std::move(store).value();
}

// (a) One in-process server per test, a fresh volume per Make().
class InProcessRemoteFactory {
 public:
  std::unique_ptr<BlockStore> Make(uint64_t quota_bytes) {
    if (!host_.start_status().ok()) {
      ADD_FAILURE() << host_.start_status().ToString();
      return nullptr;
    }
    const std::string volume = FreshVolumeName();
    Status created =
        host_.volumes().CreateVolume(volume, HostQuota(quota_bytes));
    if (!created.ok()) {
      ADD_FAILURE() << created.ToString();
      return nullptr;
    }
    return OpenOrFail(host_.ClientOptions(volume));
  }

 private:
  InProcessHost host_;
};

// One enclavefs-host process for the whole test binary, started on first use
// and killed (and reaped) by the environment's TearDown.
class SpawnedHost : public ::testing::Environment {
 public:
  static SpawnedHost& Get() {
    static SpawnedHost* const instance = [] {
      auto owned = std::make_unique<SpawnedHost>();
      SpawnedHost* raw = owned.get();
      ::testing::AddGlobalTestEnvironment(owned.release());  // gtest owns it
      return raw;
    }();
    return *instance;
  }

  // Starts the process if needed. OK once its admin socket answers.
  Status EnsureRunning() {
    if (pid_ > 0) return Status::Ok();
    dir_ = std::make_unique<TempDir>();
    const std::string store = dir_->path() + "/store";
    const std::string listen = "unix:" + dir_->path() + "/host.sock";
    const std::string admin = dir_->path() + "/admin.sock";
    std::vector<std::string> args = {ENCLAVEFS_HOST_BINARY,
                                     "serve",
                                     "--store",
                                     store,
                                     "--listen",
                                     listen,
                                     "--admin-socket",
                                     admin,
                                     "--log-level",
                                     "warn"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) return Status::IOError("fork failed");
    if (pid_ == 0) {
      // Dies with the test binary even if it crashes before TearDown.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    client_address_.kind = Address::Kind::kUnix;
    client_address_.path = dir_->path() + "/host.sock";
    admin_address_ = client_address_;
    admin_address_.path = admin;
    // Poll for readiness: the admin socket appears last.
    for (int attempt = 0; attempt < 200; ++attempt) {
      auto client = AdminClient::Connect(admin_address_);
      if (client.ok()) {
        admin_ = std::move(client).value();
        return Status::Ok();
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return Status::Unavailable("enclavefs-host exited during startup");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Status::Unavailable("enclavefs-host did not start within 10 s");
  }

  void TearDown() override {
    admin_.reset();
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      ADD_FAILURE() << "enclavefs-host ignored SIGTERM; killing it";
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = 0;
    }
    dir_.reset();
  }

  AdminClient& admin() { return *admin_; }
  const Address& client_address() const { return client_address_; }

 private:
  pid_t pid_ = 0;
  std::unique_ptr<TempDir> dir_;
  Address client_address_;
  Address admin_address_;
  std::unique_ptr<AdminClient> admin_;
};

// (b) The shared spawned server; a fresh volume per Make(), created through
// its admin socket.
class SpawnedRemoteFactory {
 public:
  std::unique_ptr<BlockStore> Make(uint64_t quota_bytes) {
    SpawnedHost& host = SpawnedHost::Get();
    Status running = host.EnsureRunning();
    if (!running.ok()) {
      ADD_FAILURE() << running.ToString();
      return nullptr;
    }
    const std::string volume = FreshVolumeName();
    Status created = host.admin().CreateVolume(volume, HostQuota(quota_bytes));
    if (!created.ok()) {
      ADD_FAILURE() << created.ToString();
      return nullptr;
    }
    RemoteOptions options;
    options.address = host.client_address();
    options.volume = volume;
    options.token = kTestToken;
    return OpenOrFail(options);
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(RemoteInProcess, BlockStoreContractTest,
                               ::testing::Types<InProcessRemoteFactory>);
INSTANTIATE_TYPED_TEST_SUITE_P(RemoteSpawned, BlockStoreContractTest,
                               ::testing::Types<SpawnedRemoteFactory>);

// ---- Remote-only behaviour ----

class RemoteOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(host_.start_status().ok()) << host_.start_status().ToString();
    ASSERT_TRUE(host_.volumes().CreateVolume("vol", 1ull << 30).ok());
  }
  InProcessHost host_;
};

TEST_F(RemoteOpenTest,
       givenNothingListening_whenOpen_thenUnavailableNamingHost) {
  RemoteOptions options = host_.ClientOptions("vol");
  options.address.path = host_.dir() + "/nobody.sock";

  auto store = RemoteBlockStore::Open(options);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(store.status().message().find("cannot reach host at unix:" +
                                          options.address.path),
            std::string::npos)
      << store.status().ToString();
}

TEST_F(RemoteOpenTest, givenTwoKeys_whenGetShared_thenOneReplyBufferHoldsBoth) {
  auto store = RemoteBlockStore::Open(host_.ClientOptions("vol"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  CommitBatch batch;
  batch.puts = {{"a", "first"}, {"b", "second"}};
  ASSERT_TRUE((*store)->Commit(batch).ok());

  auto got = (*store)->GetShared(std::vector<std::string>{"a", "b"});

  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE((*got)[0] && (*got)[1]);
  // No copy per value: both are views into the one reply frame.
  EXPECT_EQ((*got)[0]->owner, (*got)[1]->owner);
  EXPECT_EQ(std::string_view((*got)[1]->bytes.data(), (*got)[1]->bytes.size()),
            "second");
}

TEST_F(RemoteOpenTest, givenMissingVolume_whenOpen_thenNotFound) {
  auto store = RemoteBlockStore::Open(host_.ClientOptions("absent"));
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
}

TEST_F(RemoteOpenTest, givenHeldVolume_whenOpenWithoutTakeover_thenBusy) {
  auto holder = RemoteBlockStore::Open(host_.ClientOptions("vol"));
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();

  auto second = RemoteBlockStore::Open(host_.ClientOptions("vol"));

  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
}

TEST_F(RemoteOpenTest,
       givenClosedHolder_whenOpenAgain_thenGrantedWithNextEpoch) {
  auto holder = RemoteBlockStore::Open(host_.ClientOptions("vol"));
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  const uint64_t first_epoch = (*holder)->epoch();
  ASSERT_TRUE((*holder)->Close().ok());

  auto second = RemoteBlockStore::Open(host_.ClientOptions("vol"));

  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*second)->epoch(), first_epoch + 1);
  EXPECT_EQ((*holder)->Stat().status().code(), StatusCode::kUnavailable);
}

TEST_F(RemoteOpenTest,
       givenBoundToken_whenOpenWithOtherToken_thenPermissionDenied) {
  {
    auto binder = RemoteBlockStore::Open(host_.ClientOptions("vol"));
    ASSERT_TRUE(binder.ok()) << binder.status().ToString();
  }
  RemoteOptions options = host_.ClientOptions("vol");
  options.token = "another-token-0123456789";

  auto store = RemoteBlockStore::Open(options);

  EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(RemoteOpenTest,
       givenBatchOverPayloadLimit_whenCommit_thenInvalidArgument) {
  auto store = RemoteBlockStore::Open(host_.ClientOptions("vol"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  CommitBatch batch;
  const size_t count = protocol::kMaxPayloadSize / kMaxValueSize + 1;
  for (size_t i = 0; i < count; ++i) {
    batch.puts.emplace_back("k" + std::to_string(i),
                            std::string(kMaxValueSize, 'v'));
  }

  EXPECT_EQ((*store)->Commit(batch).code(), StatusCode::kInvalidArgument);
  auto stats = (*store)->Stat();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->block_count, 0u);
}

TEST_F(RemoteOpenTest,
       givenMaxSizeValuesBeyondOneFrame_whenGetAll_thenAllReturned) {
  // More maximal values than one response frame can carry: the client must
  // split the Get so that every response stays under the payload limit.
  auto store = RemoteBlockStore::Open(host_.ClientOptions("vol"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const size_t count = protocol::kMaxPayloadSize / kMaxValueSize + 1;
  std::vector<std::string> keys;
  for (size_t i = 0; i < count; ++i) {
    CommitBatch batch;
    keys.push_back("k" + std::to_string(i));
    batch.puts.emplace_back(
        keys.back(), std::string(kMaxValueSize, static_cast<char>('a' + i)));
    ASSERT_TRUE((*store)->Commit(batch).ok());
  }

  auto values = (*store)->Get(keys);

  ASSERT_TRUE(values.ok()) << values.status().ToString();
  ASSERT_EQ(values->size(), count);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_TRUE((*values)[i].has_value());
    EXPECT_EQ((*values)[i]->size(), kMaxValueSize);
    EXPECT_EQ((*values)[i]->front(), static_cast<char>('a' + i));
  }
}

}  // namespace
}  // namespace enclavefs

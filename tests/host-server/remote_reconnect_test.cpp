// RemoteBlockStore behaviour when the connection drops, when replies are
// lost, when the host is gone, under pipelining, and when fenced.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "blockstore/frame_io.h"
#include "blockstore/remote_block_store.h"
#include "tests/host-server/remote_test_support.h"

namespace enclavefs {
namespace {

using remote_test::InProcessHost;

// Forwards whole frames between clients and the host, and can drop the
// connection at chosen points: everything at once, or around one COMMIT.
class FrameProxy {
 public:
  enum class Fault { kNone, kDropCommitRequest, kDropCommitReply };

  FrameProxy(Address listen, Address upstream)
      : upstream_(std::move(upstream)) {
    auto listener = Listen(listen);
    EXPECT_TRUE(listener.ok()) << listener.status().ToString();
    if (!listener.ok()) return;
    listener_ = std::move(listener).value();
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~FrameProxy() {
    if (listener_) listener_->Close();
    if (acceptor_.joinable()) acceptor_.join();
    DropAll();
    for (auto& link : links_) {
      for (auto& pump : link->pumps) pump.join();
    }
  }

  Address address() const { return listener_->address(); }
  // The next frame matching `fault` is not forwarded; its link is cut.
  void Arm(Fault fault) { fault_ = fault; }
  int faults_fired() const { return fired_; }

  void DropAll() {
    std::lock_guard lock(mu_);
    for (auto& link : links_) link->Cut();
  }

 private:
  struct Link {
    std::unique_ptr<Connection> client;
    std::unique_ptr<Connection> host;
    std::vector<std::thread> pumps;
    void Cut() {
      client->Shutdown();
      host->Shutdown();
    }
  };

  void AcceptLoop() {
    while (true) {
      auto client = listener_->Accept();
      if (!client.ok()) return;
      auto host = Connect(upstream_);
      if (!host.ok()) continue;  // the client sees its connection close
      auto link = std::make_unique<Link>();
      link->client = std::move(client).value();
      link->host = std::move(host).value();
      Link* raw = link.get();
      std::lock_guard lock(mu_);
      raw->pumps.emplace_back([this, raw] {
        Pump(*raw, *raw->client, *raw->host, Fault::kDropCommitRequest);
      });
      raw->pumps.emplace_back([this, raw] {
        Pump(*raw, *raw->host, *raw->client, Fault::kDropCommitReply);
      });
      links_.push_back(std::move(link));
    }
  }

  void Pump(Link& link, Connection& from, Connection& to, Fault trigger) {
    while (true) {
      auto frame = ReadFrame(from);
      if (!frame.ok()) break;
      Fault armed = trigger;
      if (frame->header.opcode ==
              static_cast<uint16_t>(protocol::Opcode::kCommit) &&
          fault_.compare_exchange_strong(armed, Fault::kNone)) {
        ++fired_;
        break;
      }
      if (!WriteFrame(to, frame->header, frame->payload).ok()) break;
    }
    link.Cut();
  }

  Address upstream_;
  std::unique_ptr<Listener> listener_;
  std::thread acceptor_;
  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> fired_{0};
  std::mutex mu_;
  std::vector<std::unique_ptr<Link>> links_;  // GUARDED_BY(mu_)
};

// Holds GET requests on the server (in its before_request hook) while armed.
class GetGate {
 public:
  void Arm() {
    std::lock_guard lock(mu_);
    armed_ = true;
  }
  void Release() {
    std::lock_guard lock(mu_);
    armed_ = false;
    cv_.notify_all();
  }
  void WaitForHeldGet() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return held_ > 0; });
  }
  void OnRequest(protocol::Opcode op) {
    if (op != protocol::Opcode::kGet) return;
    std::unique_lock lock(mu_);
    if (!armed_) return;
    ++held_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !armed_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;  // GUARDED_BY(mu_)
  int held_ = 0;        // GUARDED_BY(mu_)
};

constexpr char kVolume[] = "vol";

class RemoteReconnectTest : public ::testing::Test {
 protected:
  RemoteReconnectTest() : host_(GatedOptions(gate_)) {}

  static BlockServerOptions GatedOptions(GetGate& gate) {
    BlockServerOptions options;
    options.before_request = [&gate](protocol::Opcode op) {
      gate.OnRequest(op);
    };
    return options;
  }

  void SetUp() override {
    ASSERT_TRUE(host_.start_status().ok()) << host_.start_status().ToString();
    ASSERT_TRUE(host_.volumes().CreateVolume(kVolume, 1ull << 30).ok());
    Address proxy_address;
    proxy_address.path = host_.dir() + "/proxy.sock";
    proxy_ = std::make_unique<FrameProxy>(proxy_address, host_.address());
  }
  void TearDown() override { gate_.Release(); }

  std::unique_ptr<RemoteBlockStore> OpenStore(bool through_proxy = true) {
    RemoteOptions options = host_.ClientOptions(kVolume);
    if (through_proxy) options.address = proxy_->address();
    auto store = RemoteBlockStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // The filesystem's root-record pattern: swap "root" from `from` to `to`
  // and write a data block in the same batch.
  static CommitBatch SwapRoot(std::optional<std::string> from,
                              const std::string& to) {
    CommitBatch batch;
    batch.puts = {{"root", to}, {"block-" + to, "data of " + to}};
    batch.condition = CommitCondition{"root", std::move(from)};
    return batch;
  }

  static std::optional<std::string> Read(BlockStore& store,
                                         const std::string& key) {
    const std::string keys[] = {key};
    auto values = store.Get(keys);
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    return values.ok() ? values->front() : std::nullopt;
  }

  GetGate gate_;
  InProcessHost host_;
  std::unique_ptr<FrameProxy> proxy_;
};

TEST_F(RemoteReconnectTest,
       givenDroppedConnection_whenGet_thenReconnectsAndReads) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());
  const uint64_t epoch = store->epoch();

  proxy_->DropAll();

  EXPECT_EQ(Read(*store, "root"), "r1");
  EXPECT_EQ(store->epoch(), epoch + 1);
}

TEST_F(RemoteReconnectTest,
       givenCommitReplyLost_whenConditionalCommit_thenOkAndAppliedOnce) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());

  proxy_->Arm(FrameProxy::Fault::kDropCommitReply);
  Status committed = store->Commit(SwapRoot("r1", "r2"));

  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(proxy_->faults_fired(), 1);
  EXPECT_EQ(Read(*store, "root"), "r2");
  EXPECT_EQ(Read(*store, "block-r2"), "data of r2");
  EXPECT_EQ(store->Commit(SwapRoot("r1", "r2")).code(), StatusCode::kConflict);
}

TEST_F(
    RemoteReconnectTest,
    givenCommitLostBeforeHost_whenConditionalCommit_thenResentAndAppliedOnce) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());

  proxy_->Arm(FrameProxy::Fault::kDropCommitRequest);
  Status committed = store->Commit(SwapRoot("r1", "r2"));

  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(proxy_->faults_fired(), 1);
  EXPECT_EQ(Read(*store, "root"), "r2");
  EXPECT_EQ(Read(*store, "block-r2"), "data of r2");
}

TEST_F(RemoteReconnectTest,
       givenUnconditionalCommitReplyLost_whenCommit_thenResentIdempotently) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  CommitBatch batch;
  batch.puts = {{"a", "1"}, {"b", "2"}};

  proxy_->Arm(FrameProxy::Fault::kDropCommitReply);
  Status committed = store->Commit(batch);

  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(proxy_->faults_fired(), 1);
  auto stats = store->Stat();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->block_count, 2u);
  EXPECT_EQ(Read(*store, "b"), "2");
}

TEST_F(RemoteReconnectTest,
       givenRootChangedWhileAway_whenCommitReplyLost_thenConflict) {
  // The lost-reply check must not mistake a foreign root for ours: here the
  // commit expects a root that never existed, so the host rejects it and the
  // reply (Conflict) is what gets lost.
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());

  proxy_->Arm(FrameProxy::Fault::kDropCommitReply);
  Status committed = store->Commit(SwapRoot("r0", "r2"));

  EXPECT_EQ(committed.code(), StatusCode::kConflict) << committed.ToString();
  EXPECT_EQ(Read(*store, "root"), "r1");
}

TEST_F(RemoteReconnectTest,
       givenHostGone_whenGet_thenUnavailableAfterDeadline) {
  RemoteOptions options = host_.ClientOptions(kVolume);
  options.reconnect_deadline = std::chrono::milliseconds(300);
  auto store = RemoteBlockStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  host_.Stop();
  const std::string keys[] = {"root"};
  auto values = (*store)->Get(keys);

  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(values.status().message().find("cannot reconnect"),
            std::string::npos)
      << values.status().ToString();
}

TEST_F(RemoteReconnectTest, givenEightThreads_whenSixtyFourGets_thenAllMatch) {
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  constexpr int kKeys = 200;
  CommitBatch batch;
  for (int i = 0; i < kKeys; ++i) {
    batch.puts.emplace_back(
        "k" + std::to_string(i),
        std::string(100 + i, static_cast<char>('a' + i % 26)));
  }
  ASSERT_TRUE(store->Commit(batch).ok());

  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int g = 0; g < 8; ++g) {
        // Each Get asks for a different, overlapping window of keys (some
        // spanning several chunks) plus one missing key.
        const int first = (t * 8 + g) * 3 % kKeys;
        const int count = 1 + (t * 8 + g) % 40;
        std::vector<std::string> keys;
        for (int i = 0; i < count; ++i) {
          keys.push_back("k" + std::to_string((first + i) % kKeys));
        }
        keys.push_back("missing");
        auto values = store->Get(keys);
        if (!values.ok() || values->size() != keys.size()) continue;
        bool all_match = !values->back().has_value();
        for (int i = 0; i < count; ++i) {
          const int k = (first + i) % kKeys;
          all_match = all_match && (*values)[i] == batch.puts[k].second;
        }
        if (all_match) ++correct;
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(correct.load(), 64);
}

TEST_F(RemoteReconnectTest,
       givenThousandsOfKeys_whenOneGet_thenFullWindowWithoutReconnect) {
  // Enough chunks to keep kMaxInFlight requests outstanding for a while:
  // the client must never exceed the host's per-connection limit.
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  const uint64_t epoch = store->epoch();
  std::vector<std::string> keys;
  CommitBatch batch;
  for (int i = 0; i < 4000; ++i) {
    keys.push_back("key-" + std::to_string(i));
    if (i % 2 == 0) batch.puts.emplace_back(keys.back(), "v" + keys.back());
  }
  ASSERT_TRUE(store->Commit(batch).ok());

  for (int round = 0; round < 5; ++round) {
    auto values = store->Get(keys);
    ASSERT_TRUE(values.ok()) << values.status().ToString();
    ASSERT_EQ(values->size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto expected =
          i % 2 == 0 ? std::optional<std::string>("v" + keys[i]) : std::nullopt;
      EXPECT_EQ((*values)[i], expected);
    }
  }
  EXPECT_EQ(store->epoch(), epoch);
}

TEST_F(RemoteReconnectTest, givenHeldGet_whenPing_thenPingAnsweredFirst) {
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  CommitBatch batch;
  batch.puts = {{"big", std::string(2 << 20, 'x')}};
  ASSERT_TRUE(store->Commit(batch).ok());

  gate_.Arm();
  auto pending = std::async(std::launch::async, [&] {
    const std::string keys[] = {"big"};
    return store->Get(keys);
  });
  gate_.WaitForHeldGet();

  // The Get went out first and is still unanswered: the Ping's response
  // overtakes it on the same connection.
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_EQ(pending.wait_for(std::chrono::seconds(0)),
            std::future_status::timeout);
  gate_.Release();
  auto values = pending.get();
  ASSERT_TRUE(values.ok()) << values.status().ToString();
  EXPECT_EQ(values->front(), batch.puts[0].second);
}

// A holder that lost its connection and, meanwhile, its lease learns of the
// takeover when it reconnects: the epoch it is granted is not the next one.
TEST_F(RemoteReconnectTest,
       givenDroppedThenTakenOverAndReleased_whenOldHolderCommits_thenFenced) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Commit(SwapRoot(std::nullopt, "r1")).ok());
  proxy_->DropAll();
  RemoteOptions options = host_.ClientOptions(kVolume);
  options.takeover = true;
  auto second = RemoteBlockStore::Open(options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE((*second)->Commit(SwapRoot("r1", "r2")).ok());
  ASSERT_TRUE((*second)->Close().ok());

  Status stale = first->Commit(SwapRoot("r2", "stale"));

  EXPECT_EQ(stale.code(), StatusCode::kFenced) << stale.ToString();
  const std::string keys[] = {"root"};
  EXPECT_EQ(first->Get(keys).status().code(), StatusCode::kFenced);
  auto third = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(Read(*third, "root"), "r2");
}

TEST_F(RemoteReconnectTest,
       givenTakenOver_whenOldHolderCommits_thenFencedNotRetried) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Commit(SwapRoot(std::nullopt, "r1")).ok());
  const uint64_t first_epoch = first->epoch();
  RemoteOptions options = host_.ClientOptions(kVolume);
  options.takeover = true;
  auto second = RemoteBlockStore::Open(options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();

  Status stale = first->Commit(SwapRoot("r1", "stale"));

  EXPECT_EQ(stale.code(), StatusCode::kFenced) << stale.ToString();
  EXPECT_EQ(first->epoch(), first_epoch) << "must not have reconnected";
  EXPECT_EQ(Read(**second, "root"), "r1");
  EXPECT_TRUE((*second)->Commit(SwapRoot("r1", "r2")).ok());
}

TEST_F(RemoteReconnectTest,
       givenHeader_whenReadPublicHeader_thenReturnedWithoutLease) {
  auto holder = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(holder, nullptr);
  auto before = ReadPublicHeader(host_.address(), kVolume);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(*before, std::nullopt);

  CommitBatch batch;
  batch.puts = {{std::string(protocol::kPublicHeaderKey), "sealed header"}};
  ASSERT_TRUE(holder->Commit(batch).ok());

  auto after = ReadPublicHeader(host_.address(), kVolume);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, "sealed header");
  EXPECT_EQ(ReadPublicHeader(host_.address(), "no-such-volume").status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace enclavefs

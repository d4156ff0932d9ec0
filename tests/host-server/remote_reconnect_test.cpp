// RemoteBlockStore behaviour when the connection drops, when replies are
// lost, when the host is gone, under pipelining, and when fenced.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "blockstore/remote_block_store.h"
#include "tests/host-server/remote_faults.h"
#include "tests/host-server/remote_test_support.h"

namespace enclavefs {
namespace {

using remote_test::FrameProxy;
using remote_test::InProcessHost;
using remote_test::RequestGate;

constexpr char kVolume[] = "vol";

class RemoteReconnectTest : public ::testing::Test {
 protected:
  RemoteReconnectTest() : host_(GatedOptions(gate_)) {}

  static BlockServerOptions GatedOptions(RequestGate& gate) {
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

  // While the proxied holder is cut off, another client takes the volume
  // over, swaps the root from r1 to r2 and closes. Returns its epoch.
  uint64_t TakeOverWhileCutOff() {
    proxy_->DropAll();
    RemoteOptions options = host_.ClientOptions(kVolume);
    options.takeover = true;
    auto other = RemoteBlockStore::Open(options);
    EXPECT_TRUE(other.ok()) << other.status().ToString();
    if (!other.ok()) return 0;
    EXPECT_TRUE((*other)->Commit(SwapRoot("r1", "r2")).ok());
    const uint64_t epoch = (*other)->epoch();
    EXPECT_TRUE((*other)->Close().ok());
    return epoch;
  }

  // True once the host has dropped every lease on the volume (its sessions
  // noticed their connections were cut); false after 10 s.
  bool WaitUntilReleased() {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (host_.server().volume_manager().IsHeld(kVolume)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
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

  // With the host stopped after the store opened: what two Gets logged at
  // warning level and above.
  std::vector<std::string> WarningsOfTwoGets(
      std::chrono::milliseconds retry_pause) {
    RemoteOptions options = host_.ClientOptions(kVolume);
    options.reconnect_deadline = std::chrono::milliseconds(300);
    // The stopped host's socket still accepts into its backlog, so each
    // attempt lasts its connect timeout.
    options.connect_timeout = std::chrono::milliseconds(20);
    options.initial_backoff = std::chrono::milliseconds(10);
    options.retry_pause = retry_pause;
    auto store = RemoteBlockStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return {};
    host_.Stop();
    // Static, as in the stall-warning test below; large enough never to
    // wrap, so each call reads the lines past those it found.
    static const auto sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
    static const auto capture =
        std::make_shared<spdlog::logger>("rounds", sink);
    const size_t before = sink->last_raw().size();
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(capture);
    const std::string keys[] = {"root"};
    auto first = (*store)->Get(keys);
    auto second = (*store)->Get(keys);
    spdlog::set_default_logger(previous);
    // Both end a round that gave up, the second's own or the first's
    // remembered one; the cause's timing may differ between rounds.
    for (const Status& failed : {first.status(), second.status()}) {
      EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
      EXPECT_TRUE(failed.message().starts_with("cannot reconnect to "))
          << failed.ToString();
    }
    std::vector<std::string> warnings;
    const auto raw = sink->last_raw();
    for (size_t i = before; i < raw.size(); ++i) {
      if (raw[i].level < spdlog::level::warn) continue;
      warnings.emplace_back(raw[i].payload.begin(), raw[i].payload.end());
    }
    return warnings;
  }

  static size_t CountContaining(const std::vector<std::string>& lines,
                                std::string_view text) {
    return std::count_if(lines.begin(), lines.end(), [&](const auto& line) {
      return line.find(text) != std::string::npos;
    });
  }

  RequestGate gate_;
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

// RestoreConnection reconnects only once the client knows its connection
// is gone (its reader saw the socket close), and without any other call.
TEST_F(RemoteReconnectTest,
       givenDroppedConnection_whenRestoreConnection_thenReconnected) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t epoch = store->epoch();
  ASSERT_TRUE(store->RestoreConnection().ok());
  EXPECT_EQ(store->epoch(), epoch);

  proxy_->DropAll();
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store->epoch() == epoch &&
         std::chrono::steady_clock::now() < give_up) {
    ASSERT_TRUE(store->RestoreConnection().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  EXPECT_EQ(store->epoch(), epoch + 1);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());
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

TEST_F(RemoteReconnectTest,
       givenReconnectGaveUp_whenGetWithinPause_thenFailsWithoutRetrying) {
  EXPECT_EQ(CountContaining(WarningsOfTwoGets(std::chrono::hours(1)),
                            "giving up reconnecting"),
            1u);
}

TEST_F(RemoteReconnectTest,
       givenNoRetryPause_whenTwoGetsAfterHostGone_thenEachRetries) {
  EXPECT_EQ(CountContaining(WarningsOfTwoGets(std::chrono::milliseconds(0)),
                            "giving up reconnecting"),
            2u);
}

// A round of many attempts warns when it starts and when it gives up; the
// attempts between are logged at debug level only.
TEST_F(RemoteReconnectTest,
       givenHostGone_whenReconnectRoundsRetry_thenTwoWarningsPerRound) {
  const auto warnings = WarningsOfTwoGets(std::chrono::milliseconds(0));

  EXPECT_EQ(warnings.size(), 4u);
  EXPECT_EQ(CountContaining(warnings, "cannot reach"), 2u);
  EXPECT_EQ(CountContaining(warnings, "giving up reconnecting"), 2u);
  // Attempts of 20 ms with 10, 20, 40 and 80 ms between them fit in the
  // 300 ms round.
  for (const std::string& line : warnings) {
    if (line.find("giving up") == std::string::npos) continue;
    const size_t at = line.find(" after ");
    ASSERT_NE(at, std::string::npos) << line;
    EXPECT_GE(std::stoi(line.substr(at + 7)), 4) << line;
  }
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

  gate_.Arm(protocol::Opcode::kGet);
  auto pending = std::async(std::launch::async, [&] {
    const std::string keys[] = {"big"};
    return store->Get(keys);
  });
  ASSERT_TRUE(gate_.WaitForHeld(1));

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

TEST_F(RemoteReconnectTest,
       givenHostHoldsGet_whenPastStallWarning_thenWarnedAndStillAnswered) {
  RemoteOptions options = host_.ClientOptions(kVolume);
  options.stall_warning = std::chrono::milliseconds(50);
  auto opened = RemoteBlockStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  CommitBatch batch;
  batch.puts = {{"k", "v"}};
  ASSERT_TRUE(store->Commit(batch).ok());

  // Static: a thread of the in-process host may still hold the logger it
  // fetched when the default is set back below.
  static const auto sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  static const auto capture = std::make_shared<spdlog::logger>("test", sink);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(capture);
  gate_.Arm(protocol::Opcode::kGet);
  auto pending = std::async(std::launch::async, [&] {
    const std::string keys[] = {"k"};
    return store->Get(keys);
  });
  ASSERT_TRUE(gate_.WaitForHeld(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  gate_.Release();
  auto values = pending.get();
  spdlog::set_default_logger(previous);

  ASSERT_TRUE(values.ok()) << values.status().ToString();
  EXPECT_EQ(values->front(), "v");
  size_t warnings = 0;
  for (const std::string& line : sink->last_formatted()) {
    if (line.find("no reply from the host at") != std::string::npos &&
        line.find("to a GET request") != std::string::npos) {
      ++warnings;
    }
  }
  // One warning per 50 ms held, give or take the scheduler.
  EXPECT_GE(warnings, 2u);
}

TEST_F(RemoteReconnectTest,
       givenCommitHeldOnHost_whenCommitOnOtherKeys_thenBothInFlight) {
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  CommitBatch first;
  first.puts = {{"a", "1"}};
  CommitBatch second;
  second.puts = {{"b", "2"}};

  gate_.Arm(protocol::Opcode::kCommit);
  auto first_done =
      std::async(std::launch::async, [&] { return store->Commit(first); });
  auto second_done =
      std::async(std::launch::async, [&] { return store->Commit(second); });
  // Both reach the host while neither has been answered.
  ASSERT_TRUE(gate_.WaitForHeld(2));
  gate_.Release();

  EXPECT_TRUE(first_done.get().ok());
  EXPECT_TRUE(second_done.get().ok());
  EXPECT_EQ(Read(*store, "a"), "1");
  EXPECT_EQ(Read(*store, "b"), "2");
}

TEST_F(RemoteReconnectTest,
       givenCommitHeldOnHost_whenCommitOnSameKey_thenItWaitsAndAppliesLast) {
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  CommitBatch first;
  first.puts = {{"shared", "first"}, {"a", "1"}};
  CommitBatch second;  // shares "shared" through a delete
  second.puts = {{"b", "2"}};
  second.deletes = {"shared"};
  CommitBatch unrelated;
  unrelated.puts = {{"c", "3"}};

  gate_.Arm(protocol::Opcode::kCommit);
  auto first_done =
      std::async(std::launch::async, [&] { return store->Commit(first); });
  ASSERT_TRUE(gate_.WaitForHeld(1));
  auto second_done =
      std::async(std::launch::async, [&] { return store->Commit(second); });
  auto unrelated_done =
      std::async(std::launch::async, [&] { return store->Commit(unrelated); });
  ASSERT_TRUE(gate_.WaitForHeld(2));
  // The second held commit is the unrelated one: the one sharing a key
  // stays on the client until the first is answered.
  EXPECT_EQ(gate_.held(), 2);
  EXPECT_EQ(second_done.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  gate_.Release();

  EXPECT_TRUE(first_done.get().ok());
  EXPECT_TRUE(second_done.get().ok());
  EXPECT_TRUE(unrelated_done.get().ok());
  EXPECT_EQ(Read(*store, "shared"), std::nullopt);
  EXPECT_EQ(Read(*store, "b"), "2");
}

TEST_F(RemoteReconnectTest,
       givenTwoCommitsInFlight_whenConnectionDrops_thenEachAppliedOnce) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());
  CommitBatch unconditional;
  unconditional.puts = {{"a", "1"}, {"b", "2"}};

  gate_.Arm(protocol::Opcode::kCommit);
  auto swapped = std::async(
      std::launch::async, [&] { return store->Commit(SwapRoot("r1", "r2")); });
  auto written = std::async(std::launch::async,
                            [&] { return store->Commit(unconditional); });
  ASSERT_TRUE(gate_.WaitForHeld(2));
  // Both replies are lost; the host applies both once the gate opens and
  // only then lets the client back in.
  proxy_->DropAll();
  gate_.Release();

  Status swap_status = swapped.get();
  Status write_status = written.get();
  EXPECT_TRUE(swap_status.ok()) << swap_status.ToString();
  EXPECT_TRUE(write_status.ok()) << write_status.ToString();
  EXPECT_EQ(Read(*store, "root"), "r2");
  EXPECT_EQ(Read(*store, "a"), "1");
  auto stats = store->Stat();
  ASSERT_TRUE(stats.ok());
  // root, block-r1, block-r2, a, b
  EXPECT_EQ(stats->block_count, 5u);
  EXPECT_EQ(store->Commit(SwapRoot("r1", "r2")).code(), StatusCode::kConflict);
}

TEST_F(RemoteReconnectTest,
       givenConcurrentCommits_whenConnectionDropsRepeatedly_thenStateExact) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t first_epoch = store->epoch();
  constexpr int kWriters = 3;
  constexpr int kKeysPerWriter = 4;
  constexpr int kMinCommits = 20;  // per writer, and root swaps
  // Everyone keeps committing until all drops have happened. Drops do not
  // wait for the reconnect after the previous one, so some may hit an OPEN
  // handshake; every other drop also loses the next OPEN reply for sure.
  // Either way the host granted an epoch the store never saw, and it must
  // resume anyway: those epochs went to its own client id.
  std::atomic<bool> drops_done{false};
  std::thread dropper([&] {
    for (int i = 0; i < 8; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
      if (i % 2 == 1) proxy_->Arm(FrameProxy::Fault::kDropOpenReply);
      proxy_->DropAll();
    }
    drops_done = true;
  });
  std::atomic<int> failures{0};
  std::vector<int> commits(kWriters, 0);
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int& i = commits[t]; i < kMinCommits || !drops_done; ++i) {
        CommitBatch batch;
        batch.puts = {
            {"w" + std::to_string(t) + "-" + std::to_string(i % kKeysPerWriter),
             "v" + std::to_string(i)}};
        if (!store->Commit(batch).ok()) ++failures;
      }
    });
  }
  // The root-record chain: every swap must apply exactly once, in order.
  std::optional<std::string> root;
  int swaps = 0;
  while (swaps < kMinCommits || !drops_done) {
    const std::string next = "r" + std::to_string(++swaps);
    Status swapped = store->Commit(SwapRoot(root, next));
    if (!swapped.ok()) {
      ADD_FAILURE() << next << ": " << swapped.ToString();
      break;
    }
    root = next;
  }
  for (auto& writer : writers) writer.join();
  dropper.join();

  EXPECT_GT(store->epoch(), first_epoch) << "no reconnect was exercised";
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Read(*store, "root"), root);
  for (int t = 0; t < kWriters; ++t) {
    for (int k = 0; k < kKeysPerWriter; ++k) {
      // The last commit of writer t that wrote key k.
      const int n = commits[t];
      const int last = (n - 1) - ((n - 1 - k) % kKeysPerWriter);
      EXPECT_EQ(Read(*store, "w" + std::to_string(t) + "-" + std::to_string(k)),
                "v" + std::to_string(last));
    }
  }
  auto stats = store->Stat();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->block_count,
            static_cast<uint64_t>(kWriters * kKeysPerWriter + 1 + swaps));
  EXPECT_GE(proxy_->faults_fired(), 1) << "no OPEN reply was lost";
}

TEST_F(RemoteReconnectTest,
       givenReconnectOpenReplyLost_whenCommit_thenResumesAndDataIntact) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(SwapRoot(std::nullopt, "r1")).ok());
  const uint64_t epoch = store->epoch();

  proxy_->Arm(FrameProxy::Fault::kDropOpenReply);
  proxy_->DropAll();
  // Otherwise the lost OPEN may meet the old session's lease, be refused
  // Busy and take no epoch.
  ASSERT_TRUE(WaitUntilReleased());
  Status committed = store->Commit(SwapRoot("r1", "r2"));

  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(proxy_->faults_fired(), 1);
  // The OPEN whose reply was lost took an epoch of its own.
  EXPECT_EQ(store->epoch(), epoch + 2);
  EXPECT_EQ(Read(*store, "root"), "r2");
  EXPECT_EQ(Read(*store, "block-r1"), "data of r1");
  EXPECT_EQ(Read(*store, "block-r2"), "data of r2");
  EXPECT_TRUE(store->Commit(SwapRoot("r2", "r3")).ok());
  EXPECT_EQ(Read(*store, "root"), "r3");
}

// Another client held the volume at old + 1, then our re-open at old + 2 lost
// its reply, so we were the previous holder of old + 3. That must not hide
// the other client.
TEST_F(RemoteReconnectTest,
       givenOtherClientThenLostOpenReply_whenOldHolderCommits_thenFenced) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Commit(SwapRoot(std::nullopt, "r1")).ok());
  const uint64_t first_epoch = first->epoch();
  ASSERT_EQ(TakeOverWhileCutOff(), first_epoch + 1);

  proxy_->Arm(FrameProxy::Fault::kDropOpenReply);
  Status stale = first->Commit(SwapRoot("r2", "stale"));

  EXPECT_EQ(stale.code(), StatusCode::kFenced) << stale.ToString();
  EXPECT_EQ(proxy_->faults_fired(), 1);
  EXPECT_EQ(host_.volumes().GetVolume(kVolume)->epoch, first_epoch + 3);
  auto third = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(Read(*third, "root"), "r2");
}

TEST_F(RemoteReconnectTest, givenClosedStore_whenCommit_thenUnavailable) {
  auto store = OpenStore(/*through_proxy=*/false);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Close().ok());

  CommitBatch batch;
  batch.puts = {{"a", "1"}};
  EXPECT_EQ(store->Commit(batch).code(), StatusCode::kUnavailable);
}

// A holder that lost its connection and, meanwhile, its lease learns of the
// takeover when it reconnects: the epoch it is granted is not the next one.
TEST_F(RemoteReconnectTest,
       givenDroppedThenTakenOverAndReleased_whenOldHolderCommits_thenFenced) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Commit(SwapRoot(std::nullopt, "r1")).ok());
  ASSERT_GT(TakeOverWhileCutOff(), first->epoch());

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

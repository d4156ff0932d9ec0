// Per-volume traffic counters of the host: what a RemoteBlockStore's calls
// add to them, byte for byte, and how the admin socket reports them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "blockstore/protocol.h"
#include "blockstore/remote_block_store.h"
#include "host-server/admin_client.h"
#include "tests/host-server/remote_test_support.h"

namespace enclavefs {
namespace {

using protocol::kFrameHeaderSize;
using remote_test::InProcessHost;

constexpr char kVolume[] = "vol";

// A host with an admin socket next to its client socket.
BlockServerOptions WithAdminSocket(const std::string& dir) {
  BlockServerOptions options;
  Address admin;
  admin.path = dir + "/admin.sock";
  options.admin = admin;
  return options;
}

class TrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(host_.start_status().ok()) << host_.start_status().ToString();
    ASSERT_TRUE(host_.volumes().CreateVolume(kVolume, 1ull << 30).ok());
  }

  protocol::VolumeTraffic Traffic() {
    auto traffic = host_.server().volume_manager().TrafficOf(kVolume);
    EXPECT_TRUE(traffic.ok()) << traffic.status().ToString();
    return traffic.ok() ? *traffic : protocol::VolumeTraffic{};
  }

  remote_test::TempDir admin_dir_;
  InProcessHost host_{WithAdminSocket(admin_dir_.path())};
};

TEST_F(TrafficTest, givenNewVolume_whenNoClientYet_thenAllCountersZero) {
  EXPECT_EQ(Traffic(), protocol::VolumeTraffic{});
}

TEST_F(TrafficTest, givenGetsAndCommits_whenCounted_thenExactWireBytes) {
  const RemoteOptions options = host_.ClientOptions(kVolume);
  auto store = RemoteBlockStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const protocol::VolumeTraffic opened = Traffic();
  EXPECT_EQ(opened.requests, 1u);
  EXPECT_EQ(opened.bytes_received,
            kFrameHeaderSize +
                protocol::Encode(
                    protocol::OpenRequest{options.volume, options.token, false})
                    .size());
  EXPECT_EQ(
      opened.bytes_sent,
      kFrameHeaderSize +
          protocol::Encode(protocol::OpenResponse{(*store)->epoch()}).size());

  CommitBatch batch;
  batch.puts = {{"a", std::string(70000, 'x')}, {"b", "small"}};
  ASSERT_TRUE((*store)->Commit(batch).ok());
  const std::vector<std::string> keys = {"a", "b", "missing"};
  auto values = (*store)->Get(keys);
  ASSERT_TRUE(values.ok()) << values.status().ToString();
  ASSERT_TRUE((*store)->Stat().ok());

  const protocol::VolumeTraffic after = Traffic();
  EXPECT_EQ(after.requests, opened.requests + 3);
  EXPECT_EQ(after.get_requests, 1u);
  EXPECT_EQ(after.commit_requests, 1u);
  EXPECT_EQ(after.keys_read, keys.size());
  const size_t commit_bytes = kFrameHeaderSize + protocol::Encode(batch).size();
  const size_t get_bytes =
      kFrameHeaderSize + protocol::Encode(protocol::GetRequest{keys}).size();
  EXPECT_EQ(after.bytes_received, opened.bytes_received + commit_bytes +
                                      get_bytes + kFrameHeaderSize);
  const size_t values_bytes =
      kFrameHeaderSize +
      protocol::Encode(protocol::GetResponse{*values}).size();
  // STAT's reply has a fixed size.
  const size_t stat_bytes =
      kFrameHeaderSize + protocol::Encode(StoreStats{}).size();
  EXPECT_EQ(after.bytes_sent,
            opened.bytes_sent + kFrameHeaderSize + values_bytes + stat_bytes);
}

// Gets are split into requests by the largest value the client expects:
// 15 keys of up to 4 MiB fit a frame, 40 keys of 4 KiB blocks fit one
// request of about 1 MiB.
TEST_F(TrafficTest, givenSmallBlocksDeclared_whenGettingManyKeys_thenOneGet) {
  constexpr size_t kSealedBlock = 4096 + 52;  // a sealed 4 KiB block
  std::vector<std::string> keys;
  CommitBatch batch;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("block" + std::to_string(i));
    batch.puts.emplace_back(keys.back(),
                            std::string(kSealedBlock, 'a' + i % 26));
  }
  {
    auto store = RemoteBlockStore::Open(host_.ClientOptions(kVolume));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Commit(batch).ok());
    auto values = (*store)->Get(keys);
    ASSERT_TRUE(values.ok()) << values.status().ToString();
    EXPECT_EQ(Traffic().get_requests, 3u);  // 15 + 15 + 10
    ASSERT_TRUE((*store)->Close().ok());
  }
  RemoteOptions options = host_.ClientOptions(kVolume);
  options.max_value_size = kSealedBlock;
  auto store = RemoteBlockStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  auto values = (*store)->Get(keys);

  ASSERT_TRUE(values.ok()) << values.status().ToString();
  EXPECT_EQ(Traffic().get_requests, 4u);
  ASSERT_EQ(values->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ((*values)[i], batch.puts[i].second);
  }
}

TEST_F(TrafficTest, givenAdminSocket_whenVolumeStats_thenSameCounters) {
  auto store = RemoteBlockStore::Open(host_.ClientOptions(kVolume));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Ping().ok());
  auto admin = AdminClient::Connect(*host_.server().admin_address());
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();

  auto stats = (*admin)->VolumeStats(kVolume);

  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->requests, 2u);  // OPEN and PING
  EXPECT_EQ(*stats, Traffic());
  EXPECT_EQ((*admin)->VolumeStats("no-such-volume").status().code(),
            StatusCode::kNotFound);
}

TEST_F(TrafficTest, givenDeletedAndRecreatedVolume_whenStats_thenStartsAtZero) {
  {
    auto store = RemoteBlockStore::Open(host_.ClientOptions(kVolume));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Close().ok());
  }
  ASSERT_NE(Traffic().requests, 0u);
  VolumeManager& manager = host_.server().volume_manager();
  ASSERT_TRUE(manager.DeleteVolume(kVolume).ok());
  EXPECT_EQ(manager.TrafficOf(kVolume).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(manager.CreateVolume(kVolume, 1 << 20).ok());
  EXPECT_EQ(Traffic(), protocol::VolumeTraffic{});
}

}  // namespace
}  // namespace enclavefs

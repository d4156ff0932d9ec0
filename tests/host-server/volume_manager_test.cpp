#include "host-server/volume_manager.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/host-server/test_support.h"

namespace enclavefs {
namespace {

using testing::kClientId;
using testing::kOtherClientId;
using testing::TempDir;

class VolumeManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = RocksDbVolumes::Open(dir_.Sub("store"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    volumes_ = std::move(*opened);
    manager_ = std::make_unique<VolumeManager>(
        *volumes_, [this](SessionId session, const std::string& volume) {
          taken_over_.emplace_back(session, volume);
        });
    ASSERT_TRUE(manager_->CreateVolume("vol", 1 << 20).ok());
  }

  uint64_t Epoch() { return volumes_->GetVolume("vol")->epoch; }

  const std::string token_ = std::string(testing::kToken);
  TempDir dir_;
  std::unique_ptr<RocksDbVolumes> volumes_;
  std::unique_ptr<VolumeManager> manager_;
  std::vector<std::pair<SessionId, std::string>> taken_over_;
};

CommitBatch OnePut(std::string key) {
  CommitBatch batch;
  batch.puts.emplace_back(std::move(key), "value");
  return batch;
}

TEST_F(VolumeManagerTest, givenHeldVolume_whenOtherSessionAcquires_thenBusy) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  auto second = manager_->Acquire("vol", token_, false, 2, kClientId);
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  EXPECT_NE(second.status().message().find("busy"), std::string::npos);
  EXPECT_TRUE(manager_->IsHeld("vol"));
}

TEST_F(VolumeManagerTest,
       givenReleasedLease_whenOtherSessionAcquires_thenGranted) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  manager_->Release("vol", 1);
  EXPECT_FALSE(manager_->IsHeld("vol"));
  EXPECT_TRUE(manager_->Acquire("vol", token_, false, 2, kClientId).ok());
}

TEST_F(VolumeManagerTest,
       givenOtherHolder_whenReleasedByNonHolder_thenStillHeld) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  manager_->Release("vol", 2);
  EXPECT_TRUE(manager_->IsHeld("vol"));
}

TEST_F(VolumeManagerTest,
       givenTakeover_whenOldHolderCommits_thenFencedAndNotified) {
  auto first = manager_->Acquire("vol", token_, false, 1, kClientId);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->store->Commit(OnePut("a")).ok());

  auto second = manager_->Acquire("vol", token_, true, 2, kOtherClientId);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_GT(second->epoch, first->epoch);
  EXPECT_EQ(first->store->Commit(OnePut("b")).code(), StatusCode::kFenced);
  EXPECT_TRUE(second->store->Commit(OnePut("c")).ok());
  ASSERT_EQ(taken_over_.size(), 1u);
  EXPECT_EQ(taken_over_[0].first, 1u);
  EXPECT_EQ(taken_over_[0].second, "vol");

  // The old holder's late Release must not drop the new lease.
  manager_->Release("vol", 1);
  EXPECT_TRUE(manager_->IsHeld("vol"));
}

TEST_F(VolumeManagerTest,
       givenWrongToken_whenAcquire_thenPermissionDeniedAndNothingChanges) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  const uint64_t epoch = Epoch();

  auto intruder = manager_->Acquire("vol", "another-token-0123456789", true, 2,
                                    kOtherClientId);
  EXPECT_EQ(intruder.status().code(), StatusCode::kPermissionDenied);
  // Same answer as for a free volume: holding is not revealed.
  EXPECT_EQ(intruder.status().message(), "wrong access token for volume vol");
  EXPECT_EQ(Epoch(), epoch);
  EXPECT_TRUE(taken_over_.empty());
  manager_->Release("vol", 1);
  EXPECT_FALSE(manager_->IsHeld("vol"));
}

TEST_F(VolumeManagerTest, givenFirstClaim_whenAcquiredAgain_thenTokenIsBound) {
  EXPECT_FALSE(volumes_->GetVolume("vol")->token_bound);
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  EXPECT_TRUE(volumes_->GetVolume("vol")->token_bound);
  manager_->Release("vol", 1);
  EXPECT_EQ(
      manager_->Acquire("vol", "another-token-0123456789", false, 2, kClientId)
          .status()
          .code(),
      StatusCode::kPermissionDenied);
  EXPECT_TRUE(manager_->Acquire("vol", token_, false, 3, kClientId).ok());
}

TEST_F(VolumeManagerTest,
       givenOtherClientBetween_whenFirstClientAcquiresAgain_thenNewRun) {
  auto first = manager_->Acquire("vol", token_, false, 1, kClientId);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->holder_since, first->epoch);
  manager_->Release("vol", 1);
  auto again = manager_->Acquire("vol", token_, false, 2, kClientId);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->holder_since, first->epoch);  // same client: run goes on

  auto other = manager_->Acquire("vol", token_, true, 3, kOtherClientId);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->holder_since, other->epoch);
  manager_->Release("vol", 3);
  auto back = manager_->Acquire("vol", token_, false, 4, kClientId);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->holder_since, back->epoch);
}

TEST_F(VolumeManagerTest, givenMissingVolume_whenAcquire_thenNotFound) {
  EXPECT_EQ(
      manager_->Acquire("nope", token_, false, 1, kClientId).status().code(),
      StatusCode::kNotFound);
}

TEST_F(VolumeManagerTest, givenHeldVolume_whenDeleted_thenBusyUntilReleased) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  Status refused = manager_->DeleteVolume("vol");
  EXPECT_EQ(refused.code(), StatusCode::kBusy);
  EXPECT_EQ(refused.message(),
            "volume vol is held by a client; close it first");
  EXPECT_TRUE(volumes_->GetVolume("vol").ok());

  manager_->Release("vol", 1);
  EXPECT_TRUE(manager_->DeleteVolume("vol").ok());
  EXPECT_EQ(volumes_->GetVolume("vol").status().code(), StatusCode::kNotFound);
}

TEST_F(VolumeManagerTest, givenHeldVolume_whenResized_thenAllowed) {
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  EXPECT_TRUE(manager_->ResizeVolume("vol", 4 << 20).ok());
  EXPECT_EQ(volumes_->GetVolume("vol")->quota_bytes, 4u << 20);
}

TEST_F(VolumeManagerTest, givenOneHeldVolume_whenListed_thenHeldFlagsMatch) {
  ASSERT_TRUE(manager_->CreateVolume("other", 1 << 20).ok());
  ASSERT_TRUE(manager_->Acquire("vol", token_, false, 1, kClientId).ok());
  auto list = manager_->ListVolumes();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "other");
  EXPECT_FALSE((*list)[0].held);
  EXPECT_EQ((*list)[1].name, "vol");
  EXPECT_TRUE((*list)[1].held);
  EXPECT_EQ((*list)[1].quota_bytes, 1u << 20);
}

}  // namespace
}  // namespace enclavefs

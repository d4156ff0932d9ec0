// Tests of SealedBlockStore: the BlockStore contract suite over a sealed
// in-memory store, plus what the host sees and what tampering it detects.
#include "fs/sealed_block_store.h"

#include <gtest/gtest.h>

#include <bit>

#include "blockstore/in_memory_block_store.h"
#include "fs/sealer_impl.h"
#include "tests/blockstore/block_store_contract.h"

namespace enclavefs {
namespace {

std::shared_ptr<SealingContext> TestContext() {
  auto ctx = std::make_shared<SealingContext>();
  ctx->cipher = CipherId::kXChaCha20Poly1305;
  ctx->block_size = 4096;
  ctx->node_size = 4096;
  RandomBytes(ctx->uuid);
  RandomBytes(ctx->encryption_key.span());
  RandomBytes(ctx->naming_key.span());
  return ctx;
}

struct SealedInMemoryFactory {
  // Sealing pads every value to a size class, so usage exceeds the model.
  static constexpr bool kExactUsage = false;

  std::unique_ptr<BlockStore> Make(uint64_t quota_bytes) {
    return std::make_unique<SealedBlockStore>(
        std::make_unique<InMemoryBlockStore>(quota_bytes),
        std::make_unique<SealerImpl>(TestContext()));
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Sealed, BlockStoreContractTest,
                               ::testing::Types<SealedInMemoryFactory>);

class SealedBlockStoreTest : public ::testing::Test {
 protected:
  SealedBlockStoreTest() : context_(TestContext()) {
    auto inner = std::make_unique<InMemoryBlockStore>();
    host_ = inner.get();
    store_ = std::make_unique<SealedBlockStore>(
        std::move(inner), std::make_unique<SealerImpl>(context_));
  }

  Status Put(const std::string& key, const std::string& value) {
    CommitBatch batch;
    batch.puts = {{key, value}};
    return store_->Commit(batch);
  }

  std::shared_ptr<SealingContext> context_;
  InMemoryBlockStore* host_;  // owned by store_
  std::unique_ptr<SealedBlockStore> store_;
};

TEST_F(SealedBlockStoreTest,
       givenValues_whenHostInspects_thenOnlyKeysAndSizeClassesVisible) {
  const std::string secret = "attack at dawn, attack at dawn";
  ASSERT_TRUE(Put("k1", secret).ok());
  ASSERT_TRUE(Put("k2", std::string(5000, 'x')).ok());
  ASSERT_TRUE(Put("k3", "").ok());
  auto blocks = host_->Snapshot();
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks["k1"].find("attack"), std::string::npos);
  EXPECT_EQ(blocks["k1"].size(), 4096 + kSealedOverhead);
  EXPECT_EQ(blocks["k2"].size(), 8192 + kSealedOverhead);
  EXPECT_EQ(blocks["k3"].size(), 4096 + kSealedOverhead);
  auto got = store_->GetOne("k1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, secret);
}

TEST_F(SealedBlockStoreTest,
       givenHostFlipsOrSwapsValues_whenGet_thenCorruption) {
  ASSERT_TRUE(Put("a", "value a").ok());
  ASSERT_TRUE(Put("b", "value b").ok());
  auto blocks = host_->Snapshot();
  auto flipped = blocks;
  flipped["a"][100] ^= 1;
  host_->Restore(flipped);
  EXPECT_EQ(store_->GetOne("a").status().code(), StatusCode::kCorruption);
  auto swapped = blocks;
  std::swap(swapped["a"], swapped["b"]);
  host_->Restore(swapped);
  EXPECT_EQ(store_->GetOne("a").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store_->GetOne("b").status().code(), StatusCode::kCorruption);
}

TEST_F(SealedBlockStoreTest,
       givenHostReplaysOlderValue_whenGet_thenAcceptedNoFreshness) {
  // Documented limit: freshness is the Merkle tree's job, not this layer's.
  ASSERT_TRUE(Put("k", "old").ok());
  auto old_blocks = host_->Snapshot();
  ASSERT_TRUE(Put("k", "new").ok());
  host_->Restore(old_blocks);
  auto got = store_->GetOne("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "old");
}

TEST_F(
    SealedBlockStoreTest,
    givenPlaintextCondition_whenCurrentMatches_thenCommitAppliesOnSealedBytes) {
  ASSERT_TRUE(Put("head", "v1").ok());
  CommitBatch batch;
  batch.puts = {{"head", "v2"}};
  batch.condition = CommitCondition{"head", "v1"};
  ASSERT_TRUE(store_->Commit(batch).ok());
  EXPECT_EQ(*store_->GetOne("head"), "v2");
  EXPECT_EQ(store_->Commit(batch).code(), StatusCode::kConflict);
  EXPECT_EQ(*store_->GetOne("head"), "v2");
}

TEST_F(SealedBlockStoreTest,
       givenValueOverSealedCapacity_whenCommit_thenInvalidArgument) {
  EXPECT_EQ(Put("big", std::string(kMaxOpaqueClassSize + 1, 'x')).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Put("fits", std::string(kMaxOpaqueClassSize, 'x')).ok());
}

TEST_F(SealedBlockStoreTest,
       givenQuota_whenSealedSizeExceedsIt_thenQuotaExceeded) {
  auto store = std::make_unique<SealedBlockStore>(
      std::make_unique<InMemoryBlockStore>(2 * (4096 + kSealedOverhead + 1)),
      std::make_unique<SealerImpl>(context_));
  CommitBatch batch;
  batch.puts = {{"a", "1"}, {"b", "2"}};
  ASSERT_TRUE(store->Commit(batch).ok());
  batch.puts = {{"c", "3"}};
  EXPECT_EQ(store->Commit(batch).code(), StatusCode::kQuotaExceeded);
}

}  // namespace
}  // namespace enclavefs

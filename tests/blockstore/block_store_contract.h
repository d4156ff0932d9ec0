// The BlockStore contract suite: one set of typed tests that every
// BlockStore implementation must pass.
//
// Instantiate it with a Factory type:
//
//   struct MyFactory {
//     // Returns a fresh, empty store with the given quota (0: unlimited, or
//     // at least large enough for every test). May be called several times
//     // per test; returns nullptr on failure. Stores are destroyed before
//     // the factory, so it may own what they borrow (temp dirs, servers).
//     std::unique_ptr<BlockStore> Make(uint64_t quota_bytes);
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(Mine, BlockStoreContractTest,
//                                  ::testing::Types<MyFactory>);
//
// The tests compare each store against a std::map model, never against
// hard-coded results. Also provides TempDir, which factories need often.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockstore/block_store.h"

namespace enclavefs::contract {

// A directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/enclavefs-test-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty if mkdtemp failed.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}

// Deterministic pseudo-random bytes, so failures reproduce.
inline std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

inline CommitBatch PutBatch(
    std::vector<std::pair<std::string, std::string>> puts) {
  CommitBatch batch;
  batch.puts = std::move(puts);
  return batch;
}

inline uint64_t ModelBytes(const std::map<std::string, std::string>& model) {
  uint64_t total = 0;
  for (const auto& [key, value] : model) total += key.size() + value.size();
  return total;
}

// Every key of `store`, paging with `limit`; checks order and `more` on the
// way.
inline std::vector<std::string> ListAll(BlockStore& store, size_t limit) {
  std::vector<std::string> keys;
  std::string after;
  for (;;) {
    auto page = store.ListKeys(after, limit);
    if (!page.ok()) {
      ADD_FAILURE() << page.status().ToString();
      return keys;
    }
    EXPECT_LE(page->keys.size(), limit);
    for (const auto& key : page->keys) {
      EXPECT_GT(key, after) << "keys must ascend strictly";
      keys.push_back(key);
      after = key;
    }
    if (!page->more) return keys;
    if (page->keys.size() != limit) {
      ADD_FAILURE() << "a page with more=true must be full";
      return keys;
    }
  }
}

// Stores that pad or seal values (fs/SealedBlockStore) use more than key +
// value bytes; their factory declares `static constexpr bool kExactUsage =
// false;`. Usage is then only checked to cover the model, and the tests of
// exact quota arithmetic are skipped.
template <typename Factory>
constexpr bool HasExactUsage() {
  if constexpr (requires { Factory::kExactUsage; }) {
    return Factory::kExactUsage;
  } else {
    return true;
  }
}
// Set by the fixture from HasExactUsage<Factory>() for ExpectStoreHolds.
inline bool& ExactUsageExpected() {
  static bool exact = true;
  return exact;
}

// Checks that `store` holds exactly `model`: values, usage and listing.
inline void ExpectStoreHolds(BlockStore& store,
                             const std::map<std::string, std::string>& model) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : model) keys.push_back(key);
  if (!keys.empty()) {
    auto got = store.Get(keys);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE((*got)[i].has_value()) << "missing key #" << i;
      EXPECT_TRUE(*(*got)[i] == model.at(keys[i])) << "wrong value #" << i;
    }
  }
  auto stats = store.Stat();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  if (ExactUsageExpected()) {
    EXPECT_EQ(stats->used_bytes, ModelBytes(model));
  } else {
    EXPECT_GE(stats->used_bytes, ModelBytes(model));
  }
  EXPECT_EQ(stats->block_count, model.size());
  EXPECT_EQ(ListAll(store, 1000), keys);
}

}  // namespace enclavefs::contract

// Asserts that a Status or Result is OK, printing the error otherwise.
#define EFS_ASSERT_OK(expr)                                                \
  do {                                                                     \
    const ::enclavefs::Status efs_assert_status_ =                         \
        ::enclavefs::contract::ToStatus(expr);                             \
    ASSERT_TRUE(efs_assert_status_.ok()) << efs_assert_status_.ToString(); \
  } while (0)

namespace enclavefs {

template <typename Factory>
class BlockStoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    contract::ExactUsageExpected() = contract::HasExactUsage<Factory>();
    store_ = factory_.Make(0);
    ASSERT_NE(store_, nullptr) << "the factory could not make a store";
  }

  BlockStore& store() { return *store_; }

  // Commits `batch` to store() and records it in model_ if it succeeds.
  Status CommitAndTrack(const CommitBatch& batch) {
    Status s = store_->Commit(batch);
    if (s.ok()) {
      for (const auto& [key, value] : batch.puts) model_[key] = value;
      for (const auto& key : batch.deletes) model_.erase(key);
    }
    return s;
  }

  // Declared first: stores borrow from the factory and die before it.
  Factory factory_;
  std::unique_ptr<BlockStore> store_;
  std::map<std::string, std::string> model_;
};

TYPED_TEST_SUITE_P(BlockStoreContractTest);

using contract::ExpectStoreHolds;
using contract::ListAll;
using contract::PutBatch;
using contract::RandomBytes;

TYPED_TEST_P(BlockStoreContractTest,
             givenEmptyStore_whenGetMissingKey_thenNullopt) {
  auto got = this->store().Get(std::vector<std::string>{"missing"});
  EFS_ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_EQ(this->store().GetOne("missing").status().code(),
            StatusCode::kNotFound);
}

TYPED_TEST_P(BlockStoreContractTest, givenPut_whenGet_thenSameValue) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", "value"}})));
  auto one = this->store().GetOne("k");
  EFS_ASSERT_OK(one);
  EXPECT_EQ(*one, "value");
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenSomeKeys_whenGetManyWithMissingAndDuplicates_thenRequestOrder) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"a", "1"}, {"b", "22"}})));
  const std::vector<std::string> keys = {"b", "x", "a", "b", "y", "a"};
  auto got = this->store().Get(keys);
  EFS_ASSERT_OK(got);
  ASSERT_EQ(got->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = this->model_.find(keys[i]);
    if (it == this->model_.end()) {
      EXPECT_FALSE((*got)[i].has_value()) << keys[i];
    } else {
      EXPECT_EQ((*got)[i], it->second) << keys[i];
    }
  }
}

TYPED_TEST_P(BlockStoreContractTest,
             givenSomeKeys_whenGetShared_thenSameValuesAsGet) {
  EFS_ASSERT_OK(this->CommitAndTrack(
      PutBatch({{"a", "1"}, {"b", RandomBytes(70000, 5)}, {"e", ""}})));
  const std::vector<std::string> keys = {"b", "x", "a", "e", "b"};
  auto copied = this->store().Get(keys);
  auto shared = this->store().GetShared(keys);
  EFS_ASSERT_OK(copied);
  EFS_ASSERT_OK(shared);
  ASSERT_EQ(shared->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& value = (*shared)[i];
    ASSERT_EQ(value.has_value(), (*copied)[i].has_value()) << keys[i];
    if (!value) continue;
    EXPECT_NE(value->owner, nullptr) << keys[i];
    EXPECT_EQ(std::string_view(value->bytes.data(), value->bytes.size()),
              *(*copied)[i])
        << keys[i];
  }
  // Each value's bytes are its own: changing one leaves the others intact.
  std::fill((*shared)[0]->bytes.begin(), (*shared)[0]->bytes.end(), 'z');
  EXPECT_EQ(
      std::string_view((*shared)[4]->bytes.data(), (*shared)[4]->bytes.size()),
      this->model_.at("b"));
  EXPECT_EQ(std::string_view((*shared)[2]->bytes.data(), 1), "1");
  // The owner alone keeps the bytes alive (ASan checks the read).
  SharedValue kept;
  {
    auto again = this->store().GetShared(std::vector<std::string>{"a", "b"});
    EFS_ASSERT_OK(again);
    kept = *(*again)[1];
  }
  EXPECT_EQ(std::string_view(kept.bytes.data(), kept.bytes.size()),
            this->model_.at("b"));
}

TYPED_TEST_P(BlockStoreContractTest,
             givenExistingKey_whenOverwritten_thenNewValueAndUsage) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", "short"}})));
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", "a much longer value"}})));
  ExpectStoreHolds(this->store(), this->model_);
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", ""}})));
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(BlockStoreContractTest, givenExistingKey_whenDeleted_thenGone) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", "v"}, {"keep", "w"}})));
  CommitBatch del;
  del.deletes = {"k"};
  EFS_ASSERT_OK(this->CommitAndTrack(del));
  auto got = this->store().Get(std::vector<std::string>{"k"});
  EFS_ASSERT_OK(got);
  EXPECT_FALSE((*got)[0].has_value());
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenAbsentKey_whenDeleted_thenOkAndNothingChanges) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"k", "v"}})));
  CommitBatch del;
  del.deletes = {"never-written"};
  EFS_ASSERT_OK(this->CommitAndTrack(del));
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenMalformedBatch_whenCommitted_thenInvalidArgumentAndNothingApplied) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"old", "v"}})));
  std::vector<CommitBatch> bad(5);
  bad[0].puts = {{"new", "1"}, {"new", "2"}};  // duplicate put
  bad[1].puts = {{"new", "1"}};                // put and delete
  bad[1].deletes = {"new"};
  bad[2].puts = {{"new", "1"}, {"", "empty key"}};  // empty key
  bad[3].puts = {{"new", "1"}};                     // oversized key
  bad[3].deletes = {"old", std::string(kMaxKeySize + 1, 'k')};
  bad[4].puts = {{"new", "1"}, {"big", std::string(kMaxValueSize + 1, 'v')}};
  bad[4].deletes = {"old"};
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(this->store().Commit(bad[i]).code(), StatusCode::kInvalidArgument)
        << "batch #" << i;
  }
  ExpectStoreHolds(this->store(), this->model_);
  auto got = this->store().Get(std::vector<std::string>{"new", "big"});
  EFS_ASSERT_OK(got);
  EXPECT_FALSE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());
}

TYPED_TEST_P(BlockStoreContractTest,
             givenExpectedAbsentCondition_whenKeyAbsent_thenApplied) {
  CommitBatch batch = PutBatch({{"lock", "held"}, {"data", "d"}});
  batch.condition = CommitCondition{"lock", std::nullopt};
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenExpectedAbsentCondition_whenKeyPresent_thenConflictAndNothingApplied) {
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{"lock", "held"}})));
  CommitBatch batch = PutBatch({{"lock", "mine"}, {"data", "d"}});
  batch.condition = CommitCondition{"lock", std::nullopt};
  EXPECT_EQ(this->store().Commit(batch).code(), StatusCode::kConflict);
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenExpectedValueCondition_whenValueMatches_thenApplied) {
  EFS_ASSERT_OK(
      this->CommitAndTrack(PutBatch({{"header", "v1"}, {"old", "x"}})));
  CommitBatch batch = PutBatch({{"header", "v2"}});
  batch.deletes = {"old"};
  batch.condition = CommitCondition{"header", "v1"};
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenExpectedValueCondition_whenValueDiffersOrAbsent_thenConflictAndNothingApplied) {
  EFS_ASSERT_OK(
      this->CommitAndTrack(PutBatch({{"header", "v1"}, {"old", "x"}})));
  for (const std::string cond_key : {"header", "absent"}) {
    CommitBatch batch = PutBatch({{"header", "v3"}, {"new", "n"}});
    batch.deletes = {"old"};
    // "v1" with a different length, and a same-length different value.
    for (const std::string expected : {"v", "v2"}) {
      batch.condition = CommitCondition{cond_key, expected};
      EXPECT_EQ(this->store().Commit(batch).code(), StatusCode::kConflict)
          << cond_key << " / " << expected;
    }
  }
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenQuota_whenCommitWouldExceedIt_thenQuotaExceededAndNothingApplied) {
  if (!contract::HasExactUsage<TypeParam>()) GTEST_SKIP() << "inexact usage";
  constexpr uint64_t kQuota = 1000;
  auto store = this->factory_.Make(kQuota);
  ASSERT_NE(store, nullptr);
  std::map<std::string, std::string> model = {{"a", std::string(500, 'a')}};
  EFS_ASSERT_OK(store->Commit(PutBatch({model.begin(), model.end()})));
  auto stats = store->Stat();
  EFS_ASSERT_OK(stats);
  EXPECT_EQ(stats->quota_bytes, kQuota);
  const uint64_t room = kQuota - contract::ModelBytes(model);

  // One byte too many, spread over several puts (the last one has delta 0).
  CommitBatch over = PutBatch({{"b", std::string(room - 1, 'b')},
                               {"c", ""},
                               {"a", std::string(500, 'A')}});
  EXPECT_EQ(store->Commit(over).code(), StatusCode::kQuotaExceeded);
  ExpectStoreHolds(*store, model);

  // Exactly full is allowed.
  over.puts.pop_back();
  over.puts[0].second.pop_back();
  EFS_ASSERT_OK(store->Commit(over));
  for (const auto& [key, value] : over.puts) model[key] = value;
  ExpectStoreHolds(*store, model);
  EXPECT_EQ(contract::ModelBytes(model), kQuota);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenFullQuota_whenCommitDoesNotGrowUsage_thenApplied) {
  if (!contract::HasExactUsage<TypeParam>()) GTEST_SKIP() << "inexact usage";
  constexpr uint64_t kQuota = 600;
  auto store = this->factory_.Make(kQuota);
  ASSERT_NE(store, nullptr);
  std::map<std::string, std::string> model = {{"a", std::string(299, 'a')},
                                              {"b", std::string(299, 'b')}};
  EFS_ASSERT_OK(store->Commit(PutBatch({model.begin(), model.end()})));
  ASSERT_EQ(contract::ModelBytes(model), kQuota);

  // Same-size overwrite: delta 0.
  model["a"] = std::string(299, 'x');
  EFS_ASSERT_OK(store->Commit(PutBatch({{"a", model["a"]}})));
  // Add a key while deleting a bigger one: delta < 0.
  CommitBatch shrink = PutBatch({{"c", std::string(100, 'c')}});
  shrink.deletes = {"b"};
  EFS_ASSERT_OK(store->Commit(shrink));
  model.erase("b");
  model["c"] = std::string(100, 'c');
  ExpectStoreHolds(*store, model);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenPutsOverwritesAndDeletes_whenStat_thenUsageExact) {
  std::mt19937 rng(7);
  for (int round = 0; round < 30; ++round) {
    CommitBatch batch;
    std::set<std::string> used;
    for (int i = 0; i < 5; ++i) {
      std::string key = "key" + std::to_string(rng() % 20);
      if (!used.insert(key).second) continue;
      if (rng() % 3 == 0) {
        batch.deletes.push_back(key);
      } else {
        batch.puts.emplace_back(key, RandomBytes(rng() % 300, rng()));
      }
    }
    EFS_ASSERT_OK(this->CommitAndTrack(batch));
  }
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenThousandKeys_whenListedWithLimitSeven_thenEveryKeyOnceInOrder) {
  std::mt19937 rng(42);
  std::set<std::string> keys;
  while (keys.size() < 1000) keys.insert(RandomBytes(1 + rng() % 12, rng()));
  std::vector<std::string> shuffled(keys.begin(), keys.end());
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (size_t i = 0; i < shuffled.size(); i += 100) {
    CommitBatch batch;
    for (size_t j = i; j < i + 100; ++j)
      batch.puts.emplace_back(shuffled[j], "");
    EFS_ASSERT_OK(this->store().Commit(batch));
  }
  const std::vector<std::string> listed = ListAll(this->store(), 7);
  EXPECT_EQ(listed, std::vector<std::string>(keys.begin(), keys.end()));

  // Starting after a key that is not stored.
  std::string probe = *std::next(keys.begin(), 500) + std::string(1, '\0');
  while (keys.count(probe)) probe.push_back('\0');
  auto page = this->store().ListKeys(probe, 3);
  EFS_ASSERT_OK(page);
  auto expected = keys.upper_bound(probe);
  for (const auto& key : page->keys) EXPECT_EQ(key, *expected++);
  EXPECT_TRUE(page->more);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenKeys_whenListReachesTheEnd_thenMoreIsFalse) {
  auto empty = this->store().ListKeys("", 5);
  EFS_ASSERT_OK(empty);
  EXPECT_TRUE(empty->keys.empty());
  EXPECT_FALSE(empty->more);

  EFS_ASSERT_OK(
      this->CommitAndTrack(PutBatch({{"a", ""}, {"b", ""}, {"c", ""}})));
  auto exact = this->store().ListKeys("", 3);
  EFS_ASSERT_OK(exact);
  EXPECT_EQ(exact->keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(exact->more);
  auto after_last = this->store().ListKeys("c", 3);
  EFS_ASSERT_OK(after_last);
  EXPECT_TRUE(after_last->keys.empty());
  EXPECT_FALSE(after_last->more);
}

TYPED_TEST_P(BlockStoreContractTest,
             whenListWithLimitZero_thenInvalidArgument) {
  EXPECT_EQ(this->store().ListKeys("", 0).status().code(),
            StatusCode::kInvalidArgument);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenEmptyOrOversizedKey_whenGetOrConditioned_thenInvalidArgument) {
  const std::string longest(kMaxKeySize, 'k');
  EFS_ASSERT_OK(this->CommitAndTrack(PutBatch({{longest, "v"}})));
  for (const std::string& bad :
       {std::string(), std::string(kMaxKeySize + 1, 'k')}) {
    EXPECT_EQ(
        this->store().Get(std::vector<std::string>{"ok", bad}).status().code(),
        StatusCode::kInvalidArgument);
    CommitBatch batch = PutBatch({{"new", "v"}});
    batch.condition = CommitCondition{bad, std::nullopt};
    EXPECT_EQ(this->store().Commit(batch).code(), StatusCode::kInvalidArgument);
  }
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenValuesOfZeroFourKiBAndOneMiB_whenRoundTripped_thenByteExact) {
  CommitBatch batch = PutBatch({{"zero", ""},
                                {"4k", RandomBytes(4096, 1)},
                                {"1m", RandomBytes(1 << 20, 2)}});
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(
    BlockStoreContractTest,
    givenBinaryKeysWithNulAndFF_whenStoredAndListed_thenExactAndByteOrdered) {
  const std::vector<std::string> keys = {std::string("\0", 1),
                                         std::string("\0\0", 2),
                                         std::string("a\0b", 3),
                                         "\xff",
                                         "\xff\xff",
                                         "\x7f",
                                         "\x80",
                                         "a"};
  CommitBatch batch;
  for (size_t i = 0; i < keys.size(); ++i) {
    batch.puts.emplace_back(keys[i],
                            RandomBytes(i * 3, static_cast<uint32_t>(i)));
  }
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  // std::map orders std::string bytewise unsigned, the contract's order.
  ExpectStoreHolds(this->store(), this->model_);
  auto page = this->store().ListKeys(std::string("\0", 1), 1);
  EFS_ASSERT_OK(page);
  EXPECT_EQ(page->keys, std::vector<std::string>{std::string("\0\0", 2)});
  EXPECT_TRUE(page->more);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenFourThreads_whenCommittingDisjointKeys_thenAllLand) {
  constexpr int kThreads = 4;
  constexpr int kCommits = 20;
  constexpr int kKeysPerCommit = 5;
  auto key_of = [](int t, int c, int k) {
    return "t" + std::to_string(t) + "/" +
           std::to_string(c * kKeysPerCommit + k);
  };
  std::vector<Status> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCommits && failures[t].ok(); ++c) {
        CommitBatch batch;
        for (int k = 0; k < kKeysPerCommit; ++k) {
          batch.puts.emplace_back(key_of(t, c, k), key_of(t, c, k) + "=value");
        }
        failures[t] = this->store().Commit(batch);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EFS_ASSERT_OK(failures[t]);
    for (int c = 0; c < kCommits; ++c) {
      for (int k = 0; k < kKeysPerCommit; ++k) {
        this->model_[key_of(t, c, k)] = key_of(t, c, k) + "=value";
      }
    }
  }
  ExpectStoreHolds(this->store(), this->model_);
}

TYPED_TEST_P(BlockStoreContractTest,
             givenDurableFlag_whenCommitted_thenAppliedLikeAnyCommit) {
  CommitBatch batch = PutBatch({{"durable", "yes"}});
  batch.durable = true;
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  CommitBatch del;
  del.deletes = {"durable"};
  del.durable = true;
  EFS_ASSERT_OK(this->CommitAndTrack(del));
  EFS_ASSERT_OK(this->CommitAndTrack(batch));
  ExpectStoreHolds(this->store(), this->model_);
}

REGISTER_TYPED_TEST_SUITE_P(
    BlockStoreContractTest, givenEmptyStore_whenGetMissingKey_thenNullopt,
    givenPut_whenGet_thenSameValue,
    givenSomeKeys_whenGetManyWithMissingAndDuplicates_thenRequestOrder,
    givenSomeKeys_whenGetShared_thenSameValuesAsGet,
    givenExistingKey_whenOverwritten_thenNewValueAndUsage,
    givenExistingKey_whenDeleted_thenGone,
    givenAbsentKey_whenDeleted_thenOkAndNothingChanges,
    givenMalformedBatch_whenCommitted_thenInvalidArgumentAndNothingApplied,
    givenExpectedAbsentCondition_whenKeyAbsent_thenApplied,
    givenExpectedAbsentCondition_whenKeyPresent_thenConflictAndNothingApplied,
    givenExpectedValueCondition_whenValueMatches_thenApplied,
    givenExpectedValueCondition_whenValueDiffersOrAbsent_thenConflictAndNothingApplied,
    givenQuota_whenCommitWouldExceedIt_thenQuotaExceededAndNothingApplied,
    givenFullQuota_whenCommitDoesNotGrowUsage_thenApplied,
    givenPutsOverwritesAndDeletes_whenStat_thenUsageExact,
    givenThousandKeys_whenListedWithLimitSeven_thenEveryKeyOnceInOrder,
    givenKeys_whenListReachesTheEnd_thenMoreIsFalse,
    whenListWithLimitZero_thenInvalidArgument,
    givenEmptyOrOversizedKey_whenGetOrConditioned_thenInvalidArgument,
    givenValuesOfZeroFourKiBAndOneMiB_whenRoundTripped_thenByteExact,
    givenBinaryKeysWithNulAndFF_whenStoredAndListed_thenExactAndByteOrdered,
    givenFourThreads_whenCommittingDisjointKeys_thenAllLand,
    givenDurableFlag_whenCommitted_thenAppliedLikeAnyCommit);

}  // namespace enclavefs

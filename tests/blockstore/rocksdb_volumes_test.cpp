// Volume-level behaviour of RocksDbVolumes: naming, isolation, tokens,
// fencing, persistence and concurrency. The per-volume BlockStore contract
// is covered by contract_test.cpp.
#include "blockstore/rocksdb_volumes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "blockstore/protocol.h"
#include "tests/blockstore/block_store_contract.h"

namespace enclavefs {
namespace {

using contract::PutBatch;

const std::string kToken = "token-0123456789abcdef";
const std::string kOtherToken = "token-fedcba9876543210";
const std::string kHolder = "client-a";
const std::string kOtherHolder = "client-b";

// Polls `done` until it holds or 30 s pass: for RocksDB's background
// threads, which signal nothing when they finish.
template <typename Predicate>
void WaitUntil(Predicate done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class RocksDbVolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Reopen();
  }

  void Reopen(const StoreOptions& options = {}) {
    volumes_.reset();  // the LOCK must be free before opening again
    auto opened = RocksDbVolumes::Open(dir_.path(), options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    volumes_ = std::move(opened).value();
  }

  std::unique_ptr<RocksDbBlockStore> OpenStore(
      const std::string& name, std::optional<uint64_t> epoch = std::nullopt) {
    auto store = volumes_->OpenVolume(name, epoch);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Names of the store directory's files ending in `extension` (".blob").
  std::set<std::string> FilesNamed(const std::string& extension) const {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      if (entry.path().extension() == extension) {
        names.insert(entry.path().filename());
      }
    }
    return names;
  }

  VolumeInfo Info(const std::string& name) {
    auto info = volumes_->GetVolume(name);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? *info : VolumeInfo{};
  }

  contract::TempDir dir_;
  std::unique_ptr<RocksDbVolumes> volumes_;
};

TEST_F(RocksDbVolumesTest,
       givenVolumes_whenListed_thenSortedByNameWithTheirInfo) {
  const std::vector<std::pair<std::string, uint64_t>> created = {
      {"b-vol", 100}, {"a.vol", 200}, {"C_vol", 300}};
  for (const auto& [name, quota] : created) {
    EFS_ASSERT_OK(volumes_->CreateVolume(name, quota));
  }
  auto listed = volumes_->ListVolumes();
  EFS_ASSERT_OK(listed);
  auto expected = created;
  std::sort(expected.begin(), expected.end());
  ASSERT_EQ(listed->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const VolumeInfo& info = (*listed)[i];
    EXPECT_EQ(info.name, expected[i].first);
    EXPECT_EQ(info.quota_bytes, expected[i].second);
    EXPECT_EQ(info.used_bytes, 0u);
    EXPECT_EQ(info.block_count, 0u);
    EXPECT_FALSE(info.token_bound);
    EXPECT_EQ(info.epoch, 0u);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(info.id, (*listed)[j].id);
  }
}

TEST_F(RocksDbVolumesTest,
       givenExistingVolume_whenCreatedAgain_thenAlreadyExistsAndQuotaKept) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 100));
  EXPECT_EQ(volumes_->CreateVolume("vol", 999).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(Info("vol").quota_bytes, 100u);
}

TEST_F(
    RocksDbVolumesTest,
    givenBadNameOrZeroQuota_whenCreated_thenInvalidArgumentAndNothingCreated) {
  for (const std::string& name :
       {std::string(), std::string(".hidden"), std::string("a/b"),
        std::string("sp ace"),
        std::string(protocol::kMaxVolumeNameSize + 1, 'x')}) {
    EXPECT_EQ(volumes_->CreateVolume(name, 100).code(),
              StatusCode::kInvalidArgument)
        << "'" << name << "'";
  }
  EXPECT_EQ(volumes_->CreateVolume("good", 0).code(),
            StatusCode::kInvalidArgument);
  auto listed = volumes_->ListVolumes();
  EFS_ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
}

TEST_F(RocksDbVolumesTest, givenMissingVolume_whenUsed_thenNotFound) {
  EXPECT_EQ(volumes_->DeleteVolume("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(volumes_->ResizeVolume("nope", 10).code(), StatusCode::kNotFound);
  EXPECT_EQ(volumes_->GetVolume("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(volumes_->OpenVolume("nope").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(volumes_->VerifyToken("nope", kToken).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(volumes_->Claim("nope", kToken, kHolder).status().code(),
            StatusCode::kNotFound);
}

TEST_F(RocksDbVolumesTest, givenVolume_whenResized_thenNewQuotaEnforced) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 100));
  auto store = OpenStore("vol");
  ASSERT_NE(store, nullptr);
  const CommitBatch big = PutBatch({{"k", std::string(150, 'v')}});
  EXPECT_EQ(store->Commit(big).code(), StatusCode::kQuotaExceeded);
  EFS_ASSERT_OK(volumes_->ResizeVolume("vol", 200));
  EXPECT_EQ(Info("vol").quota_bytes, 200u);
  EFS_ASSERT_OK(store->Commit(big));
  EXPECT_EQ(volumes_->ResizeVolume("vol", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Info("vol").quota_bytes, 200u);
}

TEST_F(RocksDbVolumesTest,
       givenVolumeShrunkBelowUsage_whenCommitting_thenOnlyGrowthRejected) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1000));
  auto store = OpenStore("vol");
  ASSERT_NE(store, nullptr);
  EFS_ASSERT_OK(store->Commit(
      PutBatch({{"a", std::string(300, 'a')}, {"b", std::string(300, 'b')}})));
  EFS_ASSERT_OK(volumes_->ResizeVolume("vol", 100));

  EXPECT_EQ(store->Commit(PutBatch({{"c", "x"}})).code(),
            StatusCode::kQuotaExceeded);
  // Still over quota afterwards, but the commit shrinks usage: allowed.
  CommitBatch shrink = PutBatch({{"c", std::string(50, 'c')}});
  shrink.deletes = {"a"};
  EFS_ASSERT_OK(store->Commit(shrink));
  contract::ExpectStoreHolds(
      *store, {{"b", std::string(300, 'b')}, {"c", std::string(50, 'c')}});
}

TEST_F(RocksDbVolumesTest,
       givenTwoVolumesWithSameKeys_whenWritten_thenIsolated) {
  EFS_ASSERT_OK(volumes_->CreateVolume("one", 1 << 20));
  EFS_ASSERT_OK(volumes_->CreateVolume("two", 1 << 20));
  auto one = OpenStore("one");
  auto two = OpenStore("two");
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  EFS_ASSERT_OK(one->Commit(PutBatch({{"k", "from one"}, {"only-one", "1"}})));
  EFS_ASSERT_OK(two->Commit(PutBatch({{"k", "from two, longer"}})));
  CommitBatch del;
  del.deletes = {"only-one"};
  EFS_ASSERT_OK(two->Commit(del));  // absent in two: must not touch one

  contract::ExpectStoreHolds(*one, {{"k", "from one"}, {"only-one", "1"}});
  contract::ExpectStoreHolds(*two, {{"k", "from two, longer"}});
}

TEST_F(RocksDbVolumesTest,
       givenDeletedVolume_whenRecreated_thenEmptyAndOldStoreNotFound) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  const uint64_t old_id = Info("vol").id;
  auto old_store = OpenStore("vol");
  ASSERT_NE(old_store, nullptr);
  EFS_ASSERT_OK(old_store->Commit(PutBatch({{"k", "old"}})));

  EFS_ASSERT_OK(volumes_->DeleteVolume("vol"));
  EXPECT_EQ(volumes_->GetVolume("vol").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(volumes_->DeleteVolume("vol").code(), StatusCode::kNotFound);
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  EXPECT_GT(Info("vol").id, old_id);

  auto new_store = OpenStore("vol");
  ASSERT_NE(new_store, nullptr);
  contract::ExpectStoreHolds(*new_store, {});
  auto got = new_store->Get(std::vector<std::string>{"k"});
  EFS_ASSERT_OK(got);
  EXPECT_FALSE((*got)[0].has_value());

  EXPECT_EQ(old_store->Commit(PutBatch({{"k2", "stale"}})).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(old_store->Stat().status().code(), StatusCode::kNotFound);
  contract::ExpectStoreHolds(*new_store, {});
}

TEST_F(RocksDbVolumesTest,
       givenUnboundVolume_whenClaimed_thenTokenBoundAndOthersDenied) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 100));
  EFS_ASSERT_OK(volumes_->VerifyToken("vol", kOtherToken));  // none bound yet
  auto epoch = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(epoch);
  EXPECT_EQ(epoch->epoch, 1u);
  EXPECT_TRUE(Info("vol").token_bound);

  EFS_ASSERT_OK(volumes_->VerifyToken("vol", kToken));
  EXPECT_EQ(volumes_->VerifyToken("vol", kOtherToken).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(volumes_->Claim("vol", kOtherToken, kHolder).status().code(),
            StatusCode::kPermissionDenied);
  const VolumeInfo after = Info("vol");
  EXPECT_EQ(after.epoch, 1u);
  EXPECT_TRUE(after.token_bound);
  EFS_ASSERT_OK(volumes_->VerifyToken("vol", kToken));
}

TEST_F(RocksDbVolumesTest,
       givenClaimedVolume_whenClaimedAgain_thenOldEpochStoreFenced) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  auto first = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(first);
  auto old_holder = OpenStore("vol", first->epoch);
  ASSERT_NE(old_holder, nullptr);
  EFS_ASSERT_OK(old_holder->Commit(PutBatch({{"k", "old holder"}})));

  auto second = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(second);
  EXPECT_EQ(second->epoch, first->epoch + 1);
  const Status fenced = old_holder->Commit(PutBatch({{"k", "too late"}}));
  EXPECT_EQ(fenced.code(), StatusCode::kFenced);
  EXPECT_NE(fenced.message().find("lease was taken over"), std::string::npos);

  auto new_holder = OpenStore("vol", second->epoch);
  ASSERT_NE(new_holder, nullptr);
  contract::ExpectStoreHolds(*new_holder, {{"k", "old holder"}});
  EFS_ASSERT_OK(new_holder->Commit(PutBatch({{"k", "new holder"}})));
  contract::ExpectStoreHolds(*old_holder, {{"k", "new holder"}});
}

TEST_F(RocksDbVolumesTest,
       givenCommits_whenReopened_thenDataUsageTokenAndEpochPersist) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  auto epoch = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(epoch);
  const std::map<std::string, std::string> model = {
      {"big", contract::RandomBytes(100000, 3)}, {"small", "s"}};
  {
    auto store = OpenStore("vol", epoch->epoch);
    ASSERT_NE(store, nullptr);
    EFS_ASSERT_OK(store->Commit(PutBatch({model.begin(), model.end()})));
    EFS_ASSERT_OK(volumes_->MakeDurable());
  }
  const VolumeInfo before = Info("vol");

  Reopen();
  const VolumeInfo after = Info("vol");
  EXPECT_EQ(after.id, before.id);
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_EQ(after.block_count, model.size());
  EXPECT_EQ(after.epoch, epoch->epoch);
  EXPECT_TRUE(after.token_bound);
  EXPECT_EQ(volumes_->VerifyToken("vol", kOtherToken).code(),
            StatusCode::kPermissionDenied);
  auto store = OpenStore("vol", epoch->epoch);
  ASSERT_NE(store, nullptr);
  contract::ExpectStoreHolds(*store, model);
}

TEST_F(RocksDbVolumesTest,
       givenClaimsByTwoHolders_whenClaimed_thenHolderSinceStartsEachRun) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  const std::pair<std::string, uint64_t> claims[] = {
      // holder, expected holder_since
      {kHolder, 1},
      {kHolder, 1},
      {kOtherHolder, 3},
      {kHolder, 4},
      {kHolder, 4}};
  uint64_t expected_epoch = 0;
  for (const auto& [holder, since] : claims) {
    auto grant = volumes_->Claim("vol", kToken, holder);
    EFS_ASSERT_OK(grant);
    EXPECT_EQ(grant->epoch, ++expected_epoch);
    EXPECT_EQ(grant->holder_since, since) << "epoch " << grant->epoch;
  }
}

TEST_F(RocksDbVolumesTest,
       givenHolderRunAndCommit_whenReopened_thenRunContinuesAfterRestart) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  EFS_ASSERT_OK(volumes_->Claim("vol", kToken, kHolder));
  auto second = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(second);
  // A commit rewrites the record too; it must carry the holder along.
  auto store = OpenStore("vol", second->epoch);
  ASSERT_NE(store, nullptr);
  EFS_ASSERT_OK(store->Commit(PutBatch({{"k", "v"}})));
  store.reset();

  Reopen();
  auto resumed = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(resumed);
  EXPECT_EQ(resumed->epoch, 3u);
  EXPECT_EQ(resumed->holder_since, 1u);
  auto other = volumes_->Claim("vol", kToken, kOtherHolder);
  EFS_ASSERT_OK(other);
  EXPECT_EQ(other->holder_since, 4u);
}

TEST_F(RocksDbVolumesTest,
       givenBadHolderId_whenClaimed_thenInvalidArgumentAndEpochKept) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  EXPECT_EQ(volumes_->Claim("vol", kToken, "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      volumes_->Claim("vol", kToken, std::string(256, 'h')).status().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(Info("vol").epoch, 0u);
  EXPECT_FALSE(Info("vol").token_bound);
}

// Stores written before holder ids existed hold version 1 records.
TEST_F(RocksDbVolumesTest,
       givenVersionOneRecord_whenReopened_thenReadAndFirstClaimStartsRun) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 5000));
  const uint64_t id = Info("vol").id;
  volumes_.reset();
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"blocks", {}}, {"index", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open({}, dir_.path(), cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v1 = "\x01";
    for (uint64_t field : {id, uint64_t{5000}, uint64_t{0}, uint64_t{0},
                           uint64_t{7}}) {  // id quota used blocks epoch
      for (int i = 0; i < 8; ++i) v1 += static_cast<char>(field >> (8 * i));
    }
    v1 += '\0';  // no token hash
    EXPECT_TRUE(db->Put({}, handles[0], "volume/vol", v1).ok());
    for (auto* handle : handles) {
      EXPECT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    }
    EXPECT_TRUE(db->Close().ok());
  }
  Reopen();

  const VolumeInfo info = Info("vol");
  EXPECT_EQ(info.id, id);
  EXPECT_EQ(info.quota_bytes, 5000u);
  EXPECT_EQ(info.epoch, 7u);
  auto grant = volumes_->Claim("vol", kToken, kHolder);
  EFS_ASSERT_OK(grant);
  EXPECT_EQ(grant->epoch, 8u);
  EXPECT_EQ(grant->holder_since, 8u);
  Reopen();  // the rewritten record (version 2) reads back too
  EXPECT_EQ(volumes_->Claim("vol", kToken, kHolder)->holder_since, 8u);
}

TEST_F(RocksDbVolumesTest,
       givenBlocksInBlobFiles_whenReadWithDirectReads_thenSameBytes) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 64 << 20));
  std::vector<std::pair<std::string, std::string>> puts;
  for (int i = 0; i < 40; ++i) {
    puts.emplace_back("block" + std::to_string(i),
                      contract::RandomBytes(65536 + i, i));
  }
  EFS_ASSERT_OK(OpenStore("vol")->Commit(PutBatch(puts)));
  EFS_ASSERT_OK(volumes_->MakeDurable());  // flushes them into blob files
  Reopen({.direct_reads = true});

  EXPECT_GT(FilesNamed(".blob").size(), 0u);
  std::ifstream log(dir_.path() + "/LOG");
  const std::string options((std::istreambuf_iterator<char>(log)), {});
  EXPECT_THAT(options, ::testing::HasSubstr("Options.use_direct_reads: 1"));
  contract::ExpectStoreHolds(*OpenStore("vol"), {puts.begin(), puts.end()});
}

// The host sends GET replies from these views, so they must keep the bytes
// of the read even after the blocks are overwritten and flushed.
TEST_F(RocksDbVolumesTest,
       givenPinnedRead_whenBlocksOverwritten_thenViewsKeepTheReadBytes) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 64 << 20));
  auto store = OpenStore("vol");
  ASSERT_NE(store, nullptr);
  // Blob-sized and small values, flushed so that reads come from files.
  std::vector<std::pair<std::string, std::string>> puts = {
      {"big", contract::RandomBytes(65536, 1)},
      {"small", contract::RandomBytes(100, 2)}};
  EFS_ASSERT_OK(store->Commit(PutBatch(puts)));
  EFS_ASSERT_OK(volumes_->MakeDurable());

  const std::vector<std::string> keys = {"small", "absent", "big"};
  auto pinned = store->GetPinned(keys);
  EFS_ASSERT_OK(pinned);
  std::vector<std::pair<std::string, std::string>> overwrites = {
      {"big", contract::RandomBytes(65536, 3)},
      {"small", contract::RandomBytes(100, 4)}};
  EFS_ASSERT_OK(store->Commit(PutBatch(overwrites)));
  EFS_ASSERT_OK(volumes_->MakeDurable());

  ASSERT_EQ(pinned->values.size(), 3u);
  EXPECT_EQ(pinned->values[0], puts[1].second);
  EXPECT_EQ(pinned->values[1], std::nullopt);
  EXPECT_EQ(pinned->values[2], puts[0].second);
  contract::ExpectStoreHolds(*store, {overwrites.begin(), overwrites.end()});
}

// Obsolete files leave through the trash, unlinked by a background thread
// (docs/storage.md): the space must still come back, without a restart.
TEST_F(RocksDbVolumesTest,
       givenOverwrittenBlocks_whenCompacted_thenTheirBlobFilesLeaveTheDisk) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 30));
  auto store = OpenStore("vol");
  ASSERT_NE(store, nullptr);
  // Over 1 MiB of values per round: the commit skips the WAL, so
  // MakeDurable flushes it into a blob file and a level-0 table.
  std::map<std::string, std::string> latest;
  auto write_round = [&](uint32_t round) {
    std::vector<std::pair<std::string, std::string>> puts;
    for (uint32_t i = 0; i < 20; ++i) {
      puts.emplace_back("block" + std::to_string(i),
                        contract::RandomBytes(65536, round * 100 + i));
      latest[puts.back().first] = puts.back().second;
    }
    EFS_ASSERT_OK(store->Commit(PutBatch(puts)));
    EFS_ASSERT_OK(volumes_->MakeDurable());
  };
  write_round(0);
  const std::set<std::string> first = FilesNamed(".blob");
  ASSERT_FALSE(first.empty());
  // Level 0 compacts at 8 tables; the compaction drops every overwritten
  // value, so no table refers to the first round's blob files any more.
  for (uint32_t round = 1; round <= 10; ++round) write_round(round);

  auto leftovers = [&] {
    std::set<std::string> left = FilesNamed(".trash");
    for (const auto& name : FilesNamed(".blob")) {
      if (first.contains(name)) left.insert(name);
    }
    return left;
  };
  WaitUntil([&] { return leftovers().empty(); });
  EXPECT_THAT(leftovers(), ::testing::IsEmpty());
  contract::ExpectStoreHolds(*store, latest);
}

TEST_F(RocksDbVolumesTest, givenTrashLeftByACrash_whenReopened_thenDeleted) {
  volumes_.reset();
  const std::string trash = dir_.path() + "/000999.blob.trash";
  std::ofstream(trash) << "left by a process that died before unlinking it";
  Reopen();
  WaitUntil([&] { return !std::filesystem::exists(trash); });
  EXPECT_FALSE(std::filesystem::exists(trash));
}

TEST_F(RocksDbVolumesTest, givenOpenStore_whenOpenedAgain_thenIOErrorInUse) {
  auto second = RocksDbVolumes::Open(dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kIOError);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().ToString();
}

TEST_F(RocksDbVolumesTest,
       givenThreadsOnSeveralVolumes_whenCommitting_thenEveryCommitLands) {
  constexpr int kVolumes = 3;
  constexpr int kThreadsPerVolume = 2;
  constexpr int kCommits = 30;
  std::vector<std::unique_ptr<RocksDbBlockStore>> stores;
  for (int v = 0; v < kVolumes; ++v) {
    EFS_ASSERT_OK(volumes_->CreateVolume("vol" + std::to_string(v), 1 << 30));
    stores.push_back(OpenStore("vol" + std::to_string(v)));
    ASSERT_NE(stores.back(), nullptr);
  }
  auto key_of = [](int t, int c) {
    return "t" + std::to_string(t) + "-" + std::to_string(c);
  };
  auto value_of = [](int v, int t, int c) {
    return contract::RandomBytes(100 + c,
                                 static_cast<uint32_t>(v * 1000 + t * 100 + c));
  };
  std::vector<Status> results(kVolumes * kThreadsPerVolume);
  std::vector<std::thread> threads;
  for (int v = 0; v < kVolumes; ++v) {
    for (int t = 0; t < kThreadsPerVolume; ++t) {
      threads.emplace_back([&, v, t] {
        Status& result = results[v * kThreadsPerVolume + t];
        for (int c = 0; c < kCommits && result.ok(); ++c) {
          CommitBatch batch = PutBatch({{key_of(t, c), value_of(v, t, c)}});
          batch.durable = c % 5 == 0;  // durable syncs group across volumes
          result = stores[v]->Commit(batch);
        }
      });
    }
  }
  for (auto& thread : threads) thread.join();
  for (const Status& result : results) EFS_ASSERT_OK(result);
  for (int v = 0; v < kVolumes; ++v) {
    std::map<std::string, std::string> model;
    for (int t = 0; t < kThreadsPerVolume; ++t) {
      for (int c = 0; c < kCommits; ++c)
        model[key_of(t, c)] = value_of(v, t, c);
    }
    contract::ExpectStoreHolds(*stores[v], model);
  }
}

TEST_F(RocksDbVolumesTest,
       givenContendedCounter_whenThreadsCompareAndSwap_thenNoUpdateLost) {
  EFS_ASSERT_OK(volumes_->CreateVolume("vol", 1 << 20));
  auto store = OpenStore("vol");
  ASSERT_NE(store, nullptr);
  EFS_ASSERT_OK(store->Commit(PutBatch({{"counter", "0"}})));
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int done = 0; done < kIncrements && results[t].ok();) {
        auto current = store->GetOne("counter");
        if (!current.ok()) {
          results[t] = current.status();
          break;
        }
        CommitBatch batch =
            PutBatch({{"counter", std::to_string(std::stoi(*current) + 1)}});
        batch.condition = CommitCondition{"counter", *current};
        Status s = store->Commit(batch);
        if (s.ok()) {
          ++done;
        } else if (s.code() != StatusCode::kConflict) {
          results[t] = s;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const Status& result : results) EFS_ASSERT_OK(result);
  contract::ExpectStoreHolds(
      *store, {{"counter", std::to_string(kThreads * kIncrements)}});
}

// Death tests fork. A child forked after RocksDB has started its thread
// pool inherits the pool without its threads and waits forever for a flush,
// so these tests run first (gtest runs *DeathTest suites before the others)
// and this process never opens a store itself: the check after the "crash"
// runs in a child too.

// Runs body(volumes) on the store in `dir` in a child process that then
// dies without flushing or closing, like a crash after its last commit.
// body returns false on any failure; the child must get through it.
template <typename Body>
void RunThenDie(const std::string& dir, Body body) {
  auto run = [&] {
    auto volumes = RocksDbVolumes::Open(dir);
    std::_Exit(volumes.ok() && body(**volumes) ? 0 : 2);
  };
  EXPECT_EXIT(run(), ::testing::ExitedWithCode(0), "");
}

// Reopens the store in `dir` in a child process and runs check(volumes)
// there; any failed expectation (printed by the child) fails the test.
template <typename Check>
void CheckAfterCrash(const std::string& dir, Check check) {
  auto run = [&] {
    auto volumes = RocksDbVolumes::Open(dir);
    EXPECT_TRUE(volumes.ok()) << volumes.status().ToString();
    if (volumes.ok()) check(**volumes);
    std::_Exit(::testing::Test::HasFailure() ? 2 : 0);
  };
  EXPECT_EXIT(run(), ::testing::ExitedWithCode(0), "");
}

TEST(RocksDbVolumesDeathTest,
     givenDurableCommit_whenProcessDiesWithoutClosing_thenDataSurvives) {
  contract::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string value = contract::RandomBytes(64 << 10, 9);
  RunThenDie(dir.path(), [&](RocksDbVolumes& volumes) {
    if (!volumes.CreateVolume("vol", 1 << 20).ok()) return false;
    auto store = volumes.OpenVolume("vol");
    CommitBatch batch = PutBatch({{"k", value}});
    batch.durable = true;
    return store.ok() && (*store)->Commit(batch).ok();
  });

  CheckAfterCrash(dir.path(), [&](RocksDbVolumes& volumes) {
    auto store = volumes.OpenVolume("vol");
    EFS_ASSERT_OK(store);
    contract::ExpectStoreHolds(**store, {{"k", value}});
  });
}

// A bulk non-durable commit skips the WAL. The small durable commit after
// it would go to the WAL alone, and a crash would then keep the second
// commit but lose the first: it must flush both.
TEST(
    RocksDbVolumesDeathTest,
    givenUnloggedBulkCommit_whenDurableCommitFollowsAndProcessDies_thenBothSurvive) {
  contract::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::vector<std::pair<std::string, std::string>> bulk;
  for (uint32_t i = 0; i * (64 << 10) < 2 * kUnloggedMinBytes; ++i) {
    bulk.emplace_back("bulk" + std::to_string(i),
                      contract::RandomBytes(64 << 10, i));
  }
  RunThenDie(dir.path(), [&](RocksDbVolumes& volumes) {
    if (!volumes.CreateVolume("vol", 1 << 30).ok() ||
        !volumes.Claim("vol", kToken, kHolder).ok()) {
      return false;
    }
    auto store = volumes.OpenVolume("vol");
    if (!store.ok() || !(*store)->Commit(PutBatch(bulk)).ok()) return false;
    CommitBatch small = PutBatch({{"small", "synced"}});
    small.durable = true;
    return (*store)->Commit(small).ok();
  });

  CheckAfterCrash(dir.path(), [&](RocksDbVolumes& volumes) {
    auto store = volumes.OpenVolume("vol");
    EFS_ASSERT_OK(store);
    std::map<std::string, std::string> model(bulk.begin(), bulk.end());
    model["small"] = "synced";
    contract::ExpectStoreHolds(**store, model);
    auto info = volumes.GetVolume("vol");
    EFS_ASSERT_OK(info);
    EXPECT_EQ(info->block_count, model.size());
    // The flush removed the volume's marker: nothing was lost, the holder's
    // run of epochs goes on.
    auto grant = volumes.Claim("vol", kToken, kHolder);
    EFS_ASSERT_OK(grant);
    EXPECT_EQ(grant->epoch, 2u);
    EXPECT_EQ(grant->holder_since, 1u);
  });
}

// Unlogged commits lost in a crash must not let their client resume its
// lease: it would commit a root on top of blocks that are gone.
TEST(RocksDbVolumesDeathTest,
     givenUnflushedBulkCommit_whenProcessDies_thenHolderCannotResume) {
  contract::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string bulk_value =
      contract::RandomBytes(2 * kUnloggedMinBytes, 5);
  RunThenDie(dir.path(), [&](RocksDbVolumes& volumes) {
    if (!volumes.CreateVolume("vol", 1 << 30).ok() ||
        !volumes.CreateVolume("idle", 1 << 20).ok() ||
        !volumes.Claim("vol", kToken, kHolder).ok() ||
        !volumes.Claim("idle", kToken, kHolder).ok()) {
      return false;
    }
    auto store = volumes.OpenVolume("vol");
    CommitBatch synced = PutBatch({{"synced", "yes"}});
    synced.durable = true;
    return store.ok() && (*store)->Commit(synced).ok() &&
           (*store)->Commit(PutBatch({{"bulk", bulk_value}})).ok();
  });

  CheckAfterCrash(dir.path(), [&](RocksDbVolumes& volumes) {
    auto store = volumes.OpenVolume("vol");
    EFS_ASSERT_OK(store);
    // The bulk commit, counters included, is gone as a whole.
    contract::ExpectStoreHolds(**store, {{"synced", "yes"}});
    auto grant = volumes.Claim("vol", kToken, kHolder);
    EFS_ASSERT_OK(grant);
    EXPECT_EQ(grant->holder_since, grant->epoch);
    // A volume without unlogged commits keeps its holder's run.
    auto idle = volumes.Claim("idle", kToken, kHolder);
    EFS_ASSERT_OK(idle);
    EXPECT_LT(idle->holder_since, idle->epoch);
  });
}

TEST(WantBlobGcTest,
     givenGarbageRatio_whenDeciding_thenSwitchesWithHysteresis) {
  // Off: turns on at half garbage, not below.
  EXPECT_FALSE(WantBlobGc(false, 100, 49));
  EXPECT_TRUE(WantBlobGc(false, 100, 50));
  // On: stays on down to a fifth, turns off at or under it.
  EXPECT_TRUE(WantBlobGc(true, 100, 49));
  EXPECT_TRUE(WantBlobGc(true, 100, 21));
  EXPECT_FALSE(WantBlobGc(true, 100, 20));
  // No blob files: nothing to collect.
  EXPECT_FALSE(WantBlobGc(false, 0, 0));
  EXPECT_FALSE(WantBlobGc(true, 0, 0));
}

}  // namespace
}  // namespace enclavefs

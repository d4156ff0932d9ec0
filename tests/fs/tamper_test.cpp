// The host as an attacker: every attack on stored blocks must end in
// Corruption (at read or at open) or Conflict (at commit), and no read may
// ever return bytes other than those written.
#include <gtest/gtest.h>

#include <map>

#include "fs/volume.h"
#include "tests/fs/volume_test_env.h"

namespace enclavefs::testing {
namespace {

// What the volume must contain; every successful read is compared with it.
struct Truth {
  std::map<std::string, std::string> kv;
  std::map<std::pair<uint64_t, uint64_t>, std::string> data;
};

struct Outcome {
  int corruptions = 0;  // reads that failed with Corruption
  int wrong = 0;        // reads that returned anything but the truth
  int other = 0;        // reads that failed some other way
};

void Count(const Status& status, Outcome& out) {
  if (status.code() == StatusCode::kCorruption) {
    ++out.corruptions;
  } else {
    ++out.other;
  }
}

// Reads every key, every data block and a full scan.
Outcome ReadEverything(Volume& volume, const Truth& truth) {
  Outcome out;
  for (const auto& [key, value] : truth.kv) {
    auto got = volume.Get(key);
    if (!got.ok()) {
      Count(got.status(), out);
    } else if (*got != value) {
      ++out.wrong;
    }
  }
  for (const auto& [where, bytes] : truth.data) {
    auto got = volume.ReadData(where.first, where.second);
    if (!got.ok()) {
      Count(got.status(), out);
    } else if (*got != bytes) {
      ++out.wrong;
    }
  }
  auto all = volume.Scan("", "", SIZE_MAX);
  if (!all.ok()) {
    Count(all.status(), out);
  } else if (*all != std::vector<std::pair<std::string, std::string>>(
                         truth.kv.begin(), truth.kv.end())) {
    ++out.wrong;
  }
  return out;
}

std::string Pattern(uint64_t file, uint64_t index, int version) {
  std::string s = "file " + std::to_string(file) + " block " +
                  std::to_string(index) + " v" + std::to_string(version) + ";";
  std::string out;
  while (out.size() < 3000) out += s;
  return out;
}

class TamperTest : public ::testing::Test {
 protected:
  // Two generations (so superseded versions exist) over a tree of several
  // levels: 400 keys and 15 data blocks on 8 KiB nodes.
  void SetUp() override { Populate(env_, truth_, &anchor_); }

  static void Populate(VolumeEnv& env, Truth& truth,
                       std::shared_ptr<Anchor>* anchor) {
    VolumeOptions options = ManualOptions();
    if (anchor) options.anchor = *anchor;
    auto volume = env.MustOpen(options);
    ASSERT_NE(volume, nullptr);
    for (int i = 0; i < 400; ++i) {
      const std::string key = "key" + std::to_string(1000 + i);
      truth.kv[key] = std::string(60, static_cast<char>('a' + i % 26));
      ASSERT_TRUE(volume->Put(key, truth.kv[key]).ok());
    }
    for (uint64_t file : {1u, 2u}) {
      for (uint64_t i = 0; i < (file == 1 ? 10u : 5u); ++i) {
        truth.data[{file, i}] = Pattern(file, i, 1);
        ASSERT_TRUE(volume->WriteData(file, i, truth.data[{file, i}]).ok());
      }
    }
    ASSERT_TRUE(volume->Commit(true).ok());
    truth.data[{1, 3}] = Pattern(1, 3, 2);
    ASSERT_TRUE(volume->WriteData(1, 3, truth.data[{1, 3}]).ok());
    truth.kv["key1007"] = "second version";
    ASSERT_TRUE(volume->Put("key1007", truth.kv["key1007"]).ok());
    ASSERT_TRUE(volume->Commit(true).ok());
    ASSERT_EQ(volume->generation(), 3u);
  }

  // Opens a cold volume (cache off) and reads everything after `attack`,
  // then undoes the attack. Returns the outcome; an open failure counts as
  // one corruption when it is Corruption.
  Outcome Attack(const std::function<void()>& attack) {
    auto before = env_.store().Snapshot();
    attack();
    Outcome out;
    VolumeOptions options = ManualOptions();
    options.cache_bytes = 0;
    auto volume = env_.Open(options);
    if (!volume.ok()) {
      Count(volume.status(), out);
    } else {
      out = ReadEverything(**volume, truth_);
    }
    env_.store().RollBack(before);
    return out;
  }

  void ExpectDetected(const std::function<void()>& attack,
                      const std::string& what) {
    SCOPED_TRACE(what);
    Outcome out = Attack(attack);
    EXPECT_EQ(out.wrong, 0) << "a read returned wrong plaintext";
    EXPECT_EQ(out.other, 0) << "a failure was not reported as Corruption";
    EXPECT_GT(out.corruptions, 0) << "the attack went unnoticed";
  }

  VolumeEnv env_;
  Truth truth_;
  TempDir dir_;
  std::shared_ptr<Anchor> anchor_ =
      std::make_shared<AnchorFile>(dir_.path() + "/anchor");
};

TEST_F(TamperTest,
       givenUntouchedStore_whenEverythingIsRead_thenAllReadsSucceed) {
  Outcome out = Attack([] {});
  EXPECT_EQ(out.wrong, 0);
  EXPECT_EQ(out.corruptions, 0);
  EXPECT_EQ(out.other, 0);
  EXPECT_GE(env_.NodeKeys().size(), 4u);  // a real multi-level tree
  EXPECT_EQ(env_.DataKeys().size(), 15u);
}

TEST_F(TamperTest, givenFlippedBit_whenRead_thenCorruptionForEveryBlockKind) {
  std::vector<std::string> targets = env_.DataKeys();
  for (const auto& node : env_.NodeKeys()) targets.push_back(node);
  targets.push_back("root");
  for (const auto& key : targets) {
    const size_t bits = env_.store().Peek(key)->size() * 8;
    for (size_t bit :
         {size_t{0}, size_t{9}, size_t{40 * 8 + 3}, bits / 2, bits - 1}) {
      ExpectDetected([&] { env_.store().FlipBit(key, bit); },
                     "flip bit " + std::to_string(bit) + " of a " +
                         std::to_string(env_.store().Peek(key)->size()) +
                         "-byte block");
    }
  }
}

TEST_F(TamperTest,
       givenTruncatedBlock_whenRead_thenCorruptionForEveryBlockKind) {
  std::vector<std::string> targets = {env_.DataKeys()[0], env_.NodeKeys()[0],
                                      "root"};
  for (const auto& key : targets) {
    const size_t size = env_.store().Peek(key)->size();
    for (size_t keep : {size_t{0}, size_t{20}, size / 2, size - 1}) {
      ExpectDetected([&] { env_.store().Truncate(key, keep); },
                     "truncate to " + std::to_string(keep));
    }
  }
}

TEST_F(TamperTest, givenSwappedBlocks_whenRead_thenCorruption) {
  auto data = env_.DataKeys();
  auto nodes = env_.NodeKeys();
  ExpectDetected([&] { env_.store().Swap(data[0], data[1]); }, "data <-> data");
  ExpectDetected([&] { env_.store().Swap(nodes[0], nodes[1]); },
                 "node <-> node");
  ExpectDetected([&] { env_.store().Swap(data[2], nodes[2]); },
                 "data <-> node");
  ExpectDetected([&] { env_.store().Swap("root", nodes[0]); }, "root <-> node");
}

TEST_F(TamperTest,
       givenSupersededVersionReplayedUnderCurrentName_whenRead_thenCorruption) {
  // Names are written once; an older version of "the same" block lives
  // under an old name. Put those old ciphertexts where current ones are.
  auto current = env_.store().Snapshot();
  std::vector<std::string> old_data, old_nodes;
  // Every name ever written and no longer present is a superseded block.
  for (const auto& key : env_.store().HistoricKeys()) {
    if (current.count(key)) continue;
    auto versions = env_.store().Versions(key);
    (versions.back().size() >= 8192 ? old_nodes : old_data).push_back(key);
  }
  ASSERT_FALSE(old_data.empty());
  ASSERT_FALSE(old_nodes.empty());
  for (const auto& target : env_.DataKeys()) {
    ExpectDetected(
        [&] {
          env_.store().Implant(target, env_.store().Versions(old_data[0])[0]);
        },
        "old data version replayed");
  }
  for (const auto& target : env_.NodeKeys()) {
    ExpectDetected(
        [&] {
          env_.store().Implant(target, env_.store().Versions(old_nodes[0])[0]);
        },
        "old node version replayed");
  }
  // A superseded block restored under its own old name is harmless: no
  // current pointer reaches it.
  Outcome out = Attack([&] {
    env_.store().Implant(old_data[0], env_.store().Versions(old_data[0])[0]);
  });
  EXPECT_EQ(out.wrong + out.corruptions + out.other, 0);
}

TEST_F(
    TamperTest,
    givenOlderRootReplayed_whenOpened_thenAnchorRefusesAndWithoutItOldStateIsConsistent) {
  const auto roots = env_.store().Versions("root");
  ASSERT_EQ(roots.size(), 3u);  // generations 1, 2, 3
  env_.store().Implant("root", roots[1]);
  VolumeOptions anchored = ManualOptions();
  anchored.anchor = anchor_;
  auto refused = env_.Open(anchored);
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find("rolled back"), std::string::npos);
  // Without an anchor the old root opens (the documented limit) at
  // generation 2; blocks its tree needs were deleted by generation 3, so a
  // read gives generation-2 bytes or Corruption, never newer or mixed data.
  auto volume = env_.MustOpen();
  EXPECT_EQ(volume->generation(), 2u);
  auto read = volume->ReadData(1, 3);
  if (read.ok()) {
    EXPECT_EQ(*read, Pattern(1, 3, 1));
  } else {
    EXPECT_EQ(read.status().code(), StatusCode::kCorruption);
  }
}

TEST_F(TamperTest, givenDeletedBlock_whenRead_thenCorruptionNeverAHole) {
  for (const auto& key : env_.DataKeys()) {
    ExpectDetected([&] { env_.store().Remove(key); }, "data block deleted");
  }
  for (const auto& key : env_.NodeKeys()) {
    ExpectDetected([&] { env_.store().Remove(key); }, "node deleted");
  }
  ExpectDetected([&] { env_.store().Remove("root"); }, "root deleted");
  ExpectDetected([&] { env_.store().Remove("header"); }, "header deleted");
}

TEST_F(
    TamperTest,
    givenWholeVolumeRolledBack_whenOpened_thenAnchorDetectsItAndWithoutAnchorOlderGenerationIsReported) {
  auto at_gen3 = env_.store().Snapshot();
  {
    VolumeOptions options = ManualOptions();
    options.anchor = anchor_;
    auto volume = env_.MustOpen(options);
    ASSERT_TRUE(volume->Put("key1000", "newer").ok());
    ASSERT_TRUE(volume->Commit(true).ok());
  }
  env_.store().RollBack(at_gen3);
  VolumeOptions anchored = ManualOptions();
  anchored.anchor = anchor_;
  auto refused = env_.Open(anchored);
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(refused.status().message(),
            "volume was rolled back: host root generation 3 is older than the "
            "trusted anchor 4");
  auto unanchored = env_.MustOpen();
  EXPECT_EQ(unanchored->generation(), 3u);
  EXPECT_EQ(ReadEverything(*unanchored, truth_).wrong, 0);
}

TEST_F(
    TamperTest,
    givenRollbackUnderLiveMount_whenReadingAndCommitting_thenCorruptionAndConflict) {
  VolumeOptions options = ManualOptions();
  options.cache_bytes = 0;
  auto volume = env_.MustOpen(options);
  auto at_gen3 = env_.store().Snapshot();
  ASSERT_TRUE(volume->WriteData(3, 0, "written at generation 4").ok());
  ASSERT_TRUE(volume->Commit(true).ok());
  env_.store().RollBack(at_gen3);
  auto read = volume->ReadData(3, 0);
  EXPECT_EQ(read.status().code(), StatusCode::kCorruption);
  // Tree nodes written at generation 4 are gone too.
  EXPECT_EQ(volume->Put("key1001", "after rollback").code(),
            StatusCode::kCorruption);
  ASSERT_TRUE(volume->NextId().ok());  // a change that needs no tree read
  EXPECT_EQ(volume->Commit(true).code(), StatusCode::kConflict);
  EXPECT_EQ(volume->Put("key1002", "x").code(), StatusCode::kConflict);
  EXPECT_EQ(env_.store().Snapshot(), at_gen3);  // nothing written over it
}

TEST_F(TamperTest,
       givenOlderRootReplayedUnderLiveMount_whenCommitting_thenConflict) {
  auto volume = env_.MustOpen();
  const auto roots = env_.store().Versions("root");
  env_.store().Implant("root", roots[1]);
  ASSERT_TRUE(volume->Put("key1003", "x").ok());
  EXPECT_EQ(volume->Commit(false).code(), StatusCode::kConflict);
  EXPECT_EQ(*env_.store().Peek("root"), roots[1]);
}

TEST_F(TamperTest, givenBlocksMovedFromAnotherVolume_whenRead_thenCorruption) {
  VolumeEnv other;
  Truth other_truth;
  Populate(other, other_truth, nullptr);
  auto foreign_data = other.DataKeys();
  auto foreign_nodes = other.NodeKeys();
  auto data = env_.DataKeys();
  auto nodes = env_.NodeKeys();
  ExpectDetected(
      [&] {
        env_.store().Implant(data[0], *other.store().Peek(foreign_data[0]));
      },
      "foreign data block under our name");
  ExpectDetected(
      [&] {
        env_.store().Implant(nodes[0], *other.store().Peek(foreign_nodes[0]));
      },
      "foreign node under our name");
  ExpectDetected(
      [&] { env_.store().Implant("root", *other.store().Peek("root")); },
      "foreign root record");
  // Copied under its own name, it is simply unreferenced here.
  Outcome out = Attack([&] {
    env_.store().Implant(foreign_data[0], *other.store().Peek(foreign_data[0]));
  });
  EXPECT_EQ(out.wrong + out.corruptions + out.other, 0);
}

}  // namespace
}  // namespace enclavefs::testing

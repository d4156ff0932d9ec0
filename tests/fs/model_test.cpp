// Random operation sequences against a std::map model, with crashes (the
// Volume dropped without a commit) at random points: after every reopen the
// volume must equal the model as of the last commit.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "fs/volume.h"
#include "tests/fs/volume_test_env.h"

namespace enclavefs::testing {
namespace {

struct Model {
  std::map<std::string, std::string> kv;
  std::map<std::pair<uint64_t, uint64_t>, std::string> data;
  uint64_t next_id = 1;
};

constexpr uint64_t kFiles = 4;
constexpr uint64_t kBlocksPerFile = 24;

class ModelTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  // Compares everything the volume holds with `model`.
  static void ExpectEqual(Volume& volume, const Model& model) {
    auto all = volume.Scan("", "", SIZE_MAX);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    using Entries = std::vector<std::pair<std::string, std::string>>;
    ASSERT_EQ(*all, Entries(model.kv.begin(), model.kv.end()));
    for (uint64_t file = 1; file <= kFiles; ++file) {
      for (uint64_t i = 0; i < kBlocksPerFile; ++i) {
        auto got = volume.ReadData(file, i);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        auto it = model.data.find({file, i});
        ASSERT_EQ(*got, it == model.data.end()
                            ? std::nullopt
                            : std::optional<std::string>(it->second))
            << "file " << file << " block " << i;
      }
    }
  }

  VolumeOptions RandomOptions(std::mt19937& rng) {
    VolumeOptions options = ManualOptions();
    // Small caches force evictions; small dirty limits force implicit commits.
    options.cache_bytes = rng() % 2 ? 64u << 20 : 48u << 10;
    options.dirty_limit_bytes = rng() % 2 ? 16u << 20 : 96u << 10;
    options.readahead_bytes = rng() % 4 * SmallParams().block_size;
    // Write-behind off, or storing blocks between commits almost always.
    options.write_behind_bytes = rng() % 2 ? 0 : 12u << 10;
    return options;
  }
};

TEST_P(ModelTest,
       givenRandomOperationsAndCrashes_whenReopened_thenStateEqualsLastCommit) {
  const uint32_t seed = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  VolumeEnv env;
  Model current, committed;
  auto volume = env.MustOpen(RandomOptions(rng));
  ASSERT_NE(volume, nullptr);
  int crashes = 0, commits = 0;
  for (int op = 0; op < 1500; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    const uint64_t generation = volume->generation();
    const uint32_t dice = rng() % 100;
    if (dice < 30) {
      const std::string key = "k" + std::to_string(rng() % 300);
      const std::string value(rng() % 200, static_cast<char>('a' + rng() % 26));
      ASSERT_TRUE(volume->Put(key, value).ok());
      current.kv[key] = value;
    } else if (dice < 42) {
      const std::string key = "k" + std::to_string(rng() % 300);
      ASSERT_TRUE(volume->Delete(key).ok());
      current.kv.erase(key);
    } else if (dice < 70) {
      const uint64_t file = 1 + rng() % kFiles, index = rng() % kBlocksPerFile;
      std::string bytes(rng() % (volume->block_size() + 1), '\0');
      for (auto& c : bytes) c = static_cast<char>(rng());
      ASSERT_TRUE(volume->WriteData(file, index, bytes).ok());
      current.data[{file, index}] = bytes;
    } else if (dice < 75) {
      const uint64_t file = 1 + rng() % kFiles, first = rng() % kBlocksPerFile;
      ASSERT_TRUE(volume->DeleteData(file, first).ok());
      std::erase_if(current.data, [&](const auto& entry) {
        return entry.first.first == file && entry.first.second >= first;
      });
    } else if (dice < 80) {
      auto id = volume->NextId();
      ASSERT_TRUE(id.ok());
      ASSERT_EQ(*id, current.next_id++);
    } else if (dice < 90) {
      // Reads see uncommitted changes.
      const uint64_t file = 1 + rng() % kFiles, index = rng() % kBlocksPerFile;
      auto got = volume->ReadData(file, index);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      auto it = current.data.find({file, index});
      ASSERT_EQ(*got, it == current.data.end()
                          ? std::nullopt
                          : std::optional<std::string>(it->second));
    } else if (dice < 96) {
      ASSERT_TRUE(volume->Commit(rng() % 2).ok());
      committed = current;
      ++commits;
    } else {
      volume.reset();  // crash: everything since the last commit is lost
      volume = env.MustOpen(RandomOptions(rng));
      ASSERT_NE(volume, nullptr);
      current = committed;
      ExpectEqual(*volume, committed);
      auto id = volume->NextId();  // the counter is part of the commit too
      ASSERT_TRUE(id.ok());
      ASSERT_EQ(*id, current.next_id++);
      ++crashes;
      continue;
    }
    // A dirty-limit commit inside the operation commits everything so far.
    if (volume->generation() != generation) {
      committed = current;
      ++commits;
    }
  }
  ExpectEqual(*volume, current);
  volume.reset();
  volume = env.MustOpen();
  ExpectEqual(*volume, committed);
  EXPECT_GT(crashes, 5);
  EXPECT_GT(commits, 20);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest,
                         ::testing::Values(11u, 22u, 33u, 44u, 55u));

}  // namespace
}  // namespace enclavefs::testing

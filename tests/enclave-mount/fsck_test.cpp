#include "enclave-mount/fsck.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "blockstore/in_memory_block_store.h"
#include "fs/filesystem.h"
#include "fs/volume_keys.h"

namespace enclavefs {
namespace {

constexpr uint32_t kBlockSize = 4096;

KeySource TestKey() { return KeySource::Passphrase("fsck test passphrase"); }

std::string Pattern(size_t size, char seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + i % 251);
  return out;
}

// A formatted volume holding /docs/a (3 block sizes) and /docs/b (2),
// with b's data blocks known so tests can damage them.
class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FormatParams params;
    params.block_size = kBlockSize;
    params.node_size = 16384;
    params.cost = PwhashCost::ForTests();
    auto created = CreateVolumeHeader(params, TestKey());
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    header_ = created->first;
    ASSERT_TRUE(Volume::Format(*store_, header_, *created->second).ok());

    auto fs = OpenFs();
    auto docs = fs->Mkdir(kRootInode, "docs", 0755, 0, 0);
    ASSERT_TRUE(docs.ok());
    docs_ = docs->ino;
    WriteFile(*fs, "a", Pattern(3 * kBlockSize, 'a'));
    ASSERT_TRUE(fs->Sync().ok());
    const auto before = store_->Snapshot();
    WriteFile(*fs, "b", Pattern(2 * kBlockSize, 'b'));
    ASSERT_TRUE(fs->Sync().ok());
    // Small nodes share the data blocks' size class: tell them apart by
    // opening each new block as data.
    auto sealer = NewSealer();
    for (const auto& [key, value] : store_->Snapshot()) {
      if (!before.count(key) &&
          sealer->Open(BlockKind::kData, key, value).ok()) {
        b_blocks_.push_back(key);
      }
    }
    ASSERT_EQ(b_blocks_.size(), BlocksFor(2 * kBlockSize));
  }

  // Data blocks a file of `bytes` needs: a block holds exactly the sealer's
  // data capacity (the volume block size).
  size_t BlocksFor(size_t bytes) {
    const size_t capacity = NewSealer()->Capacity(BlockKind::kData);
    return (bytes + capacity - 1) / capacity;
  }

  std::unique_ptr<Sealer> NewSealer() {
    auto keys = UnlockVolumeHeader(header_, TestKey());
    EXPECT_TRUE(keys.ok());
    return (*keys)->NewSealer();
  }

  std::unique_ptr<Volume> OpenVolume() {
    auto keys = UnlockVolumeHeader(header_, TestKey());
    EXPECT_TRUE(keys.ok());
    VolumeOptions options;
    options.commit_interval = std::chrono::milliseconds(0);
    auto volume = Volume::Open(store_, std::move(keys).value(), options);
    EXPECT_TRUE(volume.ok()) << volume.status().ToString();
    return std::move(volume).value();
  }

  std::unique_ptr<Filesystem> OpenFs() {
    auto fs = Filesystem::Open(OpenVolume(), store_, 0, 0);
    EXPECT_TRUE(fs.ok()) << fs.status().ToString();
    return std::move(fs).value();
  }

  void WriteFile(Filesystem& fs, const std::string& name,
                 const std::string& data) {
    auto file = fs.Mknod(docs_, name, S_IFREG | 0644, 0, 0, 0);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    auto written = fs.Write(file->ino, 0, data);
    ASSERT_TRUE(written.ok()) << written.status().ToString();
  }

  Result<FsckReport> Check(bool repair) {
    FsckOptions options;
    options.repair = repair;
    return CheckVolume(OpenVolume(), store_, options);
  }

  void FlipByte(const std::string& key) {
    auto blocks = store_->Snapshot();
    blocks[key][blocks[key].size() / 2] ^= 0x40;
    store_->Restore(blocks);
  }

  std::shared_ptr<InMemoryBlockStore> store_ =
      std::make_shared<InMemoryBlockStore>();
  std::string header_;
  uint64_t docs_ = 0;
  std::vector<std::string> b_blocks_;
};

TEST_F(FsckTest,
       givenIntactVolume_whenChecked_thenCleanAfterReadingEveryBlock) {
  auto report = Check(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->directories, 2u);
  EXPECT_EQ(report->files, 2u);
  EXPECT_EQ(report->data_blocks,
            BlocksFor(3 * kBlockSize) + BlocksFor(2 * kBlockSize));
  EXPECT_TRUE(report->damage.empty());
  EXPECT_FALSE(report->tree_damage);
  EXPECT_EQ(report->unreferenced_blocks, 0u);
  EXPECT_EQ(FsckExitCode(*report), ExitCode::kOk);
}

TEST_F(FsckTest, givenProgressCallback_whenChecked_thenCalledEveryNBlocks) {
  FsckOptions options;
  options.progress_every = 2;
  std::vector<uint64_t> seen;
  options.progress = [&](uint64_t blocks, uint64_t) { seen.push_back(blocks); };
  ASSERT_TRUE(CheckVolume(OpenVolume(), store_, options).ok());
  std::vector<uint64_t> expected;
  const size_t total = BlocksFor(3 * kBlockSize) + BlocksFor(2 * kBlockSize);
  for (uint64_t n = 2; n <= total; n += 2) expected.push_back(n);
  EXPECT_EQ(seen, expected);
}

TEST_F(FsckTest,
       givenTamperedDataBlock_whenChecked_thenPathReportedAndStoreUntouched) {
  FlipByte(b_blocks_[1]);
  const auto before = store_->Snapshot();
  auto report = Check(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->damage.size(), 1u);
  EXPECT_EQ(report->damage[0].path, "/docs/b");
  EXPECT_NE(report->damage[0].what.find("1 unreadable data block"),
            std::string::npos);
  EXPECT_FALSE(report->damage[0].removed);
  EXPECT_EQ(FsckExitCode(*report), ExitCode::kFailure);
  EXPECT_EQ(store_->Snapshot(), before);
}

TEST_F(
    FsckTest,
    givenTamperedDataBlock_whenRepaired_thenFileGoneOthersIntactAndRecheckClean) {
  FlipByte(b_blocks_[0]);
  auto repaired = Check(true);
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  ASSERT_EQ(repaired->damage.size(), 1u);
  EXPECT_TRUE(repaired->damage[0].removed);
  EXPECT_EQ(FsckExitCode(*repaired), ExitCode::kOk);
  // Freeing the inode retired b's blocks; the repair commit deleted them.
  for (const std::string& key : b_blocks_)
    EXPECT_FALSE(store_->Snapshot().count(key));

  auto recheck = Check(false);
  ASSERT_TRUE(recheck.ok());
  EXPECT_TRUE(recheck->damage.empty());
  EXPECT_EQ(recheck->files, 1u);
  EXPECT_EQ(recheck->unreferenced_blocks, 0u);
  auto fs = OpenFs();
  EXPECT_EQ(fs->Lookup(docs_, "b").status().code(), StatusCode::kNotFound);
  auto a = fs->Lookup(docs_, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*fs->Read(a->ino, 0, 3 * kBlockSize), Pattern(3 * kBlockSize, 'a'));
}

TEST_F(FsckTest,
       givenStrayHostBlock_whenChecked_thenCountedCleanAndRepairReclaimsIt) {
  CommitBatch batch;
  batch.puts = {{"0123456789abcdef", "junk"}};
  ASSERT_TRUE(store_->Commit(batch).ok());
  auto report = Check(false);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->unreferenced_blocks, 1u);
  EXPECT_EQ(report->unreferenced_bytes, 20u);
  EXPECT_EQ(FsckExitCode(*report), ExitCode::kOk);
  EXPECT_TRUE(store_->Snapshot().count("0123456789abcdef"));

  auto repaired = Check(true);
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->reclaimed_blocks, 1u);
  EXPECT_FALSE(store_->Snapshot().count("0123456789abcdef"));
}

TEST_F(FsckTest, givenTamperedTreeNode_whenChecked_thenIntegrityFailure) {
  auto sealer = NewSealer();
  size_t damaged = 0;
  for (const auto& [key, value] : store_->Snapshot()) {
    if (sealer->Open(BlockKind::kNode, key, value).ok()) {
      FlipByte(key);
      ++damaged;
    }
  }
  ASSERT_GT(damaged, 0u);
  // Every node is damaged, so even the root directory is unreadable: the
  // check cannot proceed and says why instead of reporting a clean volume.
  auto report = Check(false);
  EXPECT_EQ(report.status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace enclavefs

// Tests of the POSIX layer (fs/filesystem.h) over an in-memory host.
#include "fs/filesystem.h"

#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockstore/in_memory_block_store.h"
#include "fs/inode_codec.h"
#include "fs/volume_keys.h"

namespace enclavefs {
namespace {

constexpr uint32_t kUid = 1000;
constexpr uint32_t kGid = 100;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// An InMemoryBlockStore whose host can "crash": after a set number of
// further commits it refuses every commit, so nothing more persists.
class CrashingBlockStore : public BlockStore {
 public:
  explicit CrashingBlockStore(std::shared_ptr<InMemoryBlockStore> inner)
      : inner_(std::move(inner)) {}
  void CrashAfterCommits(size_t commits) { budget_ = commits; }
  void Recover() { budget_ = std::nullopt; }

  Result<GetResult> Get(std::span<const std::string> keys) override {
    return inner_->Get(keys);
  }
  Status Commit(const CommitBatch& batch) override {
    std::lock_guard lock(mu_);
    if (budget_) {
      if (*budget_ == 0) return Status::Unavailable("host crashed");
      --*budget_;
    }
    return inner_->Commit(batch);
  }
  Result<StoreStats> Stat() override { return inner_->Stat(); }
  Result<KeyPage> ListKeys(std::string_view start_after,
                           size_t limit) override {
    return inner_->ListKeys(start_after, limit);
  }

 private:
  const std::shared_ptr<InMemoryBlockStore> inner_;
  std::mutex mu_;
  std::optional<size_t> budget_;  // GUARDED_BY(mu_); nullopt: no crash
};

// A formatted volume on an InMemoryBlockStore, unlocked by a key file in a
// private temp dir, and a Filesystem on it.
class FsEnv {
 public:
  explicit FsEnv(uint32_t node_size = 16 * 1024, uint64_t quota = 0)
      : store_(std::make_shared<InMemoryBlockStore>(quota)),
        host_(std::make_shared<CrashingBlockStore>(store_)) {
    char tmpl[] = "/tmp/efs-fs-test-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    EXPECT_NE(dir, nullptr);
    dir_ = dir ? dir : "";
    const std::string key_path = dir_ + "/volume.key";
    std::ofstream(key_path, std::ios::binary) << std::string(32, '\x5a');
    source_ = KeySource::KeyFile(key_path);

    FormatParams params;
    params.block_size = 4096;
    params.node_size = node_size;
    params.cost = PwhashCost::ForTests();
    auto created = CreateVolumeHeader(params, source_);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    header_ = created->first;
    Status formatted = Volume::Format(*store_, header_, *created->second);
    EXPECT_TRUE(formatted.ok()) << formatted.ToString();
    Reopen();
  }
  ~FsEnv() {
    fs_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Drops the mount without committing (a crash) and mounts again, with a
  // host that works again.
  void Reopen() {
    fs_.reset();
    host_->Recover();
    auto keys = UnlockVolumeHeader(header_, source_);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    VolumeOptions options;
    options.commit_interval = std::chrono::milliseconds(0);
    options.dirty_limit_bytes = dirty_limit_;
    auto volume = Volume::Open(host_, std::move(*keys), options);
    ASSERT_TRUE(volume.ok()) << volume.status().ToString();
    auto fs = Filesystem::Open(std::move(*volume), host_, kUid, kGid);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(*fs);
  }

  Filesystem& fs() { return *fs_; }
  InMemoryBlockStore& store() { return *store_; }
  CrashingBlockStore& host() { return *host_; }
  // Takes effect at the next Reopen.
  void set_dirty_limit(size_t bytes) { dirty_limit_ = bytes; }

 private:
  std::shared_ptr<InMemoryBlockStore> store_;
  std::shared_ptr<CrashingBlockStore> host_;
  size_t dirty_limit_ = 16u << 20;
  std::string dir_;
  KeySource source_;
  std::string header_;
  std::unique_ptr<Filesystem> fs_;
};

class FilesystemTest : public ::testing::Test {
 protected:
  Filesystem& fs() { return env_.fs(); }

  uint64_t MakeFile(uint64_t parent, const std::string& name) {
    auto attr = fs().Mknod(parent, name, S_IFREG | 0644, 0, kUid, kGid);
    EXPECT_TRUE(attr.ok()) << attr.status().ToString();
    return attr.ok() ? attr->ino : 0;
  }
  uint64_t MakeDir(uint64_t parent, const std::string& name) {
    auto attr = fs().Mkdir(parent, name, 0755, kUid, kGid);
    EXPECT_TRUE(attr.ok()) << attr.status().ToString();
    return attr.ok() ? attr->ino : 0;
  }
  InodeAttr Attr(uint64_t ino) {
    auto attr = fs().GetAttr(ino);
    EXPECT_TRUE(attr.ok()) << attr.status().ToString();
    return attr.ok() ? *attr : InodeAttr{};
  }
  std::string ReadAll(uint64_t ino) {
    auto data = fs().Read(ino, 0, Attr(ino).size);
    EXPECT_TRUE(data.ok()) << data.status().ToString();
    return data.ok() ? *data : std::string();
  }
  void WriteAt(uint64_t ino, uint64_t offset, const std::string& data) {
    auto n = fs().Write(ino, offset, data);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, data.size());
  }
  // The file block size (the sealed block's payload) and st_blocks of n
  // stored blocks.
  uint64_t BlockSize() { return fs().volume().block_size(); }
  uint64_t Sectors(uint64_t n) { return (n * BlockSize() + 511) / 512; }
  StatusCode CodeOfLookup(uint64_t parent, const std::string& name) {
    return fs().Lookup(parent, name).status().code();
  }
  std::set<std::string> Names(uint64_t dir) {
    std::set<std::string> names;
    auto entries = fs().ReadDir(dir, 0, 1u << 20);
    EXPECT_TRUE(entries.ok()) << entries.status().ToString();
    if (entries.ok()) {
      for (const auto& e : *entries) names.insert(e.name);
    }
    return names;
  }

  FsEnv env_;
};

std::string Pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// ---- create, lookup, getattr ----

TEST_F(FilesystemTest,
       givenFreshVolume_whenOpen_thenRootIsEmptyDirOwnedByCaller) {
  InodeAttr root = Attr(kRootInode);
  EXPECT_TRUE(S_ISDIR(root.mode));
  EXPECT_EQ(root.mode & 07777, 0755u);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.uid, kUid);
  EXPECT_EQ(root.gid, kGid);
  EXPECT_TRUE(Names(kRootInode).empty());
}

TEST_F(FilesystemTest, givenCreatedFile_whenLookup_thenSameInodeAndAttrs) {
  auto created = fs().Mknod(kRootInode, "a.txt", S_IFREG | 0640, 0, 7, 8);
  ASSERT_TRUE(created.ok());
  EXPECT_GT(created->ino, kRootInode);
  auto found = fs().Lookup(kRootInode, "a.txt");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->ino, created->ino);
  EXPECT_EQ(found->mode, S_IFREG | 0640u);
  EXPECT_EQ(found->uid, 7u);
  EXPECT_EQ(found->gid, 8u);
  EXPECT_EQ(found->nlink, 1u);
  EXPECT_EQ(found->size, 0u);
  EXPECT_EQ(Attr(created->ino).ino, created->ino);
}

TEST_F(FilesystemTest, givenBadNamesOrParents_whenCreate_thenPosixErrors) {
  uint64_t file = MakeFile(kRootInode, "f");
  EXPECT_EQ(fs().Mknod(kRootInode, "f", S_IFREG, 0, 0, 0).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(fs().Mknod(kRootInode, std::string(256, 'n'), S_IFREG, 0, 0, 0)
                .status()
                .code(),
            StatusCode::kNameTooLong);
  EXPECT_TRUE(
      fs().Mknod(kRootInode, std::string(255, 'n'), S_IFREG, 0, 0, 0).ok());
  EXPECT_EQ(fs().Mkdir(kRootInode, ".", 0755, 0, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Mkdir(kRootInode, "..", 0755, 0, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Mknod(file, "x", S_IFREG, 0, 0, 0).status().code(),
            StatusCode::kNotDirectory);
  EXPECT_EQ(CodeOfLookup(file, "x"), StatusCode::kNotDirectory);
  EXPECT_EQ(CodeOfLookup(kRootInode, "missing"), StatusCode::kNotFound);
  EXPECT_EQ(fs().GetAttr(999999).status().code(), StatusCode::kNotFound);
}

TEST_F(FilesystemTest, givenSpecialFiles_whenMknod_thenTypeAndRdevKept) {
  auto fifo = fs().Mknod(kRootInode, "fifo", S_IFIFO | 0600, 0, 0, 0);
  ASSERT_TRUE(fifo.ok());
  EXPECT_TRUE(S_ISFIFO(fifo->mode));
  auto chr =
      fs().Mknod(kRootInode, "null", S_IFCHR | 0666, makedev(1, 3), 0, 0);
  ASSERT_TRUE(chr.ok());
  EXPECT_EQ(Attr(chr->ino).rdev, makedev(1, 3));
  EXPECT_EQ(
      fs().Mknod(kRootInode, "d", S_IFDIR | 0755, 0, 0, 0).status().code(),
      StatusCode::kInvalidArgument);
}

// ---- file contents ----

TEST_F(FilesystemTest,
       givenUnalignedWritesSpanningBlocks_whenRead_thenMatchesModel) {
  uint64_t ino = MakeFile(kRootInode, "data");
  std::string model;
  std::mt19937 rng(42);
  for (int i = 0; i < 60; ++i) {
    const uint64_t offset = rng() % 30000;
    const std::string data =
        Pattern(1 + rng() % 9000, static_cast<uint32_t>(i));
    WriteAt(ino, offset, data);
    if (model.size() < offset + data.size())
      model.resize(offset + data.size(), '\0');
    model.replace(offset, data.size(), data);
  }
  EXPECT_EQ(Attr(ino).size, model.size());
  EXPECT_EQ(ReadAll(ino), model);
  for (int i = 0; i < 40; ++i) {
    const uint64_t offset = rng() % (model.size() + 100);
    const size_t len = rng() % 10000;
    auto got = fs().Read(ino, offset, len);
    ASSERT_TRUE(got.ok());
    const std::string want =
        offset >= model.size() ? "" : model.substr(offset, len);
    EXPECT_EQ(*got, want) << "offset " << offset << " len " << len;
  }
}

TEST_F(FilesystemTest,
       givenSparseFile_whenRead_thenHolesAreZerosAndNotCounted) {
  const uint64_t b = BlockSize();
  uint64_t ino = MakeFile(kRootInode, "sparse");
  WriteAt(ino, 0, "head");
  WriteAt(ino, 10 * b + 5, "tail");
  InodeAttr attr = Attr(ino);
  EXPECT_EQ(attr.size, 10 * b + 9);
  EXPECT_EQ(attr.blocks, Sectors(2));  // blocks 0 and 10 only
  std::string want(10 * b + 9, '\0');
  want.replace(0, 4, "head");
  want.replace(10 * b + 5, 4, "tail");
  EXPECT_EQ(ReadAll(ino), want);
  WriteAt(ino, 3 * b, std::string(b, 'f'));  // one full block
  EXPECT_EQ(Attr(ino).blocks, Sectors(3));
  WriteAt(ino, 3 * b + 1, "g");  // overwrite: no new block
  EXPECT_EQ(Attr(ino).blocks, Sectors(3));
}

TEST_F(FilesystemTest, givenOneByteAt5GiB_whenRead_thenSizeAndHoleBeforeIt) {
  uint64_t ino = MakeFile(kRootInode, "big");
  WriteAt(ino, 5 * kGiB, "Z");
  InodeAttr attr = Attr(ino);
  EXPECT_EQ(attr.size, 5 * kGiB + 1);
  EXPECT_EQ(attr.blocks, Sectors(1));
  auto last = fs().Read(ino, 5 * kGiB - 3, 100);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, std::string(3, '\0') + "Z");
  auto hole = fs().Read(ino, 4 * kGiB + 12345, 8192);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(*hole, std::string(8192, '\0'));
}

TEST_F(FilesystemTest, givenWritePastMaximumSize_whenWrite_thenOutOfRange) {
  uint64_t ino = MakeFile(kRootInode, "huge");
  EXPECT_EQ(fs().Write(ino, uint64_t{1} << 40, "x").status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(fs().Write(ino, ~uint64_t{0} - 1, "xy").status().code(),
            StatusCode::kOutOfRange);
  SetAttrRequest req;
  req.size = (uint64_t{1} << 40) + 1;
  EXPECT_EQ(fs().SetAttr(ino, req).status().code(), StatusCode::kOutOfRange);
}

TEST_F(FilesystemTest, givenDirectory_whenReadOrWrite_thenIsDirectory) {
  uint64_t dir = MakeDir(kRootInode, "d");
  EXPECT_EQ(fs().Read(dir, 0, 10).status().code(), StatusCode::kIsDirectory);
  EXPECT_EQ(fs().Write(dir, 0, "x").status().code(), StatusCode::kIsDirectory);
  SetAttrRequest req;
  req.size = 0;
  EXPECT_EQ(fs().SetAttr(dir, req).status().code(), StatusCode::kIsDirectory);
}

TEST_F(FilesystemTest, givenFile_whenTruncateDownThenUp_thenTailReadsZeros) {
  const uint64_t b = BlockSize();
  uint64_t ino = MakeFile(kRootInode, "t");
  WriteAt(ino, 0, std::string(5 * b, 'x'));
  EXPECT_EQ(Attr(ino).blocks, Sectors(5));
  SetAttrRequest down;
  down.size = b + 100;
  auto attr = fs().SetAttr(ino, down);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, b + 100);
  EXPECT_EQ(attr->blocks, Sectors(2));
  SetAttrRequest up;
  up.size = 3 * b;
  ASSERT_TRUE(fs().SetAttr(ino, up).ok());
  std::string want(b + 100, 'x');
  want.resize(3 * b, '\0');
  EXPECT_EQ(ReadAll(ino), want);
  EXPECT_EQ(Attr(ino).blocks, Sectors(2));  // growing adds only a hole
  SetAttrRequest zero;
  zero.size = 0;
  ASSERT_TRUE(fs().SetAttr(ino, zero).ok());
  EXPECT_EQ(Attr(ino).blocks, 0u);
  EXPECT_EQ(ReadAll(ino), "");
}

TEST_F(FilesystemTest,
       givenShortLastBlockThenTruncateUp_whenReadPastItsBytes_thenZeros) {
  uint64_t ino = MakeFile(kRootInode, "short");
  WriteAt(ino, 0, "abc");
  SetAttrRequest up;
  up.size = 10000;
  ASSERT_TRUE(fs().SetAttr(ino, up).ok());
  // Starts inside block 0 but past the 3 bytes it stores.
  auto tail = fs().Read(ino, 4096, 100);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, std::string(100, '\0'));
  auto across = fs().Read(ino, 1, 5);
  ASSERT_TRUE(across.ok());
  EXPECT_EQ(*across, std::string("bc\0\0\0", 5));
  // Truncating down stores block 0 cut to 2 bytes.
  SetAttrRequest down;
  down.size = 2;
  ASSERT_TRUE(fs().SetAttr(ino, down).ok());
  ASSERT_TRUE(fs().SetAttr(ino, up).ok());
  ASSERT_TRUE(fs().Sync().ok());
  env_.Reopen();  // the block now comes from the host at its stored length
  auto cut = fs().Read(ino, 4096, 100);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(*cut, std::string(100, '\0'));
}

TEST_F(FilesystemTest, givenFallocateModes_whenCalled_thenSizeRulesAndErrors) {
  uint64_t ino = MakeFile(kRootInode, "fa");
  WriteAt(ino, 0, "abc");
  ASSERT_TRUE(fs().Fallocate(ino, 0, 0, 10000).ok());
  EXPECT_EQ(Attr(ino).size, 10000u);
  ASSERT_TRUE(fs().Fallocate(ino, 0, 0, 5).ok());  // never shrinks
  EXPECT_EQ(Attr(ino).size, 10000u);
  ASSERT_TRUE(fs().Fallocate(ino, FALLOC_FL_KEEP_SIZE, 0, 1 << 20).ok());
  EXPECT_EQ(Attr(ino).size, 10000u);
  EXPECT_EQ(fs().Read(ino, 0, 5).value(), std::string("abc\0\0", 5));
  EXPECT_EQ(
      fs().Fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1)
          .code(),
      StatusCode::kNotSupported);
  EXPECT_EQ(fs().Fallocate(ino, 0, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Fallocate(MakeDir(kRootInode, "d"), 0, 0, 1).code(),
            StatusCode::kIsDirectory);
}

// ---- directories, symlinks, links ----

TEST_F(FilesystemTest, givenDirectories_whenMkdirRmdir_thenNlinkAndErrors) {
  uint64_t a = MakeDir(kRootInode, "a");
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  EXPECT_EQ(Attr(a).nlink, 2u);
  MakeDir(a, "sub");
  MakeFile(a, "file");
  EXPECT_EQ(Attr(a).nlink, 3u);
  EXPECT_EQ(fs().Rmdir(kRootInode, "a").code(), StatusCode::kNotEmpty);
  EXPECT_EQ(fs().Rmdir(a, "file").code(), StatusCode::kNotDirectory);
  EXPECT_EQ(fs().Unlink(a, "sub").code(), StatusCode::kIsDirectory);
  EXPECT_EQ(fs().Rmdir(a, "nothing").code(), StatusCode::kNotFound);
  ASSERT_TRUE(fs().Rmdir(a, "sub").ok());
  EXPECT_EQ(Attr(a).nlink, 2u);
  ASSERT_TRUE(fs().Unlink(a, "file").ok());
  ASSERT_TRUE(fs().Rmdir(kRootInode, "a").ok());
  EXPECT_EQ(Attr(kRootInode).nlink, 2u);
  EXPECT_EQ(CodeOfLookup(kRootInode, "a"), StatusCode::kNotFound);
  // The removed directory stays known until forgotten, but is unusable.
  EXPECT_EQ(fs().Mknod(a, "late", S_IFREG, 0, 0, 0).status().code(),
            StatusCode::kNotFound);
}

TEST_F(FilesystemTest, givenSymlink_whenReadlink_thenTargetBack) {
  auto link = fs().Symlink(kRootInode, "ln", "../some/where", kUid, kGid);
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(S_ISLNK(link->mode));
  EXPECT_EQ(link->size, 13u);
  EXPECT_EQ(fs().Readlink(link->ino).value(), "../some/where");
  EXPECT_EQ(fs().Readlink(MakeFile(kRootInode, "f")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Symlink(kRootInode, "long", std::string(5000, 'p'), 0, 0)
                .status()
                .code(),
            StatusCode::kNameTooLong);
}

TEST_F(FilesystemTest, givenHardLinks_whenLinkAndUnlink_thenNlinkTracksNames) {
  uint64_t ino = MakeFile(kRootInode, "one");
  WriteAt(ino, 0, "shared");
  uint64_t dir = MakeDir(kRootInode, "d");
  auto linked = fs().Link(ino, dir, "two");
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->nlink, 2u);
  EXPECT_EQ(fs().Lookup(dir, "two")->ino, ino);
  EXPECT_EQ(fs().Link(ino, dir, "two").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(fs().Link(dir, kRootInode, "dirlink").status().code(),
            StatusCode::kNotPermitted);
  ASSERT_TRUE(fs().Unlink(kRootInode, "one").ok());
  EXPECT_EQ(Attr(ino).nlink, 1u);
  ASSERT_TRUE(fs().Forget(ino).ok());  // still linked: nothing freed
  EXPECT_EQ(ReadAll(ino), "shared");
}

TEST_F(FilesystemTest, givenOpenFile_whenUnlinked_thenReadableUntilForget) {
  uint64_t ino = MakeFile(kRootInode, "tmp");
  WriteAt(ino, 0, "still here");
  ASSERT_TRUE(fs().SetXattr(ino, "user.k", "v", 0).ok());
  ASSERT_TRUE(fs().Unlink(kRootInode, "tmp").ok());
  EXPECT_EQ(CodeOfLookup(kRootInode, "tmp"), StatusCode::kNotFound);
  EXPECT_EQ(Attr(ino).nlink, 0u);
  EXPECT_EQ(ReadAll(ino), "still here");
  WriteAt(ino, 10, "!");
  EXPECT_EQ(ReadAll(ino), "still here!");
  EXPECT_EQ(fs().Link(ino, kRootInode, "back").status().code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(fs().Forget(ino).ok());
  EXPECT_EQ(fs().GetAttr(ino).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fs().GetXattr(ino, "user.k").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(fs().StatFs()->files, 1u);  // only the root
}

// ---- rename ----

TEST_F(FilesystemTest,
       givenTargetFile_whenRenameOverIt_thenReplacedAndOrphaned) {
  uint64_t src = MakeFile(kRootInode, "src");
  uint64_t dst = MakeFile(kRootInode, "dst");
  WriteAt(dst, 0, "old");
  ASSERT_TRUE(fs().Rename(kRootInode, "src", kRootInode, "dst", 0).ok());
  EXPECT_EQ(fs().Lookup(kRootInode, "dst")->ino, src);
  EXPECT_EQ(CodeOfLookup(kRootInode, "src"), StatusCode::kNotFound);
  EXPECT_EQ(Attr(dst).nlink, 0u);
  EXPECT_EQ(ReadAll(dst), "old");  // still open
  ASSERT_TRUE(fs().Forget(dst).ok());
  EXPECT_EQ(fs().GetAttr(dst).status().code(), StatusCode::kNotFound);
}

TEST_F(FilesystemTest, givenDirectoryTargets_whenRename_thenPosixTypeRules) {
  uint64_t dir = MakeDir(kRootInode, "dir");
  uint64_t empty = MakeDir(kRootInode, "empty");
  uint64_t full = MakeDir(kRootInode, "full");
  MakeFile(full, "x");
  MakeFile(kRootInode, "file");
  EXPECT_EQ(fs().Rename(kRootInode, "dir", kRootInode, "full", 0).code(),
            StatusCode::kNotEmpty);
  EXPECT_EQ(fs().Rename(kRootInode, "file", kRootInode, "empty", 0).code(),
            StatusCode::kIsDirectory);
  EXPECT_EQ(fs().Rename(kRootInode, "dir", kRootInode, "file", 0).code(),
            StatusCode::kNotDirectory);
  EXPECT_EQ(Attr(kRootInode).nlink, 5u);
  ASSERT_TRUE(fs().Rename(kRootInode, "dir", kRootInode, "empty", 0).ok());
  EXPECT_EQ(fs().Lookup(kRootInode, "empty")->ino, dir);
  EXPECT_EQ(Attr(empty).nlink, 0u);
  EXPECT_EQ(Attr(kRootInode).nlink, 4u);
  EXPECT_EQ(fs().Rename(kRootInode, "gone", kRootInode, "x", 0).code(),
            StatusCode::kNotFound);
}

TEST_F(FilesystemTest,
       givenDirectory_whenRenamedAcrossDirs_thenParentsNlinkMove) {
  uint64_t a = MakeDir(kRootInode, "a");
  uint64_t b = MakeDir(kRootInode, "b");
  uint64_t moved = MakeDir(a, "moved");
  MakeFile(moved, "inside");
  ASSERT_TRUE(fs().Rename(a, "moved", b, "renamed", 0).ok());
  EXPECT_EQ(Attr(a).nlink, 2u);
  EXPECT_EQ(Attr(b).nlink, 3u);
  EXPECT_EQ(fs().Lookup(b, "renamed")->ino, moved);
  EXPECT_TRUE(fs().Lookup(moved, "inside").ok());
  // Its new parent is now an ancestor: moving b into it must fail.
  EXPECT_EQ(fs().Rename(kRootInode, "b", moved, "b", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Rename(kRootInode, "b", b, "self", 0).code(),
            StatusCode::kInvalidArgument);
  uint64_t file = MakeFile(a, "f");
  ASSERT_TRUE(fs().Rename(a, "f", moved, "f", 0).ok());
  EXPECT_EQ(fs().Lookup(moved, "f")->ino, file);
  EXPECT_EQ(Attr(a).nlink, 2u);  // files do not count
}

TEST_F(FilesystemTest, givenFlags_whenRenameNoReplaceOrExchange_thenHonoured) {
  uint64_t d1 = MakeDir(kRootInode, "d1");
  uint64_t d2 = MakeDir(kRootInode, "d2");
  uint64_t file = MakeFile(d1, "f");
  uint64_t sub = MakeDir(d2, "sub");
  MakeFile(kRootInode, "other");
  EXPECT_EQ(fs().Rename(d1, "f", kRootInode, "other", kRenameNoReplace).code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(fs().Rename(d1, "f", d1, "g", kRenameNoReplace).ok());
  EXPECT_EQ(fs().Rename(d1, "g", d1, "missing", kRenameExchange).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(
      fs().Rename(d1, "g", d1, "h", kRenameExchange | kRenameNoReplace).code(),
      StatusCode::kInvalidArgument);
  // File <-> directory across directories.
  ASSERT_TRUE(fs().Rename(d1, "g", d2, "sub", kRenameExchange).ok());
  EXPECT_EQ(fs().Lookup(d1, "g")->ino, sub);
  EXPECT_EQ(fs().Lookup(d2, "sub")->ino, file);
  EXPECT_EQ(Attr(d1).nlink, 3u);
  EXPECT_EQ(Attr(d2).nlink, 2u);
  EXPECT_EQ(Attr(file).nlink, 1u);
  // The exchanged directory's parent moved with it.
  EXPECT_EQ(fs().Rename(kRootInode, "d1", sub, "x", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fs().Rename(d1, "g", kRootInode, "d1", kRenameExchange).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(FilesystemTest, givenSameNameOrSameInode_whenRename_thenNoOp) {
  uint64_t ino = MakeFile(kRootInode, "same");
  ASSERT_TRUE(fs().Rename(kRootInode, "same", kRootInode, "same", 0).ok());
  ASSERT_TRUE(fs().Link(ino, kRootInode, "alias").ok());
  ASSERT_TRUE(fs().Rename(kRootInode, "same", kRootInode, "alias", 0).ok());
  EXPECT_EQ(Names(kRootInode), (std::set<std::string>{"alias", "same"}));
  EXPECT_EQ(Attr(ino).nlink, 2u);
}

// ---- xattrs and attributes ----

TEST_F(FilesystemTest, givenXattrs_whenSetGetListRemove_thenFlagsAndErrors) {
  uint64_t ino = MakeFile(kRootInode, "x");
  ASSERT_TRUE(fs().SetXattr(ino, "user.a", "1", 0).ok());
  EXPECT_EQ(fs().SetXattr(ino, "user.a", "2", XATTR_CREATE).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(fs().SetXattr(ino, "user.b", "2", XATTR_REPLACE).code(),
            StatusCode::kNoAttribute);
  ASSERT_TRUE(fs().SetXattr(ino, "user.a", "one", XATTR_REPLACE).ok());
  ASSERT_TRUE(
      fs().SetXattr(ino, "user.b", std::string(1000, '\0'), XATTR_CREATE).ok());
  EXPECT_EQ(fs().GetXattr(ino, "user.a").value(), "one");
  EXPECT_EQ(fs().GetXattr(ino, "user.b").value(), std::string(1000, '\0'));
  EXPECT_EQ(fs().ListXattr(ino).value(),
            (std::vector<std::string>{"user.a", "user.b"}));
  ASSERT_TRUE(fs().RemoveXattr(ino, "user.a").ok());
  EXPECT_EQ(fs().RemoveXattr(ino, "user.a").code(), StatusCode::kNoAttribute);
  EXPECT_EQ(fs().GetXattr(ino, "user.a").status().code(),
            StatusCode::kNoAttribute);
  EXPECT_EQ(fs().ListXattr(ino).value(), (std::vector<std::string>{"user.b"}));
  EXPECT_EQ(fs().SetXattr(ino, "user.big", std::string(1 << 20, 'v'), 0).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(fs().SetXattr(ino, std::string(256, 'n'), "v", 0).code(),
            StatusCode::kOutOfRange);
}

TEST_F(FilesystemTest, givenPosixAclXattrs_whenSetGetRemove_thenNotSupported) {
  uint64_t ino = MakeFile(kRootInode, "x");
  for (const char* name :
       {"system.posix_acl_access", "system.posix_acl_default"}) {
    EXPECT_EQ(fs().SetXattr(ino, name, "acl", 0).code(),
              StatusCode::kNotSupported)
        << name;
    EXPECT_EQ(fs().GetXattr(ino, name).status().code(),
              StatusCode::kNotSupported)
        << name;
    EXPECT_EQ(fs().RemoveXattr(ino, name).code(), StatusCode::kNotSupported)
        << name;
  }
  EXPECT_TRUE(fs().ListXattr(ino).value().empty());
}

TEST_F(FilesystemTest, givenSetAttr_whenChmodChownUtimens_thenNanosecondsKept) {
  uint64_t ino = MakeFile(kRootInode, "attrs");
  SetAttrRequest req;
  req.mode = 04711;
  req.uid = 42;
  req.gid = 43;
  req.atime = Timespec{1'600'000'000, 123'456'789};
  req.mtime = Timespec{-5, 999'999'999};
  ASSERT_TRUE(fs().SetAttr(ino, req).ok());
  InodeAttr attr = Attr(ino);
  EXPECT_EQ(attr.mode, S_IFREG | 04711u);
  EXPECT_EQ(attr.uid, 42u);
  EXPECT_EQ(attr.gid, 43u);
  EXPECT_EQ(attr.atime.sec, 1'600'000'000);
  EXPECT_EQ(attr.atime.nsec, 123'456'789);
  EXPECT_EQ(attr.mtime.sec, -5);
  EXPECT_EQ(attr.mtime.nsec, 999'999'999);
  EXPECT_GT(attr.ctime.sec, 1'600'000'000);
  SetAttrRequest now;
  now.mtime_now = true;
  auto after = fs().SetAttr(ino, now);
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->mtime.sec, 1'600'000'000);
  EXPECT_EQ(after->atime.nsec, 123'456'789);
}

// ---- readdir ----

TEST_F(FilesystemTest,
       givenEntries_whenReadDirPaged_thenOffsetsResumeAfterEntry) {
  std::set<std::string> want;
  for (int i = 0; i < 50; ++i) {
    want.insert("e" + std::to_string(i));
    MakeFile(kRootInode, "e" + std::to_string(i));
  }
  std::set<std::string> got;
  uint64_t offset = 0;
  while (true) {
    auto page = fs().ReadDir(kRootInode, offset, 7);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    for (const auto& e : *page) {
      EXPECT_GT(e.next_offset, 2u);
      EXPECT_TRUE(got.insert(e.name).second) << e.name;
      EXPECT_EQ(e.attr.ino, fs().Lookup(kRootInode, e.name)->ino);
    }
    offset = page->back().next_offset;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(fs().ReadDir(MakeFile(kRootInode, "f"), 0, 10).status().code(),
            StatusCode::kNotDirectory);
}

TEST(FilesystemBigDirTest,
     givenHundredThousandEntries_whenPagedWithChurn_thenStable) {
  FsEnv env(64 * 1024);
  Filesystem& fs = env.fs();
  constexpr int kEntries = 100'000;
  auto name = [](int i) { return "entry-" + std::to_string(i); };
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_TRUE(fs.Mknod(kRootInode, name(i), S_IFREG | 0644, 0, 0, 0).ok());
  }
  // Between pages, remove every 7th original entry and add new ones.
  std::set<std::string> removed;
  std::map<std::string, int> seen;
  uint64_t offset = 0;
  int added = 0;
  for (int page_no = 0;; ++page_no) {
    auto page = fs.ReadDir(kRootInode, offset, 4096);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (page->empty()) break;
    for (const auto& e : *page) ++seen[e.name];
    offset = page->back().next_offset;
    for (int j = 0; j < 50; ++j) {
      const int victim = (page_no * 50 + j) * 7;
      if (victim < kEntries && removed.insert(name(victim)).second) {
        ASSERT_TRUE(fs.Unlink(kRootInode, name(victim)).ok());
      }
      ASSERT_TRUE(fs.Mknod(kRootInode, "new-" + std::to_string(added++),
                           S_IFREG, 0, 0, 0)
                      .ok());
    }
  }
  for (const auto& [entry, count] : seen) EXPECT_EQ(count, 1) << entry;
  for (int i = 0; i < kEntries; ++i) {
    if (!removed.count(name(i))) {
      ASSERT_EQ(seen.count(name(i)), 1u) << name(i);
    }
  }
  EXPECT_GT(removed.size(), 1000u);
}

TEST_F(FilesystemTest,
       givenConcurrentCreatesAndWrites_whenJoined_thenAllApplied) {
  constexpr int kThreads = 4;
  constexpr int kFilesEach = 50;
  uint64_t shared = MakeFile(kRootInode, "shared");
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFilesEach; ++i) {
        const std::string name =
            "t" + std::to_string(t) + "-" + std::to_string(i);
        auto attr = fs().Mknod(kRootInode, name, S_IFREG | 0644, 0, 0, 0);
        ASSERT_TRUE(attr.ok()) << attr.status().ToString();
        ASSERT_TRUE(fs().Write(attr->ino, 0, name).ok());
        // Disjoint ranges of one file: every write must survive.
        ASSERT_TRUE(fs().Write(shared, (t * kFilesEach + i) * 100, name).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(Names(kRootInode).size(), 1u + kThreads * kFilesEach);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kFilesEach; ++i) {
      const std::string name =
          "t" + std::to_string(t) + "-" + std::to_string(i);
      EXPECT_EQ(ReadAll(fs().Lookup(kRootInode, name)->ino), name);
      EXPECT_EQ(
          fs().Read(shared, (t * kFilesEach + i) * 100, name.size()).value(),
          name);
    }
  }
  EXPECT_EQ(fs().StatFs()->files, 2u + kThreads * kFilesEach);
}

// ---- persistence, crashes, space ----

TEST_F(FilesystemTest, givenSyncedTree_whenReopened_thenEverythingThere) {
  uint64_t dir = MakeDir(kRootInode, "dir");
  uint64_t file = MakeFile(dir, "file");
  WriteAt(file, 100, "persisted");
  ASSERT_TRUE(fs().SetXattr(file, "user.x", "y", 0).ok());
  ASSERT_TRUE(fs().Symlink(dir, "ln", "file", 0, 0).ok());
  ASSERT_TRUE(fs().Sync().ok());
  env_.Reopen();
  EXPECT_EQ(fs().Lookup(kRootInode, "dir")->ino, dir);
  EXPECT_EQ(fs().Lookup(dir, "file")->ino, file);
  EXPECT_EQ(ReadAll(file), std::string(100, '\0') + "persisted");
  EXPECT_EQ(fs().GetXattr(file, "user.x").value(), "y");
  EXPECT_EQ(fs().Readlink(fs().Lookup(dir, "ln")->ino).value(), "file");
  EXPECT_EQ(Attr(kRootInode).nlink, 3u);
  // New inode numbers do not collide with the old ones.
  EXPECT_GT(MakeFile(kRootInode, "later"), file);
}

TEST_F(FilesystemTest, givenChangesAfterSync_whenCrash_thenLastSyncedState) {
  uint64_t file = MakeFile(kRootInode, "kept");
  WriteAt(file, 0, "v1");
  ASSERT_TRUE(fs().Sync().ok());
  WriteAt(file, 0, "v2");
  MakeFile(kRootInode, "lost");
  ASSERT_TRUE(fs().Rename(kRootInode, "kept", kRootInode, "renamed", 0).ok());
  env_.Reopen();  // no Sync
  EXPECT_EQ(Names(kRootInode), std::set<std::string>{"kept"});
  EXPECT_EQ(ReadAll(file), "v1");
}

TEST_F(FilesystemTest, givenOrphanAtCrash_whenReopened_thenFreed) {
  const uint64_t b = BlockSize();
  uint64_t ino = MakeFile(kRootInode, "orphan");
  WriteAt(ino, 0, std::string(3 * b, 'o'));
  ASSERT_TRUE(fs().Unlink(kRootInode, "orphan").ok());
  ASSERT_TRUE(fs().Sync().ok());  // durable while still unlinked-but-open
  ASSERT_TRUE(fs().GetAttr(ino).ok());
  env_.Reopen();
  EXPECT_EQ(fs().GetAttr(ino).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fs().StatFs()->files, 1u);
}

TEST_F(FilesystemTest,
       givenEverythingDeleted_whenSynced_thenUsageBackToBaseline) {
  ASSERT_TRUE(fs().Sync().ok());
  const StoreStats baseline = env_.store().Stat().value();
  uint64_t dir = MakeDir(kRootInode, "dir");
  for (int i = 0; i < 200; ++i) {
    uint64_t ino = MakeFile(dir, "f" + std::to_string(i));
    WriteAt(ino, i * 1000, Pattern(5000, i));
    ASSERT_TRUE(fs().SetXattr(ino, "user.i", std::to_string(i), 0).ok());
  }
  ASSERT_TRUE(fs().Sync().ok());
  EXPECT_GT(env_.store().Stat()->used_bytes, baseline.used_bytes + 200 * 4000);
  for (int i = 0; i < 200; ++i) {
    const std::string name = "f" + std::to_string(i);
    uint64_t ino = fs().Lookup(dir, name)->ino;
    ASSERT_TRUE(fs().Unlink(dir, name).ok());
    ASSERT_TRUE(fs().Forget(ino).ok());
  }
  ASSERT_TRUE(fs().Rmdir(kRootInode, "dir").ok());
  ASSERT_TRUE(fs().Forget(dir).ok());
  ASSERT_TRUE(fs().Sync().ok());
  const StoreStats after = env_.store().Stat().value();
  EXPECT_EQ(after.block_count, baseline.block_count);
  EXPECT_EQ(after.used_bytes, baseline.used_bytes);
}

// Every commit (dirty limit 1 byte: one per operation) may be the last
// before a crash; after each, the tree must hold whole operations only.
TEST_F(FilesystemTest,
       givenCrashAtRandomCommit_whenRenamesAndExchanges_thenLinksConsistent) {
  env_.set_dirty_limit(1);
  env_.Reopen();
  const uint64_t d1 = MakeDir(kRootInode, "d1");
  const uint64_t d2 = MakeDir(kRootInode, "d2");
  const std::vector<uint64_t> dirs{d1, d2};
  const std::vector<std::string> names{"a", "b", "c", "d", "e"};
  for (uint64_t dir : dirs) {
    for (const auto& name : names) MakeFile(dir, name);
    MakeDir(dir, "sub");
  }
  ASSERT_TRUE(fs().Link(fs().Lookup(d1, "a")->ino, d2, "hard").ok());
  ASSERT_TRUE(fs().Sync().ok());

  std::mt19937 rng(20261123);
  auto pick_dir = [&] { return dirs[rng() % dirs.size()]; };
  auto pick_name = [&] {
    return rng() % 6 == 0 ? std::string("sub") : names[rng() % names.size()];
  };
  for (int round = 0; round < 30; ++round) {
    env_.host().CrashAfterCommits(rng() % 40);
    for (int step = 0; step < 30; ++step) {
      const uint64_t from = pick_dir(), to = pick_dir();
      const std::string a = pick_name(), b = pick_name();
      switch (rng() % 3) {
        case 0:  // errors (crashed host, missing names) are expected
          (void)fs().Rename(from, a, to, b, kRenameExchange);
          break;
        case 1:
          (void)fs().Rename(from, a, to, b, 0);
          break;
        default:  // refill names that renames consumed
          (void)fs().Mknod(from, a, S_IFREG | 0644, 0, kUid, kGid);
      }
    }
    env_.Reopen();

    // Walk the whole tree: every entry's record must load (ReadDir loads
    // it), and every link count must match the names found.
    std::map<uint64_t, uint32_t> names_of;    // ino -> names seen
    std::map<uint64_t, uint32_t> subdirs_of;  // dir ino -> subdirectories
    std::map<uint64_t, uint32_t> nlink_of;
    std::vector<uint64_t> todo{kRootInode};
    nlink_of[kRootInode] = Attr(kRootInode).nlink;
    while (!todo.empty()) {
      const uint64_t dir = todo.back();
      todo.pop_back();
      auto entries = fs().ReadDir(dir, 0, 1u << 20);
      ASSERT_TRUE(entries.ok())
          << "round " << round << ": " << entries.status().ToString();
      for (const auto& e : *entries) {
        ++names_of[e.attr.ino];
        nlink_of[e.attr.ino] = e.attr.nlink;
        if (S_ISDIR(e.attr.mode)) {
          ++subdirs_of[dir];
          todo.push_back(e.attr.ino);
        }
      }
    }
    for (const auto& [ino, nlink] : nlink_of) {
      if (S_ISDIR(Attr(ino).mode)) {
        EXPECT_EQ(nlink, 2 + subdirs_of[ino]) << "round " << round;
        EXPECT_LE(names_of[ino], 1u)
            << "directory " << ino << " round " << round;
      } else {
        EXPECT_EQ(nlink, names_of[ino])
            << "inode " << ino << " round " << round;
      }
    }
    // Nothing leaked either: live inodes are exactly the reachable ones.
    EXPECT_EQ(fs().StatFs()->files, nlink_of.size()) << "round " << round;
  }
}

TEST(FilesystemStatFsTest, givenQuota_whenStatFs_thenBlocksFromQuotaAndFiles) {
  FsEnv env(16 * 1024, 64u << 20);
  Filesystem& fs = env.fs();
  ASSERT_TRUE(fs.Mkdir(kRootInode, "d", 0755, 0, 0).ok());
  ASSERT_TRUE(fs.Sync().ok());
  auto stats = fs.StatFs();
  ASSERT_TRUE(stats.ok());
  const uint64_t b = fs.volume().block_size();
  EXPECT_EQ(stats->block_size, b);
  EXPECT_EQ(stats->total_blocks, (64u << 20) / b);
  const uint64_t used = env.store().Stat()->used_bytes;
  EXPECT_EQ(stats->free_blocks, ((64u << 20) - used) / b);
  EXPECT_EQ(stats->files, 2u);
}

TEST(FilesystemStatFsTest, givenNoQuota_whenStatFs_thenLargeTotal) {
  FsEnv env;
  auto stats = env.fs().StatFs();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->total_blocks, uint64_t{1} << 40);
  EXPECT_LT(stats->free_blocks, stats->total_blocks);
}

// ---- record codec ----

TEST(InodeCodecTest, givenRecord_whenEncodedAndDecoded_thenRoundTrips) {
  InodeRecord rec;
  rec.mode = S_IFLNK | 0777;
  rec.nlink = 3;
  rec.uid = 0xFFFFFFFF;
  rec.size = uint64_t{1} << 40;
  rec.data_blocks = 12;
  rec.parent = 9;
  rec.mtime = Timespec{-1234567890123, 999'999'999};
  rec.symlink_target = "target";
  auto back = InodeRecord::Decode(77, rec.Encode());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ino, 77u);
  EXPECT_EQ(back->Encode(), rec.Encode());
  EXPECT_EQ(back->mtime.sec, -1234567890123);
  EXPECT_EQ(back->symlink_target, "target");
}

TEST(InodeCodecTest, givenMalformedRecord_whenDecoded_thenCorruption) {
  const std::string good = InodeRecord{}.Encode();
  EXPECT_EQ(InodeRecord::Decode(1, "").status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(InodeRecord::Decode(1, "\x02" + good.substr(1)).status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(
      InodeRecord::Decode(1, good.substr(0, good.size() - 1)).status().code(),
      StatusCode::kCorruption);
  EXPECT_EQ(InodeRecord::Decode(1, good + "x").status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(DirentValue::Decode("short").status().code(),
            StatusCode::kCorruption);
}

TEST(InodeCodecTest, givenNames_whenHashed_thenPositionsAboveDotEntries) {
  std::set<uint64_t> hashes;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t h = NameHash("n" + std::to_string(i));
    EXPECT_GE(h, kFirstDirOffset);
    EXPECT_LT(h, uint64_t{1} << 63);
    hashes.insert(h);
  }
  EXPECT_EQ(hashes.size(), 1000u);
  EXPECT_EQ(NameHash("same"), NameHash("same"));
}

}  // namespace
}  // namespace enclavefs

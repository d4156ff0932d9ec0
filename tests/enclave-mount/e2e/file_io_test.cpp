// End-to-end: file data syscalls on a real enclavefs mount (open, read,
// write, positioned I/O, append, holes, large offsets, truncate, fallocate,
// fsync, shared mmap, statfs).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

constexpr off_t kMiB = 1 << 20;
constexpr off_t kGiB = off_t{1} << 30;

using FileIoTest = MountedVolumeTest;

std::string PreadString(int fd, size_t size, off_t offset) {
  std::string out(size, '\0');
  const ssize_t n = pread(fd, out.data(), size, offset);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

bool PwriteAll(int fd, const std::string& data, off_t offset) {
  return pwrite(fd, data.data(), data.size(), offset) ==
         static_cast<ssize_t>(data.size());
}

TEST_F(FileIoTest, givenNewFile_whenCreatWriteAndRead_thenContentRoundTrips) {
  const std::string data = PatternBytes(1, 300000);  // several data blocks
  {
    UniqueFd fd(creat(P("f").c_str(), 0644));
    ASSERT_TRUE(fd.ok()) << std::strerror(errno);
    ASSERT_EQ(write(fd.get(), data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
  }
  EXPECT_EQ(ReadFile(P("f")), data);
  struct stat st {};
  ASSERT_EQ(stat(P("f").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
}

TEST_F(FileIoTest, givenOpenFlags_whenMisused_thenErrnoMatchesPosix) {
  EXPECT_EQ(Errno(open(P("missing").c_str(), O_RDONLY)), ENOENT);
  ASSERT_TRUE(WriteFileSynced(P("f"), "x"));
  EXPECT_EQ(Errno(open(P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644)),
            EEXIST);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(Errno(open(P("d").c_str(), O_WRONLY)), EISDIR);
  EXPECT_EQ(Errno(open(P("f/sub").c_str(), O_RDONLY)), ENOTDIR);
  EXPECT_EQ(
      Errno(open(P(std::string(256, 'n')).c_str(), O_CREAT | O_WRONLY, 0644)),
      ENAMETOOLONG);
  UniqueFd read_only(open(P("f").c_str(), O_RDONLY));
  ASSERT_TRUE(read_only.ok());
  EXPECT_EQ(Errno(write(read_only.get(), "y", 1)), EBADF);
}

TEST_F(FileIoTest, givenExistingFile_whenOpenedWithTrunc_thenItIsEmptied) {
  ASSERT_TRUE(WriteFileSynced(P("f"), PatternBytes(2, 100000)));
  UniqueFd fd(open(P("f").c_str(), O_WRONLY | O_TRUNC));
  ASSERT_TRUE(fd.ok());
  struct stat st {};
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(ReadFile(P("f")), "");
}

TEST_F(FileIoTest, givenFile_whenPwriteAcrossBlockBoundaries_thenPreadSeesIt) {
  const std::string base = PatternBytes(3, 200000);
  // Straddles the 64 KiB data-block boundary and a second one later.
  const std::string patch1 = PatternBytes(4, 100);
  const std::string patch2 = PatternBytes(5, 70000);
  {
    UniqueFd fd(open(P("f").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(PwriteAll(fd.get(), base, 0));
    ASSERT_TRUE(PwriteAll(fd.get(), patch1, 65500));
    ASSERT_TRUE(PwriteAll(fd.get(), patch2, 120000));
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  std::string expected = base;
  expected.replace(65500, patch1.size(), patch1);
  expected.resize(std::max<size_t>(expected.size(), 120000 + patch2.size()));
  expected.replace(120000, patch2.size(), patch2);
  Remount();
  UniqueFd again(open(P("f").c_str(), O_RDONLY));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(PreadString(again.get(), 100, 65500), patch1);
  EXPECT_EQ(PreadString(again.get(), expected.size() + 10, 0), expected);
  EXPECT_EQ(PreadString(again.get(), 10, expected.size() + 5), "");  // EOF
}

TEST_F(FileIoTest, givenAppendMode_whenWriting_thenDataGoesToTheEnd) {
  ASSERT_TRUE(WriteFileSynced(P("log"), "first\n"));
  {
    UniqueFd fd(open(P("log").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.ok());
    ASSERT_EQ(lseek(fd.get(), 0, SEEK_SET), 0);
    ASSERT_EQ(write(fd.get(), "second\n", 7), 7);
    ASSERT_EQ(write(fd.get(), "third\n", 6), 6);
  }
  EXPECT_EQ(ReadFile(P("log")), "first\nsecond\nthird\n");
}

TEST_F(FileIoTest, givenSparseFile_whenReadingHoles_thenZerosAndFewBlocks) {
  constexpr off_t kEnd = 10 * kMiB;
  {
    UniqueFd fd(open(P("sparse").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(PwriteAll(fd.get(), "head", 0));
    ASSERT_TRUE(PwriteAll(fd.get(), "tail", kEnd));
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  Remount();
  UniqueFd fd(open(P("sparse").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.ok());
  struct stat st {};
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, kEnd + 4);
  EXPECT_LT(st.st_blocks * 512, st.st_size);
  EXPECT_EQ(PreadString(fd.get(), 1 << 20, 4 * kMiB),
            std::string(1 << 20, '\0'));
  EXPECT_EQ(PreadString(fd.get(), 8, kEnd - 4), std::string(4, '\0') + "tail");
  EXPECT_EQ(PreadString(fd.get(), 4, 0), "head");
}

TEST_F(FileIoTest, givenFile_whenPwriteAtFiveGiB_thenSizeAndDataAreRight) {
  const off_t offset = 5 * kGiB;
  const std::string data = PatternBytes(6, 5000);
  {
    UniqueFd fd(open(P("big").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(PwriteAll(fd.get(), data, offset));
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  Remount();
  UniqueFd fd(open(P("big").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.ok());
  struct stat st {};
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, offset + static_cast<off_t>(data.size()));
  EXPECT_EQ(PreadString(fd.get(), data.size(), offset), data);
  EXPECT_EQ(PreadString(fd.get(), 4096, 4 * kGiB), std::string(4096, '\0'));
}

TEST_F(FileIoTest, givenFile_whenTruncatedDownThenUp_thenOldBytesStayGone) {
  const std::string data = PatternBytes(7, 200000);
  ASSERT_TRUE(WriteFileSynced(P("f"), data));
  ASSERT_EQ(truncate(P("f").c_str(), 70000), 0);  // mid second block
  EXPECT_EQ(ReadFile(P("f")), data.substr(0, 70000));
  ASSERT_EQ(truncate(P("f").c_str(), 150000), 0);
  std::string expected = data.substr(0, 70000) + std::string(80000, '\0');
  EXPECT_EQ(ReadFile(P("f")), expected);
  Remount();
  EXPECT_EQ(ReadFile(P("f")), expected);
  EXPECT_EQ(Errno(truncate(P("missing").c_str(), 0)), ENOENT);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(Errno(truncate(P("d").c_str(), 0)), EISDIR);
}

TEST_F(FileIoTest, givenFile_whenFallocateDefaultMode_thenSizeGrowsWithZeros) {
  UniqueFd fd(open(P("f").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(PwriteAll(fd.get(), "abc", 0));
  ASSERT_EQ(fallocate(fd.get(), 0, 0, 3 * kMiB), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 3 * kMiB);
  EXPECT_EQ(PreadString(fd.get(), 3, 0), "abc");
  EXPECT_EQ(PreadString(fd.get(), 4096, 2 * kMiB), std::string(4096, '\0'));
  // KEEP_SIZE within the size changes nothing visible either.
  ASSERT_EQ(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, kMiB), 0);
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 3 * kMiB);
}

TEST_F(FileIoTest,
       givenWrites_whenFsyncAndFdatasync_thenTheySucceedAndPersist) {
  {
    UniqueFd fd(open(P("f").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(PwriteAll(fd.get(), "one", 0));
    EXPECT_EQ(fsync(fd.get()), 0);
    ASSERT_TRUE(PwriteAll(fd.get(), "two", 3));
    EXPECT_EQ(fdatasync(fd.get()), 0);
    UniqueFd dir(open(P("").c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(dir.ok());
    EXPECT_EQ(fsync(dir.get()), 0);
  }
  // The daemon dies without a final commit: only synced data can survive.
  ASSERT_TRUE(volume_.CrashMount());
  CommandResult mounted = volume_.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(P("f")), "onetwo");
}

TEST_F(FileIoTest, givenSharedMapping_whenWrittenAndMsynced_thenReadSeesIt) {
  constexpr size_t kSize = 256 * 1024;
  const std::string data = PatternBytes(8, kSize);
  {
    UniqueFd fd(open(P("mapped").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.ok());
    ASSERT_EQ(ftruncate(fd.get(), kSize), 0);
    void* map =
        mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
    std::memcpy(map, data.data(), kSize);
    EXPECT_EQ(msync(map, kSize, MS_SYNC), 0);
    ASSERT_EQ(munmap(map, kSize), 0);
    EXPECT_EQ(PreadString(fd.get(), kSize, 0), data);
    ASSERT_EQ(fsync(fd.get()), 0);
  }
  Remount();
  EXPECT_EQ(ReadFile(P("mapped")), data);
}

TEST_F(FileIoTest, givenQuota_whenStatfs_thenTotalsComeFromTheQuota) {
  struct statvfs before {};
  ASSERT_EQ(statvfs(P("").c_str(), &before), 0);
  ASSERT_GT(before.f_frsize, 0u);
  // E2eVolume creates the volume with a 1 GiB quota.
  EXPECT_EQ(before.f_blocks, static_cast<fsblkcnt_t>(kGiB / before.f_frsize));
  EXPECT_LE(before.f_bfree, before.f_blocks);
  ASSERT_TRUE(WriteFileSynced(P("f"), PatternBytes(9, 8 * kMiB)));
  struct statvfs after {};
  ASSERT_EQ(statvfs(P("").c_str(), &after), 0);
  EXPECT_LT(after.f_bfree, before.f_bfree);
  EXPECT_GE(after.f_files, 2u);  // the root directory and the file
}

// Parameter: the --writeback-share given, if any.
class WritebackShareTest
    : public MountedVolumeTest,
      public ::testing::WithParamInterface<std::optional<unsigned>> {
 protected:
  std::vector<std::string> MountArguments() const override {
    if (!GetParam()) return {};
    return {"--writeback-share", std::to_string(*GetParam())};
  }
};

TEST_P(WritebackShareTest, givenMount_whenReadingBdiMaxRatio_thenItIsTheShare) {
  if (geteuid() != 0) GTEST_SKIP() << "only root may set a bdi's max_ratio";
  struct stat st {};
  ASSERT_EQ(stat(P("").c_str(), &st), 0) << std::strerror(errno);
  const std::string path = "/sys/class/bdi/" +
                           std::to_string(major(st.st_dev)) + ":" +
                           std::to_string(minor(st.st_dev)) + "/max_ratio";
  std::optional<std::string> ratio = ReadFile(path);
  ASSERT_TRUE(ratio) << path;
  EXPECT_EQ(*ratio, std::to_string(GetParam().value_or(50)) + "\n");
}

INSTANTIATE_TEST_SUITE_P(DefaultAndGiven, WritebackShareTest,
                         ::testing::Values(std::nullopt, 7u),
                         [](const auto& info) {
                           return info.param ? "Given" : "Default";
                         });

// Block fill (enclave-mount/fuse_ops.h): a small read brings the rest of its
// block into the page cache, unless --no-block-fill.
class BlockFillTest : public MountedVolumeTest,
                      public ::testing::WithParamInterface<bool> {
 protected:
  std::vector<std::string> MountArguments() const override {
    if (GetParam()) return {};
    return {"--no-block-fill"};
  }
};

// Which of the pages of fd's first `size` bytes are in the page cache.
std::vector<bool> ResidentPages(int fd, size_t size) {
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return {};
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  std::vector<bool> resident;
  if (mincore(map, size, vec.data()) == 0) {
    for (unsigned char v : vec) resident.push_back((v & 1) != 0);
  }
  munmap(map, size);
  return resident;
}

TEST_P(BlockFillTest,
       givenColdFile_whenReadingOnePage_thenItsBlockIsCachedWithItsBytes) {
  struct stat st {};
  ASSERT_EQ(stat(P("").c_str(), &st), 0) << std::strerror(errno);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t block = static_cast<size_t>(st.st_blksize);
  const size_t pages_per_block = block / page;
  ASSERT_GE(pages_per_block, 4u);
  // Two whole blocks, then a last block that ends inside its third page.
  const std::string data = PatternBytes(5, 2 * block + 2 * page + 1000);
  ASSERT_TRUE(WriteFileSynced(P("f"), data));
  Remount();  // an empty page cache and no writable handle left
  UniqueFd fd(open(P("f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.ok()) << std::strerror(errno);
  ASSERT_EQ(posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM), 0);  // no RA
  ASSERT_EQ(ResidentPages(fd.get(), data.size()),
            std::vector<bool>(pages_per_block * 2 + 3, false));

  const size_t in_block_1 = pages_per_block + 2;
  const size_t in_last_block = 2 * pages_per_block;
  for (size_t p : {in_block_1, in_last_block}) {
    EXPECT_TRUE(PreadString(fd.get(), page, static_cast<off_t>(p * page)) ==
                data.substr(p * page, page))
        << "page " << p;
  }

  std::vector<bool> expected(pages_per_block * 2 + 3, false);
  for (size_t p = 0; p < expected.size(); ++p) {
    const size_t blk = p / pages_per_block;
    expected[p] =
        GetParam() ? blk >= 1 : (p == in_block_1 || p == in_last_block);
  }
  // The daemon fills after it has answered, so the pages may arrive just
  // after pread returns.
  std::vector<bool> resident;
  for (int tries = 0; tries < 200; ++tries) {
    resident = ResidentPages(fd.get(), data.size());
    if (resident == expected) break;
    usleep(10'000);
  }
  EXPECT_EQ(resident, expected);
  // The filled pages hold the file's bytes, the partial last page included.
  EXPECT_TRUE(PreadString(fd.get(), data.size(), 0) == data);
}

TEST_P(BlockFillTest,
       givenDirtyPageOfOpenWriter_whenReadingItsBlock_thenTheWriteSurvives) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const std::string old_data = PatternBytes(6, 4 * page);
  ASSERT_TRUE(WriteFileSynced(P("f"), old_data));
  Remount();
  const std::string new_page = PatternBytes(7, page);
  {
    UniqueFd writer(open(P("f").c_str(), O_RDWR));
    ASSERT_TRUE(writer.ok()) << std::strerror(errno);
    ASSERT_TRUE(PwriteAll(writer.get(), new_page, 0));  // dirty, not sent
    UniqueFd reader(open(P("f").c_str(), O_RDONLY));
    ASSERT_TRUE(reader.ok()) << std::strerror(errno);
    ASSERT_EQ(posix_fadvise(reader.get(), 0, 0, POSIX_FADV_RANDOM), 0);
    // Page 2 is not cached: the daemon answers it and would fill page 0
    // with the stored, older bytes if it did not know of the writer.
    EXPECT_TRUE(PreadString(reader.get(), page, static_cast<off_t>(2 * page)) ==
                old_data.substr(2 * page, page));
    EXPECT_TRUE(PreadString(reader.get(), page, 0) == new_page)
        << "the written page was overwritten with the stored one";
  }
  Remount();
  EXPECT_TRUE(ReadFile(P("f")) == new_page + old_data.substr(page))
      << "the write was lost";
}

INSTANTIATE_TEST_SUITE_P(OnAndOff, BlockFillTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Fill" : "NoFill";
                         });

}  // namespace
}  // namespace enclavefs::e2e

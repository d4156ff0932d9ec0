// End-to-end: many threads at once on one mount: private files, disjoint
// regions of one shared file, and creates/renames/unlinks in one directory.
// Results are verified through the mount and again after a remount.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

constexpr int kThreads = 8;
constexpr size_t kRegion = 700000;  // bytes per thread, not block aligned

using ConcurrencyTest = MountedVolumeTest;

// Writes `data` at `base` in chunks of varying size, re-reading each chunk
// at once. False on any error or mismatch.
bool WriteAndCheckInChunks(int fd, const std::string& data, off_t base,
                           uint64_t seed) {
  size_t done = 0;
  for (size_t step = 0; done < data.size(); ++step) {
    const size_t len =
        std::min(data.size() - done, 1000 + (seed * 31 + step * 4099) % 90000);
    if (pwrite(fd, data.data() + done, len, base + static_cast<off_t>(done)) !=
        static_cast<ssize_t>(len)) {
      return false;
    }
    std::string back(len, '\0');
    if (pread(fd, back.data(), len, base + static_cast<off_t>(done)) !=
            static_cast<ssize_t>(len) ||
        back != data.substr(done, len)) {
      return false;
    }
    done += len;
  }
  return true;
}

std::string SharedExpected() {
  std::string all;
  for (int t = 0; t < kThreads; ++t) all += PatternBytes(100 + t, kRegion);
  return all;
}

TEST_F(ConcurrencyTest,
       givenManyThreads_whenWritingFilesAndSharedRegions_thenAllDataIsRight) {
  {
    UniqueFd shared(open(P("shared").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(shared.ok());
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        // A private file, opened by this thread only.
        const std::string own = PatternBytes(200 + t, 1500000);
        UniqueFd fd(open(P("own-" + std::to_string(t)).c_str(),
                         O_RDWR | O_CREAT, 0644));
        if (!fd.ok() || !WriteAndCheckInChunks(fd.get(), own, 0, t) ||
            fsync(fd.get()) != 0) {
          ++failures;
        }
        // This thread's region of the shared file, through the shared fd.
        if (!WriteAndCheckInChunks(shared.get(), PatternBytes(100 + t, kRegion),
                                   static_cast<off_t>(t * kRegion), t + 50)) {
          ++failures;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_EQ(failures.load(), 0);
    ASSERT_EQ(fsync(shared.get()), 0);
    EXPECT_EQ(ReadFile(P("shared")), SharedExpected());
  }  // the shared fd must be closed before unmounting
  Remount();
  EXPECT_EQ(ReadFile(P("shared")), SharedExpected());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(ReadFile(P("own-" + std::to_string(t))),
              PatternBytes(200 + t, 1500000));
  }
}

TEST_F(ConcurrencyTest,
       givenManyThreads_whenChangingOneDirectory_thenListingIsExact) {
  constexpr int kPerThread = 150;
  ASSERT_EQ(mkdir(P("dir").c_str(), 0755), 0);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string name =
            P("dir/t" + std::to_string(t) + "-" + std::to_string(i));
        if (!WriteFileSynced(name, name)) ++failures;
        // Every second file is renamed, every third of those removed.
        if (i % 2 == 1 &&
            rename(name.c_str(), (name + ".moved").c_str()) != 0) {
          ++failures;
        }
        if (i % 6 == 1 && unlink((name + ".moved").c_str()) != 0) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  std::set<std::string> expected = {".", ".."};
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string name =
          "t" + std::to_string(t) + "-" + std::to_string(i);
      if (i % 6 == 1) continue;
      expected.insert(i % 2 == 1 ? name + ".moved" : name);
    }
  }
  Remount();
  std::set<std::string> listed;
  DIR* dir = opendir(P("dir").c_str());
  ASSERT_NE(dir, nullptr);
  while (dirent* entry = readdir(dir)) listed.insert(entry->d_name);
  closedir(dir);
  EXPECT_EQ(listed, expected);
  EXPECT_EQ(ReadFile(P("dir/t3-4")), P("dir/t3-4"));
  EXPECT_EQ(ReadFile(P("dir/t5-3.moved")), P("dir/t5-3"));
}

}  // namespace
}  // namespace enclavefs::e2e

// RecycleLargeBuffers: checked in a child process, as malloc's settings and
// its adaptive thresholds are process state earlier tests have moved. The
// child is a fresh run of this binary ("threadsafe" death tests), not a
// fork: a forked child would inherit the arenas that other tests' threads
// created when the whole binary runs in one process.
#include "blockstore/malloc_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <thread>
#include <vector>

namespace enclavefs {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kGlibcMalloc = false;  // the sanitizer brings its own allocator
#else
constexpr bool kGlibcMalloc = true;
#endif

// Just under kMmapThreshold, and above any size glibc's adaptive threshold
// has reached in these tests, so by default it would get its own mmap.
constexpr size_t kBuffer = kMmapThreshold - (size_t{1} << 20);

class MallocTuningTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Exit codes of the child: 0 the buffer came from the heap and stayed there
// after free; 2 it was mmapped (also what a refused setting leads to); 3 the
// heap shrank after free.
[[noreturn]] void AllocateFreeAndReport(bool tune) {
  if (tune) RecycleLargeBuffers();
  const size_t mapped_before = mallinfo2().hblkhd;
  // volatile: the compiler may not drop the malloc/free pair.
  char* volatile buffer = static_cast<char*>(std::malloc(kBuffer));
  std::memset(buffer, 1, kBuffer);
  const bool mapped = mallinfo2().hblkhd > mapped_before;
  const size_t heap_in_use = mallinfo2().arena;
  std::free(buffer);
  if (mapped) std::_Exit(2);
  if (mallinfo2().arena < heap_in_use) std::_Exit(3);
  std::_Exit(0);
}

TEST_F(MallocTuningTest, givenTuned_whenLargeBufferFreed_thenHeapKeepsIt) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateFreeAndReport(/*tune=*/true),
              ::testing::ExitedWithCode(0), "");
}

// The default the tuning exists to change: without it the same buffer is
// mmapped, so the test above would fail if the settings did nothing.
TEST_F(MallocTuningTest, givenDefaults_whenLargeBufferAllocated_thenMmapped) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateFreeAndReport(/*tune=*/false),
              ::testing::ExitedWithCode(2), "");
}

// Exit code of the child: 0 if threads that all hold memory at once shared
// at most kMallocArenas arenas, 4 if there were more (malloc_info lists
// one <heap> per arena).
[[noreturn]] void AllocateInThreadsAndReport(bool tune) {
  if (tune) RecycleLargeBuffers();
  const int threads = kMallocArenas + 4;
  std::latch all_allocated(threads);
  std::vector<std::thread> holders;
  for (int i = 0; i < threads; ++i) {
    holders.emplace_back([&] {
      char* volatile block = static_cast<char*>(std::malloc(size_t{64} << 10));
      all_allocated.arrive_and_wait();
      std::free(block);
    });
  }
  for (auto& holder : holders) holder.join();
  char* text = nullptr;
  size_t size = 0;
  FILE* out = ::open_memstream(&text, &size);
  ::malloc_info(0, out);
  std::fclose(out);
  int arenas = 0;
  for (const char* p = text; (p = std::strstr(p, "<heap nr=")); ++p) ++arenas;
  std::_Exit(arenas <= kMallocArenas ? 0 : 4);
}

TEST_F(MallocTuningTest,
       givenTuned_whenManyThreadsAllocate_thenArenasAreCapped) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateInThreadsAndReport(/*tune=*/true),
              ::testing::ExitedWithCode(0), "");
}

// Without the tuning each of those threads gets an arena of its own, so the
// test above would fail if the setting did nothing.
TEST_F(MallocTuningTest, givenDefaults_whenManyThreadsAllocate_thenMoreArenas) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateInThreadsAndReport(/*tune=*/false),
              ::testing::ExitedWithCode(4), "");
}

TEST_F(MallocTuningTest, givenNoTunables_whenHugePagesAdded_thenOnlyThatEntry) {
  EXPECT_EQ(TunablesWithHugePages(nullptr), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(TunablesWithHugePages(""), "glibc.malloc.hugetlb=1");
}

TEST_F(MallocTuningTest,
       givenOtherTunables_whenHugePagesAdded_thenKeptInFront) {
  EXPECT_EQ(TunablesWithHugePages("glibc.malloc.arena_max=2"),
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
  // A name that only starts like it is another tunable.
  EXPECT_EQ(TunablesWithHugePages("glibc.malloc.hugetlbx=1"),
            "glibc.malloc.hugetlbx=1:glibc.malloc.hugetlb=1");
}

TEST_F(MallocTuningTest, givenHugePagesAlreadySet_whenAdded_thenLeftAsItIs) {
  EXPECT_EQ(TunablesWithHugePages("glibc.malloc.hugetlb=1"), std::nullopt);
  EXPECT_EQ(TunablesWithHugePages("glibc.malloc.hugetlb=0"), std::nullopt);
  EXPECT_EQ(
      TunablesWithHugePages("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"),
      std::nullopt);
}

}  // namespace
}  // namespace enclavefs

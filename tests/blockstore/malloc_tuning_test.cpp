// RecycleLargeBuffers: checked in a child process, as malloc's settings and
// its adaptive thresholds are process state earlier tests have moved.
#include "blockstore/malloc_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

namespace enclavefs {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcMalloc = false;  // ASan brings its own allocator
#else
constexpr bool kGlibcMalloc = true;
#endif

// Just under kMmapThreshold, and above any size glibc's adaptive threshold
// has reached in these tests, so by default it would get its own mmap.
constexpr size_t kBuffer = kMmapThreshold - (size_t{1} << 20);

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

TEST(MallocTuningTest, givenTuned_whenLargeBufferFreed_thenHeapKeepsIt) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateFreeAndReport(/*tune=*/true),
              ::testing::ExitedWithCode(0), "");
}

// The default the tuning exists to change: without it the same buffer is
// mmapped, so the test above would fail if the settings did nothing.
TEST(MallocTuningTest, givenDefaults_whenLargeBufferAllocated_thenMmapped) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateFreeAndReport(/*tune=*/false),
              ::testing::ExitedWithCode(2), "");
}

// Exit code of the child: 0 a block another thread allocated came from the
// main heap (below the program break), 4 from a heap of its own arena.
[[noreturn]] void AllocateInThreadAndReport(bool tune) {
  if (tune) RecycleLargeBuffers();
  char* block = nullptr;
  std::thread([&] {
    block = static_cast<char*>(std::malloc(size_t{64} << 10));
    std::memset(block, 1, size_t{64} << 10);
  }).join();
  // Not freed: the child exits at once.
  std::_Exit(block < static_cast<char*>(::sbrk(0)) ? 0 : 4);
}

TEST(MallocTuningTest, givenTuned_whenThreadAllocates_thenMainHeapServesIt) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateInThreadAndReport(/*tune=*/true),
              ::testing::ExitedWithCode(0), "");
}

// Without the tuning the thread gets an arena of its own, so the test above
// would fail if the setting did nothing.
TEST(MallocTuningTest, givenDefaults_whenThreadAllocates_thenOwnArena) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's allocator";
  EXPECT_EXIT(AllocateInThreadAndReport(/*tune=*/false),
              ::testing::ExitedWithCode(4), "");
}

}  // namespace
}  // namespace enclavefs

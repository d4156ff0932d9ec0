#include "blockstore/malloc_tuning.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

namespace enclavefs {

int MallocArenas() {
  return static_cast<int>(std::max(2L, ::sysconf(_SC_NPROCESSORS_ONLN)));
}

void RecycleLargeBuffers() {
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  const bool arena_set = mallopt(M_ARENA_MAX, MallocArenas()) == 1;
  if (!mmap_set || !trim_set || !arena_set) {
    spdlog::warn("malloc refused the large-buffer settings; running without");
  }
}

}  // namespace enclavefs

#include "blockstore/malloc_tuning.h"

#include <malloc.h>

namespace enclavefs {

bool RecycleLargeBuffers() {
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  return mmap_set && trim_set;
}

}  // namespace enclavefs

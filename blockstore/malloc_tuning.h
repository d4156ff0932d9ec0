// Process-wide glibc malloc settings for programs that move blocks in large
// buffers: frames of up to several MiB and 64 KiB block values, allocated in
// one thread and freed in another.
//
// By default glibc serves such buffers with fresh mmaps and hands freed heap
// tops back to the kernel, so every frame is faulted in page by page again;
// in a VM a minor fault costs more than the copy that follows it. Measured
// on a cold 1 GiB read (docs/performance.md): the FUSE daemon took 74-94k
// faults and the host 54-97k; with these settings 9k and under 2.5k.
//
// Call once at the start of main, before threads start. The price is that
// freed memory stays in the process up to kTrimThreshold instead of being
// returned at once.
#pragma once

#include <cstddef>

namespace enclavefs {

// Chunks below this come from the heap and are reused (glibc's cap).
inline constexpr size_t kMmapThreshold = size_t{32} << 20;
// Free memory at the top of a heap is returned to the kernel above this.
inline constexpr size_t kTrimThreshold = size_t{128} << 20;

// Sets both thresholds (which also stops glibc from adjusting them). If glibc
// refuses either, logs a warning and the process runs with its defaults.
void RecycleLargeBuffers();

}  // namespace enclavefs

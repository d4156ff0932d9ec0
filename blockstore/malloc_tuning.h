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
// One arena for all threads. glibc gives each further arena a 64 MiB heap
// that it grows a page at a time and never advises for huge pages, so with
// hugetlb=1 (below) only the main heap gets them: after a 1 GiB write the
// daemon's two thread heaps held 113 MiB, none of it in huge pages, and the
// first write after starting the host and a mount still took 25k daemon and
// 33-40k host faults. With one arena both took under 700, and bench/run's
// seqwrite ran at 488-586 MiB/s against 398-450 with one arena per core
// (docs/performance.md). Without huge pages one arena had been slower for
// four cold readers (its lock); with them it no longer was.
//
// Transparent huge pages for malloc's heaps (glibc.malloc.hugetlb=1): the
// first touch of a heap then faults in 2 MiB at a time, not 4 KiB. The first
// 1 GiB write after starting the host and a mount took about 110k faults
// between them; with the setting half as many, and it ran 20 % faster
// (docs/performance.md). glibc reads the setting only from the environment
// at start-up, so a program that wants it runs itself again with it.
//
// Call ReexecWithHugePages, then RecycleLargeBuffers, once at the start of
// main, before threads start. The price is that freed memory stays in the
// process up to kTrimThreshold instead of being returned at once.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace enclavefs {

// Chunks below this come from the heap and are reused (glibc's cap).
inline constexpr size_t kMmapThreshold = size_t{32} << 20;
// Free memory at the top of a heap is returned to the kernel above this.
inline constexpr size_t kTrimThreshold = size_t{128} << 20;

// Arenas RecycleLargeBuffers allows.
inline constexpr int kMallocArenas = 1;

// Sets both thresholds (which also stops glibc from adjusting them) and the
// number of arenas. If glibc refuses any, logs a warning and the process runs
// with its defaults for it.
void RecycleLargeBuffers();

// GLIBC_TUNABLES `current` (may be null) with glibc.malloc.hugetlb=1 added;
// nullopt if it already sets glibc.malloc.hugetlb, to any value (an
// operator's choice stands, and the re-executed program stops there).
std::optional<std::string> TunablesWithHugePages(const char* current);

// Set (to 1) in the environment of the re-executed program, which removes it.
inline constexpr char kReexecMarker[] = "ENCLAVEFS_MALLOC_REEXEC";

// Runs the program's file again (found through /proc/self/exe) with `argv`
// and GLIBC_TUNABLES from TunablesWithHugePages, keeping the pid and name.
// Returns only when nothing is to be done (kReexecMarker set, or the setting
// already there) or the exec failed (logged; the program then runs without).
void ReexecWithHugePages(char** argv);

}  // namespace enclavefs

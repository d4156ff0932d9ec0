// RocksDB's CRC32C, computed by ISA-L.
//
// Debian's librocksdb is compiled for baseline x86-64 without SSE4.2, so
// every CRC32C it computes (blob record checksums at each flush, WAL
// records, SST blocks) runs a table-driven loop at about 1 GB/s. perf of the
// host during a 1 GiB write put 40 % of its CPU there (docs/performance.md).
// Intel's ISA-L (Debian's libisal) picks the fastest code for the CPU at run
// time (crc32 and carry-less multiply instructions on x86-64).
//
// The blockstore library links with LINKER:--wrap for the library's single
// CRC32C entry point, rocksdb::crc32c::Extend, so every call RocksDB makes
// to it comes here instead (blockstore/CMakeLists.txt). It is the same
// function, so stores keep their bytes: tests compare the two on random
// input, and RocksDbVolumes::Open refuses to open a store if
// CheckRocksDbCrc32c fails.
//
// Thread safety: all functions are pure and safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "blockstore/status.h"

namespace enclavefs {

// CRC32C of data[0, n) continued from `crc` (0 to start), as RocksDB now
// computes it, and as the library's own code does.
uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n);
uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n);

// Corruption if the two disagree on a few inputs: the replacement would then
// write checksums RocksDB's own code rejects.
Status CheckRocksDbCrc32c();

}  // namespace enclavefs

// RocksDB's CRC32C, computed with the CPU's crc32 instruction.
//
// Debian's librocksdb is compiled for baseline x86-64 without SSE4.2, so
// every CRC32C it computes (blob record checksums at each flush, WAL
// records, SST blocks) runs a table-driven loop at about 1 GB/s. perf of the
// host during a 1 GiB write put 40 % of its CPU there (docs/performance.md).
// No Debian 12 package offers a C or C++ CRC32C library.
//
// The blockstore library links with LINKER:--wrap for the library's single
// CRC32C entry point, rocksdb::crc32c::Extend, so every call RocksDB makes
// to it comes here instead (blockstore/CMakeLists.txt). It is the same
// function: a test compares the two on random input. On a CPU without
// SSE4.2 it calls the library's own.
//
// Thread safety: all functions are pure and safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>

namespace enclavefs {

// "sse4.2" when RocksDB's CRC32C uses the crc32 instruction, "librocksdb"
// when it uses the library's own code. RocksDbVolumes::Open logs it.
const char* RocksDbCrc32cImplementation();

// CRC32C of data[0, n) continued from `crc` (0 to start), as RocksDB now
// computes it, and as the library's own code does.
uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n);
uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n);

}  // namespace enclavefs

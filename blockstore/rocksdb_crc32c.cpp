#include "blockstore/rocksdb_crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

// The linker's names for rocksdb::crc32c::Extend(uint32_t, const char*,
// size_t) and for its replacement (LINKER:--wrap).
extern "C" {
uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n);
uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n);
}

namespace enclavefs {
namespace {

using ExtendFunction = uint32_t (*)(uint32_t, const char*, size_t);

#if defined(__x86_64__)
// One 8-byte crc32 per 3 cycles (its latency) is several GB/s, enough that
// interleaved streams would not pay for their extra code.
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc,
                                                       const char* data,
                                                       size_t n) {
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, data += 8) {
    uint64_t word;
    std::memcpy(&word, data, sizeof word);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++data) c32 = _mm_crc32_u8(c32, *data);
  return ~c32;
}

bool HasSse42() {
  __builtin_cpu_init();  // RocksDB may checksum before libgcc's constructor
  return __builtin_cpu_supports("sse4.2");
}
#endif

ExtendFunction Choose() {
#if defined(__x86_64__)
  if (HasSse42()) return ExtendSse42;
#endif
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm;
}

// A function-local static, because RocksDB may checksum during static
// initialization.
ExtendFunction Chosen() {
  static const ExtendFunction chosen = Choose();
  return chosen;
}

}  // namespace

const char* RocksDbCrc32cImplementation() {
  return Chosen() == __real__ZN7rocksdb6crc32c6ExtendEjPKcm ? "librocksdb"
                                                            : "sse4.2";
}

uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  return __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}

uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}

}  // namespace enclavefs

uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n) {
  return enclavefs::Chosen()(crc, data, n);
}

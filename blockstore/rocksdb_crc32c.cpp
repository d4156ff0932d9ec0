#include "blockstore/rocksdb_crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>
#include <string_view>

// The linker's names for rocksdb::crc32c::Extend(uint32_t, const char*,
// size_t) and for its replacement (LINKER:--wrap).
extern "C" {
uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n);
uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n) {
  return enclavefs::RocksDbCrc32cExtend(crc, data, n);
}
}

namespace enclavefs {

uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  // RocksDB passes and returns the finished (inverted) CRC; ISA-L works on
  // the register itself. ISA-L takes a non-const pointer but only reads.
  uint32_t reg = ~crc;
  auto* bytes = reinterpret_cast<unsigned char*>(const_cast<char*>(data));
  while (n > 0) {
    const int chunk = static_cast<int>(std::min<size_t>(n, INT_MAX));
    reg = crc32_iscsi(bytes, chunk, reg);
    bytes += chunk;
    n -= chunk;
  }
  return ~reg;
}

uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}

Status CheckRocksDbCrc32c() {
  constexpr std::string_view kInput =
      "123456789 and enough more to reach every length ISA-L's code treats "
      "apart: its folding loops take 64 bytes and more at a time.";
  for (size_t n = 0; n <= kInput.size(); ++n) {
    const uint32_t start = static_cast<uint32_t>(n * 0x9E3779B9u);
    if (RocksDbCrc32cExtend(start, kInput.data(), n) !=
        LibraryCrc32cExtend(start, kInput.data(), n)) {
      return Status::Corruption(
          "ISA-L's CRC32C disagrees with RocksDB's own; refusing to write "
          "checksums RocksDB would reject");
    }
  }
  return Status::Ok();
}

}  // namespace enclavefs

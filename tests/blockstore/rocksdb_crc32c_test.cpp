#include "blockstore/rocksdb_crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace enclavefs {
namespace {

TEST(RocksDbCrc32cTest, givenCheckString_whenChecksummed_thenStandardCrc32c) {
  // The CRC-32C check value (RFC 3720, appendix B.4 lists more).
  const std::string_view check = "123456789";
  EXPECT_EQ(RocksDbCrc32cExtend(0, check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(LibraryCrc32cExtend(0, check.data(), check.size()), 0xE3069283u);
  const std::vector<char> zeros(32, 0);
  EXPECT_EQ(RocksDbCrc32cExtend(0, zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(RocksDbCrc32cTest, givenRandomInput_whenChecksummed_thenSameAsLibrary) {
  std::mt19937_64 rng(7);
  std::vector<char> buffer(2048 + 8);
  for (char& c : buffer) c = static_cast<char>(rng());
  // Every length up to two cache lines and beyond at every alignment, and
  // continued from random CRCs, as RocksDB's Extend calls are.
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 2048; n += (n < 160 ? 1 : 61)) {
      const auto crc = static_cast<uint32_t>(rng());
      ASSERT_EQ(RocksDbCrc32cExtend(crc, buffer.data() + offset, n),
                LibraryCrc32cExtend(crc, buffer.data() + offset, n))
          << "offset " << offset << " length " << n;
    }
  }
}

TEST(RocksDbCrc32cTest, givenSplitInput_whenExtended_thenSameAsWhole) {
  const std::string data(100'003, 'x');
  const uint32_t whole = RocksDbCrc32cExtend(0, data.data(), data.size());
  for (size_t split : {size_t{1}, size_t{7}, size_t{4096}, size_t{65'537}}) {
    const uint32_t head = RocksDbCrc32cExtend(0, data.data(), split);
    EXPECT_EQ(
        RocksDbCrc32cExtend(head, data.data() + split, data.size() - split),
        whole)
        << split;
  }
}

}  // namespace
}  // namespace enclavefs

#include "blockstore/units.h"

#include <gtest/gtest.h>

namespace enclavefs {
namespace {

TEST(UnitsTest, givenSizesWithUnits_whenParsed_thenBinaryMultiples) {
  EXPECT_EQ(*ParseSize("65536"), 65536u);
  EXPECT_EQ(*ParseSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseSize("64KiB"), 64u << 10);
  EXPECT_EQ(*ParseSize("16mib"), 16u << 20);
  EXPECT_EQ(*ParseSize("1GB"), uint64_t{1} << 30);
  EXPECT_EQ(*ParseSize("2T"), uint64_t{2} << 40);
}

TEST(UnitsTest, givenMalformedOrZeroSize_whenParsed_thenInvalidArgument) {
  for (const char* text : {"", "0", "K", "12X", "1.5G", "-3",
                           "99999999999999999999", "16EiB", "17179869184T"}) {
    Result<uint64_t> parsed = ParseSize(text);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(UnitsTest, givenDurations_whenParsed_thenMilliseconds) {
  EXPECT_EQ(ParseDuration("0")->count(), 0);
  EXPECT_EQ(ParseDuration("500ms")->count(), 500);
  EXPECT_EQ(ParseDuration("5")->count(), 5000);
  EXPECT_EQ(ParseDuration("5s")->count(), 5000);
  EXPECT_EQ(ParseDuration("2m")->count(), 120000);
  EXPECT_FALSE(ParseDuration("5h").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
}

TEST(UnitsTest, givenByteCounts_whenHumanized_thenShortestUnit) {
  EXPECT_EQ(HumanSize(0), "0 B");
  EXPECT_EQ(HumanSize(1536), "1.5 KiB");
  EXPECT_EQ(HumanSize(64u << 20), "64 MiB");
}

}  // namespace
}  // namespace enclavefs

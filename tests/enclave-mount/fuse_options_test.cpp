#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "enclave-mount/fuse_ops.h"

namespace enclavefs {
namespace {

std::string OptionsFor(std::vector<std::string> extra, bool by_root) {
  FuseMountOptions options;
  options.volume = "v";
  options.extra_options = std::move(extra);
  return FuseOptionString(options, by_root);
}

TEST(FuseOptionStringTest, givenRootAloneMay_whenBuilt_thenNoModeChecks) {
  EXPECT_EQ(OptionsFor({}, true), "fsname=enclavefs:v,subtype=enclavefs");
  EXPECT_EQ(OptionsFor({"ro", "noatime"}, true),
            "fsname=enclavefs:v,subtype=enclavefs,ro,noatime");
}

TEST(FuseOptionStringTest, givenOthersMayEnter_whenBuilt_thenModeChecks) {
  EXPECT_EQ(OptionsFor({"allow_other"}, true),
            "default_permissions,fsname=enclavefs:v,subtype=enclavefs,"
            "allow_other");
  EXPECT_EQ(OptionsFor({"ro,allow_root"}, true),
            "default_permissions,fsname=enclavefs:v,subtype=enclavefs,"
            "ro,allow_root");
}

TEST(FuseOptionStringTest, givenMountedByNonRoot_whenBuilt_thenModeChecks) {
  EXPECT_EQ(OptionsFor({}, false),
            "default_permissions,fsname=enclavefs:v,subtype=enclavefs");
}

TEST(FuseOptionStringTest, givenLookalikeOption_whenBuilt_thenNotTakenForIt) {
  EXPECT_EQ(OptionsFor({"allow_others_x", "xallow_root"}, true),
            "fsname=enclavefs:v,subtype=enclavefs,allow_others_x,xallow_root");
}

}  // namespace
}  // namespace enclavefs

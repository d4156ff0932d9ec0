#include "enclave-mount/writeback.h"

#include <gtest/gtest.h>

namespace enclavefs {
namespace {

constexpr char kMountinfo[] =
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 22 0:39 / /tmp/a\\040b rw,nosuid shared:20 - fuse.enclavefs "
    "enclavefs:v rw,user_id=0\n"
    "41 22 0:40 / /mnt rw shared:21 - tmpfs tmpfs rw\n"
    "42 41 0:41 / /mnt rw shared:22 - fuse.enclavefs enclavefs:w rw\n";

TEST(MountDeviceTest, givenEscapedSpace_whenLookingUp_thenDeviceOfThatMount) {
  Result<std::string> device = MountDevice(kMountinfo, "/tmp/a b");
  ASSERT_TRUE(device.ok()) << device.status().ToString();
  EXPECT_EQ(*device, "0:39");
}

TEST(MountDeviceTest, givenStackedMounts_whenLookingUp_thenTopmostWins) {
  Result<std::string> device = MountDevice(kMountinfo, "/mnt");
  ASSERT_TRUE(device.ok()) << device.status().ToString();
  EXPECT_EQ(*device, "0:41");
}

TEST(MountDeviceTest, givenNoSuchMount_whenLookingUp_thenNotFound) {
  EXPECT_EQ(MountDevice(kMountinfo, "/tmp/a").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(MountDevice(kMountinfo, "/tmp/a\\040b").status().code(),
            StatusCode::kNotFound);
}

TEST(MountDeviceTest, givenTruncatedLine_whenLookingUp_thenCorruption) {
  EXPECT_EQ(MountDevice("22 1 254:0 /\n", "/").status().code(),
            StatusCode::kCorruption);
}

}  // namespace
}  // namespace enclavefs

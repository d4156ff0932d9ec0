// MountedVolumeTest: a gtest fixture holding a freshly formatted volume
// served by a real enclavefs-host and mounted with the real enclavefs
// command, for tests that exercise the mount through syscalls.
//
// Subclasses may override MountArguments() (extra `enclavefs mount`
// arguments). TearDown unmounts and checks the unmount succeeded; the
// E2eVolume destructor cleans up whatever a failed test left behind.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/enclave-mount/e2e/e2e_support.h"

namespace enclavefs::e2e {

class MountedVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(volume_.ok()) << volume_.setup_error();
    CommandResult mounted = volume_.Mount(MountArguments());
    ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  }

  void TearDown() override {
    if (!volume_.mounted()) return;
    CommandResult unmounted = volume_.Unmount();
    EXPECT_EQ(unmounted.exit_code, 0) << unmounted.output;
  }

  virtual std::vector<std::string> MountArguments() const { return {}; }

  // Unmounts and mounts again: later reads come from the host, not from
  // the kernel's or the daemon's caches.
  void Remount() {
    CommandResult unmounted = volume_.Unmount();
    ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
    CommandResult mounted = volume_.Mount(MountArguments());
    ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  }

  std::string P(const std::string& relative) const {
    return volume_.Path(relative);
  }

  E2eVolume volume_;
};

}  // namespace enclavefs::e2e

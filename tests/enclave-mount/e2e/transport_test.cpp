// How the kernel's FUSE requests reach the daemon: over io_uring when the
// kernel offers it (the fuse module's enable_uring is Y), else through
// /dev/fuse; through /dev/fuse with --no-io-uring, and when the daemon
// cannot create its rings (a seccomp filter). scripts/test.sh runs
// the e2e suite with enable_uring as the machine has it, then again with Y,
// so every other e2e test runs over both transports as well.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/enclave-mount/e2e/e2e_support.h"
#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

bool KernelOffersIoUring() {
  std::optional<std::string> value =
      ReadFile("/sys/module/fuse/parameters/enable_uring");
  return value && !value->empty() && (*value)[0] == 'Y';
}

// The count in the daemon's "FUSE over io_uring served N requests" line.
std::optional<long> ServedOverRings(const std::string& log) {
  const std::string marker = "FUSE over io_uring served ";
  const size_t at = log.find(marker);
  if (at == std::string::npos) return std::nullopt;
  return std::stol(log.substr(at + marker.size()));
}

class FuseTransportTest : public MountedVolumeTest {
 protected:
  // Files written, renamed, removed, listed and read back through the mount:
  // requests of most kinds, with their replies checked.
  void ExerciseMount() {
    ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
    constexpr int kFiles = 64;
    for (int i = 0; i < kFiles; ++i) {
      const std::string name = P("d/f" + std::to_string(i));
      ASSERT_TRUE(WriteFileSynced(name, PatternBytes(i, 1000 + 3000 * i)));
      ASSERT_EQ(chmod(name.c_str(), 0600), 0);
    }
    for (int i = 0; i < kFiles; i += 2) {
      ASSERT_EQ(std::rename(P("d/f" + std::to_string(i)).c_str(),
                            P("d/g" + std::to_string(i)).c_str()),
                0);
    }
    for (int i = 1; i < kFiles; i += 4) {
      ASSERT_EQ(unlink(P("d/f" + std::to_string(i)).c_str()), 0);
    }
    size_t listed = 0;
    for (const auto& entry : std::filesystem::directory_iterator(P("d"))) {
      (void)entry;
      ++listed;
    }
    EXPECT_EQ(listed, kFiles - kFiles / 4);
    for (int i = 0; i < kFiles; ++i) {
      const std::string name =
          P(std::string(i % 2 == 0 ? "d/g" : "d/f") + std::to_string(i));
      std::optional<std::string> data = ReadFile(name);
      if (i % 4 == 1) {
        EXPECT_FALSE(data.has_value()) << name;
        continue;
      }
      ASSERT_TRUE(data.has_value()) << name;
      EXPECT_EQ(*data, PatternBytes(i, 1000 + 3000 * i)) << name;
      struct stat st {};
      ASSERT_EQ(stat(name.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, 0600u) << name;
    }
  }

  // Runs the workload, checks it persisted across a remount, unmounts, and
  // returns the mount log of both mounts.
  std::string ExerciseAndUnmount() {
    ExerciseMount();
    Remount();
    std::optional<std::string> kept = ReadFile(P("d/g2"));
    EXPECT_EQ(kept.value_or(""), PatternBytes(2, 7000));
    CommandResult unmounted = volume_.Unmount();
    EXPECT_EQ(unmounted.exit_code, 0) << unmounted.output;
    return ReadFile(volume_.dir() + "/mount.log").value_or("");
  }
};

class FuseTransportNoRingsTest : public FuseTransportTest {
 protected:
  std::vector<std::string> MountArguments() const override {
    return {"--no-io-uring"};
  }
};

// The daemon's io_uring_setup fails, as under Docker's default seccomp
// profile. It must go on over /dev/fuse without accepting io_uring in its
// INIT reply: once accepted, the kernel holds every request until rings
// register, and the mount would hang.
class FuseTransportRingsDeniedTest : public FuseTransportTest {
 protected:
  FuseTransportRingsDeniedTest() {
    volume_.set_mount_wrapper({kDenyIoUringBinary});
  }
};

TEST_F(FuseTransportTest,
       givenKernelOffersIoUring_whenServing_thenRequestsGoThroughTheRings) {
  if (!KernelOffersIoUring())
    GTEST_SKIP() << "the fuse module's enable_uring is not Y";
  const std::string log = ExerciseAndUnmount();
  EXPECT_NE(log.find("mount: FUSE over io_uring, "), std::string::npos) << log;
  std::optional<long> served = ServedOverRings(log);
  ASSERT_TRUE(served.has_value()) << log;
  // Each of the 64 files alone took a create, writes and a chmod.
  EXPECT_GT(*served, 200) << log;
}

TEST_F(FuseTransportTest,
       givenKernelWithoutIoUring_whenServing_thenSaysSoAndUsesDevFuse) {
  if (KernelOffersIoUring())
    GTEST_SKIP() << "the fuse module's enable_uring is Y";
  const std::string log = ExerciseAndUnmount();
  EXPECT_NE(log.find("does not offer FUSE over io_uring"), std::string::npos)
      << log;
  EXPECT_FALSE(ServedOverRings(log).has_value()) << log;
}

TEST_F(FuseTransportNoRingsTest,
       givenNoIoUringFlag_whenServing_thenRequestsGoThroughDevFuse) {
  const std::string log = ExerciseAndUnmount();
  EXPECT_EQ(log.find("FUSE over io_uring"), std::string::npos) << log;
}

TEST_F(FuseTransportRingsDeniedTest,
       givenRingsCannotBeCreated_whenServing_thenFallsBackToDevFuse) {
  if (!KernelOffersIoUring())
    GTEST_SKIP() << "the fuse module's enable_uring is not Y";
  const std::string log = ExerciseAndUnmount();
  EXPECT_NE(log.find("cannot set up FUSE over io_uring"), std::string::npos)
      << log;
  EXPECT_NE(log.find("serving through /dev/fuse"), std::string::npos) << log;
  EXPECT_FALSE(ServedOverRings(log).has_value()) << log;
}

}  // namespace
}  // namespace enclavefs::e2e

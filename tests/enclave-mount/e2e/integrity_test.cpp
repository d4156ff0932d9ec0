// End-to-end: a malicious host. One flipped byte in one stored data block
// must make exactly the file owning it fail with EIO and fsck name it; a
// store rolled back to an older copy must be refused by a mount holding a
// newer anchor.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "enclave-mount/exit_codes.h"
#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

constexpr int kFiles = 6;
constexpr size_t kFileSize = 4 * 65536 + 1000;  // five data blocks each

using IntegrityTest = MountedVolumeTest;

std::string FileName(int i) { return "file-" + std::to_string(i); }

TEST_F(IntegrityTest,
       givenOneTamperedDataBlock_whenReading_thenOnlyItsFileFailsWithEio) {
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(WriteFileSynced(P(FileName(i)), PatternBytes(i, kFileSize)));
  }
  CommandResult unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  ASSERT_EQ(volume_.StopHost(), 0);
  CommandResult tampered = RunCommand(
      {kStoreTamperBinary, "--store", volume_.store(), "--volume", "vol"});
  ASSERT_EQ(tampered.exit_code, 0) << tampered.output;
  ASSERT_EQ(volume_.StartHost(), "");
  CommandResult mounted = volume_.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;

  std::vector<int> damaged;
  for (int i = 0; i < kFiles; ++i) {
    std::optional<std::string> data = ReadFile(P(FileName(i)));
    if (!data) {
      EXPECT_EQ(errno, EIO) << FileName(i);
      damaged.push_back(i);
    } else {
      EXPECT_EQ(*data, PatternBytes(i, kFileSize)) << FileName(i);
    }
  }
  ASSERT_EQ(damaged.size(), 1u);
  unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;

  CommandResult fsck = volume_.Enclavefs("fsck");
  EXPECT_NE(fsck.exit_code, 0) << fsck.output;
  for (int i = 0; i < kFiles; ++i) {
    const bool named = fsck.output.find("/" + FileName(i)) != std::string::npos;
    EXPECT_EQ(named, i == damaged[0]) << FileName(i) << "\n" << fsck.output;
  }
}

TEST_F(IntegrityTest,
       givenAnchoredVolume_whenHostRollsStoreBack_thenMountRefuses) {
  const std::string anchor = volume_.dir() + "/anchor";  // outside the store
  const std::vector<std::string> anchored = {"--anchor-file", anchor};
  CommandResult unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  CommandResult mounted = volume_.Mount(anchored);
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  ASSERT_TRUE(WriteFileSynced(P("old"), "first version"));
  unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;

  ASSERT_EQ(volume_.StopHost(), 0);
  const std::string saved = volume_.dir() + "/store-copy";
  CommandResult copied = RunCommand({"cp", "-a", volume_.store(), saved});
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  ASSERT_EQ(volume_.StartHost(), "");
  mounted = volume_.Mount(anchored);
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  ASSERT_TRUE(WriteFileSynced(P("new"), "second version"));
  unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;

  ASSERT_EQ(volume_.StopHost(), 0);
  ASSERT_EQ(RunCommand({"rm", "-rf", volume_.store()}).exit_code, 0);
  ASSERT_EQ(RunCommand({"mv", saved, volume_.store()}).exit_code, 0);
  ASSERT_EQ(volume_.StartHost(), "");

  mounted = volume_.Mount(anchored);
  EXPECT_EQ(mounted.exit_code, static_cast<int>(ExitCode::kRollback))
      << mounted.output;
  EXPECT_NE(mounted.output.find("rolled back"), std::string::npos)
      << mounted.output;
  EXPECT_FALSE(volume_.mounted());
  // Without the anchor nothing can tell: the old state mounts.
  mounted = volume_.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(P("old")), "first version");
  EXPECT_EQ(Errno(access(P("new").c_str(), F_OK)), ENOENT);
}

}  // namespace
}  // namespace enclavefs::e2e

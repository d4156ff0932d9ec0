// End-to-end: what was fsync'd survives unmount/remount and restarts of
// the host service, graceful (SIGTERM) or not (SIGKILL).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

class PersistenceTest : public MountedVolumeTest {
 protected:
  std::vector<std::string> MountArguments() const override {
    return {"--xattrs"};
  }
};

TEST_F(PersistenceTest,
       givenTree_whenUnmountedAndRemounted_thenAllOfItSurvives) {
  ASSERT_EQ(mkdir(P("docs").c_str(), 0700), 0);
  const std::string big = PatternBytes(10, 3 << 20);
  ASSERT_TRUE(WriteFileSynced(P("docs/big"), big));
  ASSERT_TRUE(WriteFileSynced(P("small"), "hello"));
  ASSERT_EQ(symlink("docs/big", P("link").c_str()), 0);
  ASSERT_EQ(setxattr(P("small").c_str(), "user.k", "v", 1, 0), 0);
  // Not fsync'd: a clean unmount commits it too.
  {
    UniqueFd fd(open(P("unsynced").c_str(), O_CREAT | O_WRONLY, 0640));
    ASSERT_EQ(write(fd.get(), "later", 5), 5);
  }
  Remount();
  EXPECT_EQ(ReadFile(P("docs/big")), big);
  EXPECT_EQ(ReadFile(P("small")), "hello");
  EXPECT_EQ(ReadFile(P("link")), big);
  EXPECT_EQ(ReadFile(P("unsynced")), "later");
  struct stat st {};
  ASSERT_EQ(stat(P("docs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  char value[4] = {};
  EXPECT_EQ(getxattr(P("small").c_str(), "user.k", value, sizeof(value)), 1);
  EXPECT_EQ(value[0], 'v');
}

// Restarts the host under a live mount: fsync'd data must survive, and the
// mount reconnects by itself (RemoteBlockStore re-opens the volume).
void RestartHostUnderMount(E2eVolume& volume, bool kill9) {
  const std::string before = PatternBytes(11, 500000);
  ASSERT_TRUE(WriteFileSynced(volume.Path("before"), before));
  const int stopped = volume.StopHost(kill9);
  if (!kill9) {
    EXPECT_EQ(stopped, 0);
  }
  ASSERT_EQ(volume.StartHost(), "");
  // Reads below may come from caches; this write+fsync must reach the new
  // host process.
  const std::string after = PatternBytes(12, 300000);
  ASSERT_TRUE(WriteFileSynced(volume.Path("after"), after))
      << std::strerror(errno);
  // Both files must now be on the host: kill the mount, then remount.
  ASSERT_TRUE(volume.CrashMount());
  CommandResult mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(volume.Path("before")), before);
  EXPECT_EQ(ReadFile(volume.Path("after")), after);
}

TEST_F(PersistenceTest,
       givenMount_whenHostStoppedAndRestarted_thenMountReconnects) {
  RestartHostUnderMount(volume_, /*kill9=*/false);
}

TEST_F(PersistenceTest,
       givenMount_whenHostKilledAndRestarted_thenSyncedDataSurvives) {
  RestartHostUnderMount(volume_, /*kill9=*/true);
}

// Free bytes as statfs reports them (from the host's count of the volume).
uint64_t FreeBytes(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Mounts `volume` again after a clean unmount and checks that each of
// `files` holds its bytes; the caller checks more, then UnmountAndFsck.
void RemountExpecting(E2eVolume& volume,
                      const std::map<std::string, std::string>& files) {
  CommandResult unmounted = volume.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  CommandResult mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  for (const auto& [name, bytes] : files) {
    EXPECT_EQ(ReadFile(volume.Path(name)), bytes) << name;
  }
}

void UnmountAndFsck(E2eVolume& volume) {
  CommandResult unmounted = volume.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  CommandResult fsck = volume.Enclavefs("fsck");
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
}

// A host killed while it holds write-behind uploads that skipped its WAL
// loses them. The mount must not resume its lease and commit a root over
// the missing blocks: its next fsync fails, and a new mount starts from the
// last durable root.
TEST(HostCrashTest, givenUnloggedUploads_whenHostKilled_thenMountFenced) {
  E2eVolume volume;
  ASSERT_TRUE(volume.ok()) << volume.setup_error();
  // Every buffered byte past 1 MiB goes to the host ahead of any commit.
  CommandResult mounted =
      volume.Mount({"--write-behind", "1MiB", "--dirty-limit", "1GiB",
                    "--commit-interval", "0"});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  const std::string before = PatternBytes(14, 200000);
  ASSERT_TRUE(WriteFileSynced(volume.Path("before"), before));
  {
    // close() writes the kernel's dirty pages to the daemon.
    UniqueFd fd(
        open(volume.Path("unsynced").c_str(), O_CREAT | O_WRONLY, 0600));
    ASSERT_TRUE(fd.ok());
    const std::string chunk = PatternBytes(15, 1 << 20);
    // Well under the host's 64 MiB memtable: a flush would make the uploads
    // durable and leave nothing to fence.
    for (int i = 0; i < 24; ++i) {
      ASSERT_EQ(write(fd.get(), chunk.data(), chunk.size()),
                static_cast<ssize_t>(chunk.size()));
    }
  }
  // Wait until the host has stored most of it: the uploads it will lose.
  constexpr char kReceived[] = "\"bytes_received\": ";
  CommandResult stats;
  uint64_t received = 0;
  for (int i = 0; i < 200 && received < (16ull << 20); ++i) {
    if (i > 0) usleep(50000);
    stats = RunCommand({kHostBinary, "volume", "stats", "vol", "--store",
                        volume.store(), "--json"});
    const size_t at = stats.output.find(kReceived);
    if (at != std::string::npos) {
      received = std::stoull(stats.output.substr(at + sizeof(kReceived) - 1));
    }
  }
  ASSERT_GE(received, 16ull << 20) << stats.output;
  ASSERT_EQ(volume.StopHost(/*kill9=*/true), -1);
  ASSERT_EQ(volume.StartHost(), "");

  const std::string after = PatternBytes(16, 100000);
  EXPECT_FALSE(WriteFileSynced(volume.Path("after"), after));
  EXPECT_EQ(errno, EIO);

  // The unmount succeeds, and says that the final commit did not.
  CommandResult unmounted = volume.Unmount();
  EXPECT_EQ(unmounted.exit_code, 1) << unmounted.output;
  EXPECT_NE(unmounted.output.find("but the final commit failed (Fenced"),
            std::string::npos)
      << unmounted.output;
  EXPECT_FALSE(volume.mounted());
  mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(volume.Path("before")), before);
  UnmountAndFsck(volume);
}

// Filled past its quota, a volume fails the fsync with ENOSPC. Deleting the
// file that did not fit is never refused, its room comes back at the next
// commit, and the volume takes writes again with nothing lost.
TEST(QuotaTest, givenVolumeFilledPastQuota_whenFileDeleted_thenRoomComesBack) {
  constexpr size_t kMiB = 1u << 20;
  E2eVolume volume("48MiB");
  ASSERT_TRUE(volume.ok()) << volume.setup_error();
  CommandResult mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  const std::string keep = PatternBytes(21, 4 * kMiB);
  ASSERT_TRUE(WriteFileSynced(volume.Path("keep"), keep));

  EXPECT_FALSE(
      WriteFileSynced(volume.Path("big"), PatternBytes(22, 256 * kMiB)));
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  ASSERT_EQ(unlink(volume.Path("big").c_str()), 0) << std::strerror(errno);
  // The delete commits as soon as it frees blocks; a minute is far beyond.
  for (int i = 0; i < 600 && FreeBytes(volume.Path("")) < 40 * kMiB; ++i) {
    usleep(100'000);
  }
  EXPECT_GE(FreeBytes(volume.Path("")), 40 * kMiB);
  const std::string again = PatternBytes(23, 32 * kMiB);
  EXPECT_TRUE(WriteFileSynced(volume.Path("again"), again))
      << std::strerror(errno);

  RemountExpecting(volume, {{"keep", keep}, {"again", again}});
  EXPECT_EQ(access(volume.Path("big").c_str(), F_OK), -1);
  UnmountAndFsck(volume);
}

// A file that overran the quota stays buffered in the mount; deleting
// another file makes room for it, and the next fsync commits both.
TEST(QuotaTest,
     givenBufferedFileOverQuota_whenOtherFileDeleted_thenFsyncWorks) {
  constexpr size_t kMiB = 1u << 20;
  // 52 MiB of "part" overrun the quota by 20 MiB; whatever of it the mount
  // buffers (all of it at most, under the 56 MiB a commit at the quota
  // carries in one batch) fits once "old" is gone.
  E2eVolume volume("96MiB");
  ASSERT_TRUE(volume.ok()) << volume.setup_error();
  CommandResult mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  ASSERT_TRUE(WriteFileSynced(volume.Path("old"), PatternBytes(24, 64 * kMiB)));
  EXPECT_FALSE(
      WriteFileSynced(volume.Path("part"), PatternBytes(25, 52 * kMiB)));
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);

  ASSERT_EQ(unlink(volume.Path("old").c_str()), 0) << std::strerror(errno);
  const std::string small = PatternBytes(26, 100000);
  EXPECT_TRUE(WriteFileSynced(volume.Path("small"), small))
      << std::strerror(errno);
  RemountExpecting(volume, {{"small", small}});
  EXPECT_EQ(access(volume.Path("part").c_str(), F_OK), 0);
  UnmountAndFsck(volume);
}

// A host that is gone fails writes with EIO once a commit has failed,
// instead of retrying (30 s each) in every write; once the host is back the
// mount carries on. Takes about a minute: the first commit tries for 30 s.
TEST(HostCrashTest,
     givenHostGone_whenWritingMuch_thenEioAndResumeAfterRestart) {
  E2eVolume volume;
  ASSERT_TRUE(volume.ok()) << volume.setup_error();
  CommandResult mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  const std::string kept = PatternBytes(27, 100000);
  ASSERT_TRUE(WriteFileSynced(volume.Path("kept"), kept));
  ASSERT_EQ(volume.StopHost(/*kill9=*/true), -1);

  // Past the dirty limit and its headroom (112 MiB), where every write
  // used to run a commit of its own.
  EXPECT_FALSE(
      WriteFileSynced(volume.Path("lost"), PatternBytes(28, 192u << 20)));
  EXPECT_EQ(errno, EIO) << std::strerror(errno);

  // Writes resume once a commit lands: the timer tries every 5 s.
  ASSERT_EQ(volume.StartHost(), "");
  const std::string after = PatternBytes(29, 100000);
  bool written = false;
  for (int i = 0; i < 60 && !written; ++i) {
    written = WriteFileSynced(volume.Path("after"), after);
    if (!written) sleep(1);
  }
  EXPECT_TRUE(written) << std::strerror(errno);
  RemountExpecting(volume, {{"kept", kept}, {"after", after}});
  UnmountAndFsck(volume);
}

// The daemon runs in /, so the mount command resolves a relative socket
// path before it starts, as it does key files.
TEST(MountCommandTest,
     givenRelativeUnixSocket_whenMounted_thenDataReachesHost) {
  E2eVolume volume;
  ASSERT_TRUE(volume.ok()) << volume.setup_error();
  CommandResult mounted = volume.Mount({}, "unix:host.sock");
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  const std::string data = PatternBytes(17, 100000);
  ASSERT_TRUE(WriteFileSynced(volume.Path("f"), data));
  CommandResult unmounted = volume.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  mounted = volume.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(volume.Path("f")), data);
  unmounted = volume.Unmount();
  EXPECT_EQ(unmounted.exit_code, 0) << unmounted.output;
}

TEST_F(PersistenceTest,
       givenUnmountedVolume_whenHostKilled_thenRemountSeesData) {
  const std::string data = PatternBytes(13, 1 << 20);
  ASSERT_TRUE(WriteFileSynced(P("f"), data));
  CommandResult unmounted = volume_.Unmount();
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
  volume_.StopHost(/*kill9=*/true);
  ASSERT_EQ(volume_.StartHost(), "");
  CommandResult mounted = volume_.Mount();
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_EQ(ReadFile(P("f")), data);
}

}  // namespace
}  // namespace enclavefs::e2e

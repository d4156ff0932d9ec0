// End-to-end: real programs on a mount: fio with data verification, tar
// round trips, git and sqlite3.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

using ToolsTest = MountedVolumeTest;

CommandResult Fio(const std::string& directory, const std::string& rw,
                  const std::string& bs) {
  return RunCommand({"fio", "--name=verify", "--directory=" + directory,
                     "--size=64m", "--bs=" + bs, "--rw=" + rw,
                     "--verify=crc32c", "--verify_fatal=1", "--ioengine=psync",
                     "--direct=0"});
}

TEST_F(ToolsTest, givenFioRandomWrites_whenVerifyingCrc32c_thenAllBlocksMatch) {
  CommandResult fio = Fio(P(""), "randwrite", "4k");
  EXPECT_EQ(fio.exit_code, 0) << fio.output;
  EXPECT_NE(fio.output.find("err= 0"), std::string::npos) << fio.output;
}

TEST_F(ToolsTest,
       givenFioSequentialWrites_whenVerifyingCrc32c_thenAllBlocksMatch) {
  CommandResult fio = Fio(P(""), "write", "1m");
  EXPECT_EQ(fio.exit_code, 0) << fio.output;
  EXPECT_NE(fio.output.find("err= 0"), std::string::npos) << fio.output;
}

TEST_F(ToolsTest,
       givenGeneratedTree_whenTarExtractedIntoMount_thenDiffAndCompareAgree) {
  const std::string src = volume_.dir() + "/src";
  // Nested directories, files from empty to a few blocks, a symlink, a
  // hard link and odd modes.
  CommandResult made = Shell(
      "set -e; mkdir -p src/a/b/c src/empty; i=0;"
      "while [ $i -lt 120 ]; do"
      "  head -c $(( (i * 7919) % 200000 )) /dev/urandom > src/a/f$i;"
      "  i=$((i + 1));"
      "done;"
      "echo deep > src/a/b/c/deep; ln -s a/b/c/deep src/link;"
      "ln src/a/f5 src/hard; chmod 0600 src/a/f7; chmod 0750 src/a/b;"
      "touch -d '2001-02-03 04:05:06' src/a/f9;"
      "tar -cf src.tar src",
      volume_.dir());
  ASSERT_EQ(made.exit_code, 0) << made.output;
  ASSERT_EQ(mkdir(P("x").c_str(), 0755), 0);
  CommandResult extracted =
      RunCommand({"tar", "-xf", volume_.dir() + "/src.tar", "-C", P("x")});
  ASSERT_EQ(extracted.exit_code, 0) << extracted.output;
  CommandResult diff =
      RunCommand({"diff", "-r", "--no-dereference", src, P("x/src")});
  EXPECT_EQ(diff.exit_code, 0) << diff.output;
  CommandResult compare = RunCommand(
      {"tar", "--compare", "-f", volume_.dir() + "/src.tar", "-C", P("x")});
  EXPECT_EQ(compare.exit_code, 0) << compare.output;
  Remount();
  compare = RunCommand(
      {"tar", "--compare", "-f", volume_.dir() + "/src.tar", "-C", P("x")});
  EXPECT_EQ(compare.exit_code, 0) << compare.output;
}

// Parameter: mounted with --xattrs.
class CpTest : public MountedVolumeTest,
               public ::testing::WithParamInterface<bool> {
 protected:
  std::vector<std::string> MountArguments() const override {
    if (GetParam()) return {"--xattrs"};
    return {};
  }
};

TEST_P(CpTest, givenFilesWithModes_whenCpDashA_thenModesAndTimesAreKept) {
  // cp -a sets modes through a POSIX ACL xattr first and falls back to chmod
  // only when the filesystem refuses ACLs (or all xattrs).
  CommandResult made = Shell(
      "set -e; mkdir -p src/d; echo a > src/f644; echo b > src/f600;"
      "echo c > src/d/f755; chmod 0644 src/f644; chmod 0600 src/f600;"
      "chmod 0755 src/d/f755; chmod 0750 src/d;"
      "touch -d '2001-02-03 04:05:06' src/f644",
      volume_.dir());
  ASSERT_EQ(made.exit_code, 0) << made.output;
  CommandResult copied =
      RunCommand({"cp", "-a", volume_.dir() + "/src", P("copy")});
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  const std::string list = "cd \"$0\" && find . -printf '%p %m %T@\\n' | sort";
  CommandResult expected =
      RunCommand({"sh", "-c", list, volume_.dir() + "/src"});
  Remount();
  CommandResult actual = RunCommand({"sh", "-c", list, P("copy")});
  ASSERT_EQ(expected.exit_code, 0) << expected.output;
  ASSERT_EQ(actual.exit_code, 0) << actual.output;
  EXPECT_NE(expected.output.find("./f600 600 "), std::string::npos)
      << expected.output;
  EXPECT_EQ(actual.output, expected.output);
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutXattrs, CpTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Xattrs" : "NoXattrs";
                         });

TEST_F(ToolsTest, givenGitRepository_whenCommittingInMount_thenGitFsckIsClean) {
  const std::string repo = P("repo");
  ASSERT_EQ(mkdir(repo.c_str(), 0755), 0);
  CommandResult git = Shell(
      "set -e; export HOME=\"$PWD\" GIT_CONFIG_NOSYSTEM=1;"
      "git init -q -b main .;"
      "git config user.name e2e; git config user.email e2e@example.invalid;"
      "mkdir src; i=0;"
      "while [ $i -lt 50 ]; do echo \"line $i\" > src/file$i.txt; i=$((i+1)); "
      "done;"
      "git add -A; git commit -q -m first;"
      "echo changed >> src/file3.txt; git mv src/file4.txt src/renamed.txt;"
      "git commit -q -am second; git gc -q",
      repo);
  ASSERT_EQ(git.exit_code, 0) << git.output;
  Remount();
  CommandResult fsck = Shell("HOME=\"$PWD\" git fsck --full --strict", repo);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
  CommandResult log = Shell("HOME=\"$PWD\" git rev-list --count HEAD", repo);
  EXPECT_EQ(log.output, "2\n");
  CommandResult status = Shell("HOME=\"$PWD\" git status --porcelain", repo);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(status.output, "");
}

TEST_F(
    ToolsTest,
    givenSqliteDatabase_whenInsertingInTransaction_thenCountAndIntegrityHold) {
  const std::string db = P("test.db");
  CommandResult created = RunCommand(
      {"sqlite3", db,
       "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);"
       "BEGIN;"
       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
       "WHERE i < 1000) INSERT INTO t(body) SELECT hex(randomblob(64)) FROM n;"
       "COMMIT;"
       "SELECT count(*) FROM t;"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_EQ(created.output, "1000\n");
  Remount();
  CommandResult checked = RunCommand(
      {"sqlite3", db, "PRAGMA integrity_check; SELECT count(*) FROM t;"});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output, "ok\n1000\n");
}

}  // namespace
}  // namespace enclavefs::e2e

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "enclave-mount/commands.h"
#include "enclave-mount/mount.h"
#include "enclave-mount/volume_access.h"

namespace enclavefs {
namespace {

ParsedCommandLine Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "enclavefs");
  return ParseCommandLine(args);
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/enclavefs-cli-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }

 private:
  std::string path_;
};

TEST(CliParseTest, givenMountWithEveryOption_whenParsed_thenAllFieldsSet) {
  ParsedCommandLine parsed = Parse({"mount",
                                    "--host",
                                    "unix:/tmp/h.sock",
                                    "--volume",
                                    "data",
                                    "/mnt/data",
                                    "--key-file",
                                    "/keys/k",
                                    "--cache-size",
                                    "128MiB",
                                    "--commit-interval",
                                    "2s",
                                    "--foreground",
                                    "-o",
                                    "allow_other",
                                    "--anchor-file",
                                    "/trusted/anchor",
                                    "--expect-generation",
                                    "42",
                                    "--takeover",
                                    "--writeback-share",
                                    "30",
                                    "--no-block-fill",
                                    "--log-file",
                                    "/var/log/e.log"});
  ASSERT_TRUE(parsed.options) << parsed.output;
  const CliOptions& o = *parsed.options;
  EXPECT_EQ(o.command, Command::kMount);
  EXPECT_EQ(o.target.host, "unix:/tmp/h.sock");
  EXPECT_EQ(o.target.volume, "data");
  EXPECT_EQ(o.mountpoint, "/mnt/data");
  EXPECT_EQ(o.key.key_file, "/keys/k");
  EXPECT_EQ(o.cache_size, "128MiB");
  EXPECT_EQ(o.commit_interval, "2s");
  EXPECT_TRUE(o.foreground);
  EXPECT_EQ(o.fuse_options, std::vector<std::string>{"allow_other"});
  EXPECT_EQ(o.anchor_file, "/trusted/anchor");
  EXPECT_EQ(o.expect_generation, 42u);
  EXPECT_TRUE(o.takeover);
  EXPECT_EQ(o.writeback_share, 30u);
  EXPECT_TRUE(o.no_block_fill);
  EXPECT_EQ(o.log_file, "/var/log/e.log");
}

TEST(CliParseTest, givenWritebackShareOutOfRange_whenParsed_thenUsageError) {
  for (const char* share : {"0", "101", "half"}) {
    ParsedCommandLine parsed =
        Parse({"mount", "--volume", "v", "/mnt/v", "--key-file", "k",
               "--writeback-share", share});
    EXPECT_FALSE(parsed.options) << share;
    EXPECT_EQ(parsed.exit_code, 2) << share;
    EXPECT_NE(parsed.output.find("--writeback-share"), std::string::npos)
        << parsed.output;
  }
}

TEST(CliParseTest, givenNoHost_whenParsed_thenNitroParentVsockDefault) {
  ParsedCommandLine parsed =
      Parse({"info", "--volume", "v", "--key-file", "k"});
  ASSERT_TRUE(parsed.options) << parsed.output;
  EXPECT_EQ(parsed.options->target.host, "vsock:3:7000");
  EXPECT_FALSE(parsed.options->expect_generation);
}

TEST(CliParseTest, givenKeySubcommands_whenParsed_thenCommandAndSlot) {
  ParsedCommandLine removed = Parse({"key", "remove", "--volume", "v", "--slot",
                                     "3", "--passphrase-file", "p"});
  ASSERT_TRUE(removed.options) << removed.output;
  EXPECT_EQ(removed.options->command, Command::kKeyRemove);
  EXPECT_EQ(removed.options->slot, 3);
  ParsedCommandLine added = Parse({"key", "add", "--volume", "v", "--key-file",
                                   "k", "--new-passphrase-file", "p"});
  ASSERT_TRUE(added.options) << added.output;
  EXPECT_EQ(added.options->command, Command::kKeyAdd);
  EXPECT_EQ(added.options->new_key.passphrase_file, "p");
  ParsedCommandLine passwd =
      Parse({"passwd", "--volume", "v", "--new-key-command", "cat k"});
  ASSERT_TRUE(passwd.options) << passwd.output;
  EXPECT_EQ(passwd.options->command, Command::kPasswd);
  EXPECT_FALSE(passwd.options->slot);
  EXPECT_EQ(passwd.options->new_key.key_command, "cat k");
}

TEST(CliParseTest, givenFsckRepairAndFormatOptions_whenParsed_thenSet) {
  ParsedCommandLine fsck =
      Parse({"fsck", "--volume", "v", "--key-file", "k", "--repair"});
  ASSERT_TRUE(fsck.options);
  EXPECT_EQ(fsck.options->command, Command::kFsck);
  EXPECT_TRUE(fsck.options->repair);
  ParsedCommandLine format =
      Parse({"format", "--volume", "v", "--key-file", "k", "--cipher",
             "xchacha20-poly1305", "--block-size", "4KiB"});
  ASSERT_TRUE(format.options) << format.output;
  EXPECT_EQ(format.options->cipher, "xchacha20-poly1305");
  EXPECT_EQ(format.options->block_size, "4KiB");
}

TEST(CliParseTest,
     givenBadCommandLines_whenParsed_thenUsageExitCodeAndMessage) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                             // no subcommand
      {"frobnicate"},                                 // unknown
      {"info", "--key-file", "k"},                    // --volume missing
      {"mount", "--volume", "v", "--key-file", "k"},  // MOUNTPOINT missing
      {"info", "--volume", "v", "--key-file", "k", "--passphrase-file",
       "p"},  // two keys
      {"mount", "--volume", "v", "m", "--anchor-file", "a", "--anchor-command",
       "c"},
      {"format", "--volume", "v", "--cipher", "rot13"},
      {"key", "remove", "--volume", "v"},                 // --slot missing
      {"key", "remove", "--volume", "v", "--slot", "8"},  // out of range
      {"mount", "--volume", "v", "m", "--expect-generation", "many"},
  };
  for (const auto& args : bad) {
    ParsedCommandLine parsed = Parse(args);
    EXPECT_FALSE(parsed.options) << ::testing::PrintToString(args);
    EXPECT_EQ(parsed.exit_code, 2) << ::testing::PrintToString(args);
    EXPECT_FALSE(parsed.output.empty()) << ::testing::PrintToString(args);
  }
}

TEST(CliParseTest, givenHelp_whenParsed_thenExitZeroWithSubcommandList) {
  ParsedCommandLine parsed = Parse({"--help"});
  EXPECT_FALSE(parsed.options);
  EXPECT_EQ(parsed.exit_code, 0);
  for (const char* name :
       {"format", "mount", "unmount", "fsck", "info", "key", "passwd"}) {
    EXPECT_NE(parsed.output.find(name), std::string::npos) << name;
  }
}

TEST(KeySourceTest,
     givenPassphraseFileWithNewline_whenResolved_thenNewlineDropped) {
  TempDir dir;
  KeyOptions options;
  options.passphrase_file = dir.Write("p", "correct horse\n");
  KeySource source;
  ASSERT_TRUE(ResolveKeySource(options, {}, &source).ok());
  EXPECT_EQ(source.kind, KeySource::Kind::kPassphrase);
  EXPECT_EQ(source.value, "correct horse");
}

TEST(KeySourceTest,
     givenEmptyOrMissingPassphraseFile_whenResolved_thenUsageError) {
  TempDir dir;
  KeyOptions options;
  options.passphrase_file = dir.Write("empty", "\n");
  KeySource source;
  EXPECT_EQ(ResolveKeySource(options, {}, &source).code, ExitCode::kUsage);
  options.passphrase_file = "/nonexistent/enclavefs/p";
  EXPECT_EQ(ResolveKeySource(options, {}, &source).code, ExitCode::kUsage);
}

TEST(KeySourceTest, givenRelativeKeyFile_whenResolved_thenAbsolutePath) {
  KeyOptions options;
  options.key_file = "keys/volume.key";
  KeySource source;
  ASSERT_TRUE(ResolveKeySource(options, {}, &source).ok());
  EXPECT_EQ(source.kind, KeySource::Kind::kKeyFile);
  EXPECT_EQ(source.value,
            (std::filesystem::current_path() / "keys/volume.key").string());
}

TEST(KeySourceTest, givenNoKeyAndNoTerminal_whenResolved_thenNamesTheOptions) {
  KeySource source;
  Outcome outcome = ResolveKeySource(KeyOptions{}, {}, &source);
  EXPECT_EQ(outcome.code, ExitCode::kUsage);
  EXPECT_EQ(outcome.message,
            "no key given: use --key-file, --passphrase-file or --key-command");
  Outcome new_key =
      ResolveKeySource(KeyOptions{}, {Prompt::kNone, "New", "new-"}, &source);
  EXPECT_NE(new_key.message.find("--new-key-file"), std::string::npos);
}

TEST(RunFilesTest, givenMountpoints_whenEscaped_thenDistinctFileNames) {
  EXPECT_EQ(EscapePath("/tmp/x/mnt"), "-tmp-x-mnt");
  EXPECT_NE(EscapePath("/a-b"), EscapePath("/a/b"));
  EXPECT_EQ(EscapePath("/a b"), "-a%20b");
  EXPECT_EQ(PidFilePath("/run/enclavefs", "/mnt/data"),
            "/run/enclavefs/mount-mnt-data.pid");
  EXPECT_EQ(DefaultLogPath("/run/enclavefs", "data"),
            "/run/enclavefs/data.log");
}

TEST(RunFilesTest, givenForkedDaemon_whenKilledButNotReaped_thenNotAlive) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  EXPECT_TRUE(DaemonAlive(child));
  ASSERT_EQ(kill(child, SIGKILL), 0);
  siginfo_t info{};
  // WNOWAIT leaves the exited child a zombie, which kill(pid, 0) still finds.
  ASSERT_EQ(waitid(P_PID, child, &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(kill(child, 0), 0);
  EXPECT_FALSE(DaemonAlive(child));
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  EXPECT_FALSE(DaemonAlive(child));
}

TEST(RunFilesTest, givenRunDirEnvironment_whenRunDirectory_thenItWins) {
  setenv("ENCLAVEFS_RUN_DIR", "/tmp/enclavefs-custom-run", 1);
  EXPECT_EQ(RunDirectory(), "/tmp/enclavefs-custom-run");
  unsetenv("ENCLAVEFS_RUN_DIR");
  EXPECT_NE(RunDirectory(), "/tmp/enclavefs-custom-run");
}

}  // namespace
}  // namespace enclavefs

// The enclavefs command line: parsing (CLI11) into CliOptions, and running
// the chosen subcommand. Parsing is separate from running so tests can check
// the command line without a host.
//
//   enclavefs format   --host A --volume V [--cipher C] [--block-size N]
//   KEYOPTS enclavefs mount    --host A --volume V MOUNTPOINT KEYOPTS [...]
//   enclavefs unmount  MOUNTPOINT [--timeout T]
//   enclavefs fsck     --host A --volume V KEYOPTS [--repair]
//   enclavefs info     --host A --volume V KEYOPTS
//   enclavefs key add|remove|list, enclavefs passwd
//
// docs/usage.md ("Command reference") is the user documentation; exit codes
// are in exit_codes.h. No exception escapes RunCommandLine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enclave-mount/exit_codes.h"
#include "enclave-mount/volume_access.h"

namespace enclavefs {

enum class Command {
  kFormat,
  kMount,
  kUnmount,
  kFsck,
  kInfo,
  kKeyAdd,
  kKeyRemove,
  kKeyList,
  kPasswd,
};

struct CliOptions {
  Command command = Command::kInfo;
  VolumeTarget target;
  KeyOptions key;
  // format
  std::string cipher = "aes-256-gcm";
  std::string block_size = "64KiB";
  // mount / unmount
  std::string mountpoint;
  std::string cache_size = "auto";
  std::string dirty_limit = "64MiB";
  std::string write_behind = "32MiB";
  std::string commit_interval = "5s";
  bool foreground = false;
  bool xattrs = false;
  unsigned writeback_share = 50;  // percent
  bool no_block_fill = false;
  bool no_io_uring = false;
  std::vector<std::string> fuse_options;  // each -o value
  std::string anchor_file;
  std::string anchor_command;
  std::optional<uint64_t> expect_generation;
  bool takeover = false;
  std::string log_file;  // default <run dir>/<volume>.log
  std::string unmount_timeout = "60s";
  // fsck
  bool repair = false;
  // key add / passwd: the new key; key remove / passwd: the slot
  KeyOptions new_key;
  std::optional<int> slot;
};

struct ParsedCommandLine {
  std::optional<CliOptions> options;  // nullopt: nothing to run
  int exit_code = 0;                  // when options is nullopt
  std::string output;                 // help or error text to print
};

// Parses argv (args[0] is the program name). --help gives exit code 0 and
// the help text; a parse error gives exit code 2 and the message.
ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args);

// Runs a parsed command; returns the process exit code. Errors are printed
// as one line "enclavefs: <cause>" on stderr.
int RunCommand(const CliOptions& options);

// ParseCommandLine + RunCommand, printing parse output; never throws.
int RunCommandLine(int argc, char** argv);

// Shared by the subcommand implementations: prints "enclavefs: <message>"
// for a failure and returns its exit code.
int Report(const Outcome& outcome);

// Subcommands, in admin_commands.cpp, fsck_command.cpp and mount.cpp.
int RunFormat(const CliOptions& options);
int RunInfo(const CliOptions& options);
int RunKeyList(const CliOptions& options);
int RunKeyAdd(const CliOptions& options);
int RunKeyRemove(const CliOptions& options);
int RunPasswd(const CliOptions& options);
int RunFsck(const CliOptions& options);
int RunMount(const CliOptions& options);
int RunUnmount(const CliOptions& options);

}  // namespace enclavefs

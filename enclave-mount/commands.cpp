#include "enclave-mount/commands.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <sstream>

namespace enclavefs {
namespace {

void AddTargetOptions(CLI::App& command, VolumeTarget& target) {
  command
      .add_option("--host", target.host,
                  "host service address: vsock:CID:PORT, unix:PATH or "
                  "tcp:HOST:PORT")
      ->capture_default_str();
  command.add_option("--volume", target.volume, "volume name")->required();
}

// --passphrase-file / --key-file / --key-command, or with prefix "new-" the
// key that key add and passwd install.
void AddKeyOptions(CLI::App& command, KeyOptions& key,
                   const std::string& prefix, const std::string& what) {
  CLI::Option* passphrase =
      command.add_option("--" + prefix + "passphrase-file", key.passphrase_file,
                         "file holding the " + what + " passphrase");
  CLI::Option* file = command.add_option(
      "--" + prefix + "key-file", key.key_file,
      "file holding the " + what + " 32-byte key (raw or 64 hex digits)");
  CLI::Option* cmd =
      command.add_option("--" + prefix + "key-command", key.key_command,
                         "shell command printing the " + what + " key");
  passphrase->excludes(file)->excludes(cmd);
  file->excludes(cmd);
}

// Numbers CLI11 cannot store in a std::optional, and the options that tell
// whether they were given.
struct OptionalNumbers {
  uint64_t generation = 0;
  int slot = 0;
  CLI::Option* generation_option = nullptr;
  std::vector<CLI::Option*> slot_options;
};

struct Subcommands {
  CLI::App* format;
  CLI::App* mount;
  CLI::App* unmount;
  CLI::App* fsck;
  CLI::App* info;
  CLI::App* key_add;
  CLI::App* key_remove;
  CLI::App* key_list;
  CLI::App* passwd;
};

Subcommands Define(CLI::App& app, CliOptions& o, OptionalNumbers& n) {
  Subcommands s{};
  app.require_subcommand(1);

  s.format =
      app.add_subcommand("format", "create the filesystem on an empty volume");
  AddTargetOptions(*s.format, o.target);
  s.format->add_option("--cipher", o.cipher, "block cipher")
      ->check(CLI::IsMember({"aes-256-gcm", "xchacha20-poly1305"}))
      ->capture_default_str();
  s.format
      ->add_option("--block-size", o.block_size,
                   "file data block size, 4KiB..1MiB")
      ->capture_default_str();
  AddKeyOptions(*s.format, o.key, "", "new volume's");

  s.mount = app.add_subcommand("mount", "mount a volume");
  AddTargetOptions(*s.mount, o.target);
  s.mount->add_option("MOUNTPOINT", o.mountpoint, "directory to mount on")
      ->required();
  AddKeyOptions(*s.mount, o.key, "", "volume's");
  s.mount
      ->add_option("--cache-size", o.cache_size,
                   "decrypted block cache size (auto: 1/8 of RAM, 64MiB..1GiB)")
      ->capture_default_str();
  s.mount
      ->add_option("--dirty-limit", o.dirty_limit,
                   "buffered changes that trigger a commit (memory they may "
                   "take)")
      ->capture_default_str();
  s.mount
      ->add_option("--write-behind", o.write_behind,
                   "buffered data past which blocks are stored ahead of the "
                   "commit (0: off)")
      ->capture_default_str();
  s.mount
      ->add_option("--commit-interval", o.commit_interval,
                   "commit buffered changes this often (0: only on fsync "
                   "and when the buffer fills)")
      ->capture_default_str();
  s.mount->add_flag("--foreground,-f", o.foreground,
                    "stay attached; log to stderr");
  s.mount->add_flag("--xattrs", o.xattrs,
                    "support extended attributes (costs every write(2) an "
                    "extra FUSE round trip; see docs/usage.md)");
  s.mount
      ->add_option("--writeback-share", o.writeback_share,
                   "percent of the kernel's dirty page limit the mount's page "
                   "cache may hold (kernel default for FUSE: 1)")
      ->check(CLI::Range(1u, 100u))
      ->capture_default_str();
  s.mount->add_flag("--no-block-fill", o.no_block_fill,
                    "answer a small read with only the pages asked for, not "
                    "the rest of its block too (see docs/usage.md)");
  s.mount->add_flag("--no-io-uring", o.no_io_uring,
                    "serve FUSE requests through /dev/fuse even when the "
                    "kernel offers io_uring (see docs/usage.md)");
  s.mount->add_option("-o", o.fuse_options,
                      "FUSE mount options, e.g. allow_other");
  CLI::Option* anchor_file =
      s.mount->add_option("--anchor-file", o.anchor_file,
                          "trusted file holding the last generation");
  CLI::Option* anchor_command =
      s.mount->add_option("--anchor-command", o.anchor_command,
                          "command that loads/stores the anchor");
  anchor_file->excludes(anchor_command);
  n.generation_option =
      s.mount->add_option("--expect-generation", n.generation,
                          "refuse to mount another generation");
  s.mount->add_flag("--takeover", o.takeover,
                    "fence a stale client that still holds the volume");
  s.mount->add_option("--log-file", o.log_file,
                      "log file in background mode (default "
                      "<run dir>/<volume>.log)");

  s.unmount =
      app.add_subcommand("unmount", "unmount and wait for the final commit");
  s.unmount->alias("umount");
  s.unmount->add_option("MOUNTPOINT", o.mountpoint, "mounted directory")
      ->required();
  s.unmount
      ->add_option("--timeout", o.unmount_timeout,
                   "how long to wait for the daemon to exit")
      ->capture_default_str();

  s.fsck = app.add_subcommand("fsck", "verify every block of a volume");
  AddTargetOptions(*s.fsck, o.target);
  AddKeyOptions(*s.fsck, o.key, "", "volume's");
  s.fsck->add_flag("--repair", o.repair,
                   "remove damaged files and reclaim unreferenced blocks");

  s.info =
      app.add_subcommand("info", "show volume parameters, state and usage");
  AddTargetOptions(*s.info, o.target);
  AddKeyOptions(*s.info, o.key, "", "volume's");

  CLI::App* key = app.add_subcommand("key", "manage key slots");
  key->require_subcommand(1);
  s.key_add = key->add_subcommand("add", "add a key slot");
  s.key_remove = key->add_subcommand("remove", "remove a key slot");
  s.key_list = key->add_subcommand("list", "list key slots (needs no key)");
  for (CLI::App* command : {s.key_add, s.key_remove, s.key_list}) {
    AddTargetOptions(*command, o.target);
  }
  for (CLI::App* command : {s.key_add, s.key_remove}) {
    AddKeyOptions(*command, o.key, "", "volume's current");
  }
  AddKeyOptions(*s.key_add, o.new_key, "new-", "new");
  n.slot_options.push_back(
      s.key_remove->add_option("--slot", n.slot, "slot index")
          ->required()
          ->check(CLI::Range(0, kMaxKeySlots - 1)));

  s.passwd = app.add_subcommand("passwd", "replace the key of one slot");
  AddTargetOptions(*s.passwd, o.target);
  AddKeyOptions(*s.passwd, o.key, "", "volume's current");
  AddKeyOptions(*s.passwd, o.new_key, "new-", "new");
  n.slot_options.push_back(
      s.passwd
          ->add_option("--slot", n.slot,
                       "slot to replace (default: the only one)")
          ->check(CLI::Range(0, kMaxKeySlots - 1)));
  return s;
}

}  // namespace

ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args) {
  ParsedCommandLine parsed;
  CliOptions options;
  OptionalNumbers numbers;
  CLI::App app{
      "enclavefs: encrypted filesystem for enclaves on an untrusted host"};
  app.name(args.empty() ? "enclavefs" : args[0]);
  Subcommands s = Define(app, options, numbers);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (!reversed.empty()) reversed.pop_back();  // program name
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out;
    std::ostringstream err;
    const int code = app.exit(e, out, err);
    parsed.exit_code = code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
    parsed.output = out.str() + err.str();
    return parsed;
  }
  const std::pair<CLI::App*, Command> commands[] = {
      {s.format, Command::kFormat},
      {s.mount, Command::kMount},
      {s.unmount, Command::kUnmount},
      {s.fsck, Command::kFsck},
      {s.info, Command::kInfo},
      {s.key_add, Command::kKeyAdd},
      {s.key_remove, Command::kKeyRemove},
      {s.key_list, Command::kKeyList},
      {s.passwd, Command::kPasswd},
  };
  for (const auto& [app_of, command] : commands) {
    if (app_of->parsed()) options.command = command;
  }
  if (numbers.generation_option->count() > 0) {
    options.expect_generation = numbers.generation;
  }
  for (CLI::Option* slot : numbers.slot_options) {
    if (slot->count() > 0) options.slot = numbers.slot;
  }
  parsed.options = std::move(options);
  return parsed;
}

int Report(const Outcome& outcome) {
  if (!outcome.ok())
    std::fprintf(stderr, "enclavefs: %s\n", outcome.message.c_str());
  return static_cast<int>(outcome.code);
}

int RunCommand(const CliOptions& options) {
  // One-shot commands keep stderr for errors; a mount logs its life.
  if (options.command != Command::kMount)
    spdlog::set_level(spdlog::level::warn);
  switch (options.command) {
    case Command::kFormat:
      return RunFormat(options);
    case Command::kMount:
      return RunMount(options);
    case Command::kUnmount:
      return RunUnmount(options);
    case Command::kFsck:
      return RunFsck(options);
    case Command::kInfo:
      return RunInfo(options);
    case Command::kKeyAdd:
      return RunKeyAdd(options);
    case Command::kKeyRemove:
      return RunKeyRemove(options);
    case Command::kKeyList:
      return RunKeyList(options);
    case Command::kPasswd:
      return RunPasswd(options);
  }
  return static_cast<int>(ExitCode::kUsage);
}

int RunCommandLine(int argc, char** argv) {
  try {
    ParsedCommandLine parsed =
        ParseCommandLine(std::vector<std::string>(argv, argv + argc));
    if (!parsed.options) {
      std::fputs(parsed.output.c_str(),
                 parsed.exit_code == 0 ? stdout : stderr);
      return parsed.exit_code;
    }
    return RunCommand(*parsed.options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "enclavefs: internal error: %s\n", e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
}

}  // namespace enclavefs

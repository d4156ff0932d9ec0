#include "enclave-mount/volume_access.h"

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "blockstore/protocol.h"
#include "blockstore/transport.h"

namespace enclavefs {
namespace {

// Reads one line from the terminal with echo off. False on EOF.
bool ReadHidden(const std::string& label, std::string* line) {
  std::fprintf(stderr, "%s: ", label.c_str());
  std::fflush(stderr);
  termios saved{};
  const bool tty = tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  const bool got = static_cast<bool>(std::getline(std::cin, *line));
  if (tty) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  std::fprintf(stderr, "\n");
  return got;
}

Outcome ReadPassphraseFile(const std::string& path, std::string* passphrase) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Outcome::Fail(
        ExitCode::kUsage,
        "cannot read passphrase file " + path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  *passphrase = text.str();
  if (passphrase->ends_with('\n')) passphrase->pop_back();
  if (passphrase->ends_with('\r')) passphrase->pop_back();
  if (passphrase->empty()) {
    return Outcome::Fail(ExitCode::kUsage,
                         "passphrase file " + path + " is empty");
  }
  return Outcome::Ok();
}

Outcome PromptPassphrase(Prompt prompt, const std::string& label,
                         std::string* passphrase) {
  if (!ReadHidden(label, passphrase) || passphrase->empty()) {
    return Outcome::Fail(ExitCode::kUsage, "no passphrase entered");
  }
  if (prompt == Prompt::kConfirm) {
    std::string again;
    if (!ReadHidden("Repeat " + label, &again) || again != *passphrase) {
      return Outcome::Fail(ExitCode::kUsage, "passphrases do not match");
    }
  }
  return Outcome::Ok();
}

}  // namespace

Prompt PromptIfTerminal(Prompt when_terminal) {
  return isatty(STDIN_FILENO) ? when_terminal : Prompt::kNone;
}

Outcome ResolveKeySource(const KeyOptions& options, const KeyPrompt& prompt,
                         KeySource* source) {
  if (!options.key_file.empty()) {
    *source = KeySource::KeyFile(
        std::filesystem::absolute(options.key_file).string());
    return Outcome::Ok();
  }
  if (!options.key_command.empty()) {
    *source = KeySource::KeyCommand(options.key_command);
    return Outcome::Ok();
  }
  std::string passphrase;
  Outcome read = Outcome::Ok();
  if (!options.passphrase_file.empty()) {
    read = ReadPassphraseFile(options.passphrase_file, &passphrase);
  } else if (prompt.mode == Prompt::kNone) {
    const std::string& p = prompt.option_prefix;
    return Outcome::Fail(ExitCode::kUsage,
                         "no " + std::string(p.empty() ? "" : "new ") +
                             "key given: use --" + p + "key-file, --" + p +
                             "passphrase-file or --" + p + "key-command");
  } else {
    read = PromptPassphrase(prompt.mode, prompt.label, &passphrase);
  }
  if (!read.ok()) return read;
  *source = KeySource::Passphrase(std::move(passphrase));
  return Outcome::Ok();
}

Outcome FetchHeader(const VolumeTarget& target, std::string* header) {
  Result<Address> address = ParseAddress(target.host);
  if (!address.ok())
    return Outcome::Fail(ExitCode::kUsage, address.status().message());
  Result<std::optional<std::string>> got =
      ReadPublicHeader(*address, target.volume);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) {
      return Outcome::Fail(
          ExitCode::kNoSuchVolume,
          "volume " + target.volume + " does not exist on " + target.host);
    }
    return FailureAt(Step::kReadHeader, got.status());
  }
  if (!*got) {
    return Outcome::Fail(
        ExitCode::kNotFormatted,
        "volume " + target.volume + " is not formatted (run enclavefs format)");
  }
  *header = std::move(**got);
  return Outcome::Ok();
}

Outcome OpenLeased(const VolumeTarget& target, const KeySource& source,
                   bool takeover, LeasedVolume* out) {
  Outcome fetched = FetchHeader(target, &out->header);
  if (!fetched.ok()) return fetched;
  Result<std::unique_ptr<VolumeKeys>> keys =
      UnlockVolumeHeader(out->header, source);
  if (!keys.ok()) return FailureAt(Step::kUnlock, keys.status());
  out->keys = std::move(keys).value();
  return Lease(target, *out->keys, takeover, &out->store);
}

Outcome Lease(const VolumeTarget& target, const VolumeKeys& keys, bool takeover,
              std::shared_ptr<RemoteBlockStore>* store) {
  Result<Address> address = ParseAddress(target.host);
  if (!address.ok())
    return Outcome::Fail(ExitCode::kUsage, address.status().message());
  RemoteOptions options;
  options.address = *address;
  options.volume = target.volume;
  options.token = keys.access_token();
  options.takeover = takeover;
  options.max_value_size = keys.largest_sealed_block();
  Result<std::unique_ptr<RemoteBlockStore>> opened =
      RemoteBlockStore::Open(options);
  if (!opened.ok()) {
    if (opened.status().code() == StatusCode::kBusy) {
      return Outcome::Fail(ExitCode::kBusy,
                           "volume " + target.volume +
                               " is busy: mounted or in use by another client");
    }
    return FailureAt(Step::kLease, opened.status());
  }
  *store = std::move(opened).value();
  return Outcome::Ok();
}

Outcome OpenVolume(LeasedVolume& leased, VolumeOptions options,
                   std::unique_ptr<Volume>* volume) {
  Result<std::unique_ptr<Volume>> opened =
      Volume::Open(leased.store, std::move(leased.keys), std::move(options));
  if (!opened.ok()) return FailureAt(Step::kOpenVolume, opened.status());
  *volume = std::move(opened).value();
  return Outcome::Ok();
}

Outcome RewriteHeader(LeasedVolume& volume, const std::string& new_header) {
  CommitBatch batch;
  const std::string key(protocol::kPublicHeaderKey);
  batch.puts = {{key, new_header}};
  batch.condition = CommitCondition{key, volume.header};
  batch.durable = true;
  Status s = volume.store->Commit(batch);
  if (s.code() == StatusCode::kConflict) {
    return Outcome::Fail(ExitCode::kFailure,
                         "the volume header changed meanwhile; retry");
  }
  if (!s.ok()) return FailureAt(Step::kOther, s);
  volume.header = new_header;
  return Outcome::Ok();
}

}  // namespace enclavefs

// The steps every enclavefs subcommand shares to reach a volume: turning
// KEYOPTS into a KeySource (files, a command, or a no-echo prompt), fetching
// the public header, unlocking it, taking the host lease, and rewriting the
// header under that lease. Each step returns an Outcome already classified
// into an exit code (exit_codes.h).
//
// Thread safety: plain functions without shared state; the prompt uses the
// process's stdin/stderr, so call it from one thread.
#pragma once

#include <memory>
#include <string>

#include "blockstore/remote_block_store.h"
#include "enclave-mount/exit_codes.h"
#include "fs/key_source.h"
#include "fs/volume.h"
#include "fs/volume_keys.h"

namespace enclavefs {

inline constexpr char kDefaultHost[] = "vsock:3:7000";

// At most one of the three is set (the CLI enforces it).
struct KeyOptions {
  std::string passphrase_file;
  std::string key_file;
  std::string key_command;
};

enum class Prompt {
  kNone,     // stdin is not a terminal: no key is an error
  kOnce,     // ask for an existing passphrase
  kConfirm,  // ask for a new one and its confirmation
};

// How to ask for a key nobody named on the command line.
struct KeyPrompt {
  Prompt mode = Prompt::kNone;
  std::string label = "Passphrase";  // shown on the terminal
  std::string option_prefix;         // "new-" for --new-key-file etc.
};

// Resolves KEYOPTS. A passphrase file holds the passphrase (one trailing
// newline is dropped); key file paths are made absolute so they survive the
// daemon's chdir. With none given: prompts on the terminal per `prompt`, or
// kUsage "no key given: use --key-file, --passphrase-file or --key-command"
// when its mode is kNone. kUsage for an unreadable or empty passphrase file
// or a mismatched confirmation.
Outcome ResolveKeySource(const KeyOptions& options, const KeyPrompt& prompt,
                         KeySource* source);

// kNone unless stdin is a terminal; then `when_terminal`.
Prompt PromptIfTerminal(Prompt when_terminal);

// A volume reached on the host: its header, unlocked keys, and the lease.
struct LeasedVolume {
  std::string header;
  std::unique_ptr<VolumeKeys> keys;
  std::shared_ptr<RemoteBlockStore> store;
};

// Host address and volume name as given on the command line.
struct VolumeTarget {
  std::string host = kDefaultHost;
  std::string volume;
};

// Reads the header without a lease. kNotFormatted if the volume has none.
Outcome FetchHeader(const VolumeTarget& target, std::string* header);

// RemoteBlockStore::Open with the access token of `keys`, and Gets sized
// for the volume's blocks: the lease. kBusy if another client holds the
// volume (and takeover is false).
Outcome Lease(const VolumeTarget& target, const VolumeKeys& keys, bool takeover,
              std::shared_ptr<RemoteBlockStore>* store);

// FetchHeader, UnlockVolumeHeader, then Lease with the derived token.
Outcome OpenLeased(const VolumeTarget& target, const KeySource& source,
                   bool takeover, LeasedVolume* out);

// Volume::Open on the lease, consuming `leased.keys`. kNotFormatted,
// kRollback, kIntegrity... as ClassifyFailure(Step::kOpenVolume) says.
Outcome OpenVolume(LeasedVolume& leased, VolumeOptions options,
                   std::unique_ptr<Volume>* volume);

// Replaces the header with `new_header` in one durable commit conditional
// on it still being `volume.header`, while holding the lease. kFailure
// "the volume header changed meanwhile; retry" if it did not hold.
Outcome RewriteHeader(LeasedVolume& volume, const std::string& new_header);

}  // namespace enclavefs

// KeySource: where the secret that unlocks a volume key slot comes from, and
// how 32-byte keys are loaded from key files and key commands.
//
// A KeySource is a plain value (it may hold a passphrase in a std::string:
// callers should keep it short-lived). Loaded keys land in SecureBytes.
// Errors never contain the secret, the command's output or the passphrase.
//
// Thread safety: LoadRawKey may be called concurrently; it spawns a child
// process for kKeyCommand.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "blockstore/status.h"
#include "fs/secure_buffer.h"

namespace enclavefs {

struct KeySource {
  enum class Kind { kPassphrase, kKeyFile, kKeyCommand };
  Kind kind = Kind::kPassphrase;
  std::string value;  // passphrase text, key file path or shell command

  static KeySource Passphrase(std::string passphrase);
  static KeySource KeyFile(std::string path);
  static KeySource KeyCommand(std::string command);
};

// Parses key bytes: exactly 32 raw bytes, or 64 hex digits optionally
// followed by one '\n'. InvalidArgument otherwise (message gives only the
// length seen, never content).
Result<SecureBytes> ParseRawKey(std::span<const uint8_t> bytes);

// Loads the 32-byte key of a kKeyFile or kKeyCommand source. A key file is
// read as is; a key command runs as `/bin/sh -c CMD` with stdin from
// /dev/null and stderr inherited, and its stdout is the key. Fails with
// InvalidArgument for a passphrase source, an unreadable file (naming the
// path), a command that cannot start, exits non-zero or dies by a signal,
// or output that is not a key.
Result<SecureBytes> LoadRawKey(const KeySource& source);

}  // namespace enclavefs

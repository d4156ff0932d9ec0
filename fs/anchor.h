// Anchor: trusted storage of the last committed (generation, root hash), so a
// volume rolled back or forked by the host is refused at open.
//
// The host stores every block, including the root record, so on its own the
// enclave cannot tell an old root from the newest one across restarts. An
// anchor is kept outside the host's control (a file on enclave-trusted
// storage, or a command talking to a monotonic counter / attestation
// service). The Volume loads it at open and stores it after every commit.
//
// AnchorFile(path): the file holds the text "GENERATION HASH\n" (decimal,
// lowercase hex). Store writes a temp file, fsyncs it, renames it over
// `path` and fsyncs the directory, so a crash leaves the old or new anchor.
//
// AnchorCommand(cmd), protocol:
//   /bin/sh -c "CMD load"              -> exit 0, stdout "GENERATION HASH\n",
//                                         or empty stdout if nothing stored
//   /bin/sh -c "CMD store GEN HASH"    -> exit 0 once stored durably
// Any other exit status, or malformed output, is an IOError.
//
// Thread safety: implementations are safe to call concurrently; the Volume
// serializes its own calls anyway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "blockstore/status.h"

namespace enclavefs {

struct AnchorState {
  uint64_t generation = 0;
  std::string root_hash;  // lowercase hex
};

class Anchor {
 public:
  virtual ~Anchor() = default;
  // nullopt if no state was ever stored. IOError if it cannot be read or is
  // malformed.
  virtual Result<std::optional<AnchorState>> Load() = 0;
  // Durably replaces the stored state. IOError on failure.
  virtual Status Store(uint64_t generation, std::string_view root_hash) = 0;
};

class AnchorFile : public Anchor {
 public:
  explicit AnchorFile(std::string path);
  Result<std::optional<AnchorState>> Load() override;
  Status Store(uint64_t generation, std::string_view root_hash) override;

 private:
  std::string path_;
};

class AnchorCommand : public Anchor {
 public:
  explicit AnchorCommand(std::string command);
  Result<std::optional<AnchorState>> Load() override;
  Status Store(uint64_t generation, std::string_view root_hash) override;

 private:
  std::string command_;
};

// Parses "GENERATION HASH" with an optional trailing newline; the hash is
// 64 lowercase hex characters. IOError naming `source` otherwise.
Result<AnchorState> ParseAnchorText(std::string_view text,
                                    std::string_view source);

}  // namespace enclavefs

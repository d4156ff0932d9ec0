// SealerImpl: the Sealer of format version 1 (layout in docs/format.md).
//
// SealingContext holds what every session of one volume shares: the
// immutable parameters and the two purpose keys. A SealerImpl is one mount
// session: a random 128-bit salt and a 64-bit counter; it owns a bounded
// cache of the session subkeys it needed for Open.
//
// Thread safety: SealingContext is immutable; SealerImpl is safe for
// concurrent use (one mutex guards the session and the cache; the AEAD work
// runs outside it).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "fs/crypto.h"
#include "fs/sealer.h"
#include "fs/secure_buffer.h"

namespace enclavefs {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSaltSize = 16;
using Salt = std::array<uint8_t, kSaltSize>;
using VolumeUuid = std::array<uint8_t, 16>;

// A session moves to a fresh salt after this many counters (seals + names).
inline constexpr uint64_t kMaxCountersPerSalt = uint64_t{1} << 32;
// Session subkeys kept for Open; older ones are re-derived when needed.
inline constexpr size_t kMaxCachedSubkeys = 64;

struct SealingContext {
  CipherId cipher = CipherId::kAes256Gcm;
  VolumeUuid uuid{};
  uint32_t block_size = 0;  // class of kData
  uint32_t node_size = 0;   // class of kNode
  SecureKey encryption_key{kKeySize};
  SecureKey naming_key{kKeySize};
};

class SealerImpl : public Sealer {
 public:
  // A session with a random salt, starting at counter 0.
  explicit SealerImpl(std::shared_ptr<const SealingContext> context);
  // Test only (known-answer tests): a fixed salt and first counter.
  SealerImpl(std::shared_ptr<const SealingContext> context, const Salt& salt,
             uint64_t first_counter);

  size_t Capacity(BlockKind kind) const override;
  std::string NewBlockName() override;
  Result<SealedBlock> Seal(BlockKind kind, std::string_view name,
                           std::string_view plaintext) override;
  Result<std::span<char>> OpenInPlace(BlockKind kind, std::string_view name,
                                      std::span<char> sealed,
                                      const Tag* expected_tag) override;

 private:
  struct Position {
    Salt salt;
    uint64_t counter;
  };
  // Takes the next (salt, counter), rotating the salt when it is used up.
  Position Next();
  // The AEAD keyed with the session subkey of `salt` (cached).
  Result<std::shared_ptr<const Aead>> SubkeyFor(const Salt& salt);
  // Class size for `kind`, or 0 if `kind` is unknown. For kOpaque, the
  // class that fits `plaintext_size`.
  size_t ClassSize(BlockKind kind, size_t plaintext_size) const;
  std::string AssociatedData(BlockKind kind, std::string_view name) const;

  const std::shared_ptr<const SealingContext> context_;
  std::mutex mu_;
  Salt salt_;                                          // GUARDED_BY(mu_)
  uint64_t next_counter_;                              // GUARDED_BY(mu_)
  std::map<Salt, std::shared_ptr<const Aead>> cache_;  // GUARDED_BY(mu_)
  std::deque<Salt> cache_order_;  // insertion order, for eviction
};

}  // namespace enclavefs

// SealedBlockStore: a BlockStore decorator that seals every value.
//
// Each value is sealed as a BlockKind::kOpaque block under its own key as
// the host name, padded to the next power of two >= 4 KiB, so the wrapped
// store (the host) sees keys and size classes only. This gives a plain
// key/value store confidentiality, integrity and position binding (a value
// moved to another key or volume fails to open), but NOT freshness: the host
// can still serve an older sealed value of the same key or drop a key.
// Freshness comes from the Merkle tree of the filesystem layer.
//
// Keys pass through unchanged (ListKeys works); Stat reports the wrapped
// store's usage, i.e. sealed sizes. Commit conditions compare plaintexts:
// the current value is read and opened, and the inner commit is conditioned
// on its exact sealed bytes, so the check stays atomic.
//
// Ownership: owns the wrapped store and the Sealer. Thread safety: safe for
// concurrent calls, as the wrapped store and the Sealer are.
#pragma once

#include <memory>

#include "blockstore/block_store.h"
#include "fs/sealer.h"

namespace enclavefs {

class SealedBlockStore : public BlockStore {
 public:
  SealedBlockStore(std::unique_ptr<BlockStore> inner,
                   std::unique_ptr<Sealer> sealer);

  // Corruption if a stored value fails to open.
  Result<GetResult> Get(std::span<const std::string> keys) override;
  // InvalidArgument also for a value over the sealer's kOpaque capacity;
  // Conflict if the condition's plaintext does not match.
  Status Commit(const CommitBatch& batch) override;
  Result<StoreStats> Stat() override;
  Status RestoreConnection() override;
  Result<KeyPage> ListKeys(std::string_view start_after, size_t limit) override;

 private:
  // The condition for the inner store equivalent to `plain`, or Conflict.
  Result<CommitCondition> SealedCondition(const CommitCondition& plain);

  std::unique_ptr<BlockStore> inner_;
  std::unique_ptr<Sealer> sealer_;
};

}  // namespace enclavefs

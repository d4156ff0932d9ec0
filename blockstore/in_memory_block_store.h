// InMemoryBlockStore: a BlockStore held in a std::map, for tests and as the
// reference the other implementations are compared against.
//
// Thread safety: all methods are safe to call concurrently; one mutex
// serializes them. Quota is enforced like the host does (0 = unlimited).
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "blockstore/block_store.h"

namespace enclavefs {

class InMemoryBlockStore : public BlockStore {
 public:
  explicit InMemoryBlockStore(uint64_t quota_bytes = 0);

  Result<GetResult> Get(std::span<const std::string> keys) override;
  Status Commit(const CommitBatch& batch) override;
  Result<StoreStats> Stat() override;
  Result<KeyPage> ListKeys(std::string_view start_after, size_t limit) override;

  // Test hooks: a copy of every block, and wholesale replacement of them.
  std::map<std::string, std::string> Snapshot() const;
  void Restore(std::map<std::string, std::string> blocks);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> blocks_;  // GUARDED_BY(mu_)
  uint64_t used_bytes_ = 0;                                 // GUARDED_BY(mu_)
  uint64_t quota_bytes_;
};

}  // namespace enclavefs

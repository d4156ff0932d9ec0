// BlockStore: the key/value contract every storage layer of EnclaveFS speaks.
//
// A BlockStore is scoped to ONE volume. Keys are short opaque byte strings
// (1..kMaxKeySize bytes); values are opaque bytes (0..kMaxValueSize, 4 KiB to
// 1 MiB in practice). Implementations: InMemoryBlockStore, RocksDbBlockStore
// (host side), RemoteBlockStore (client of enclavefs-host) and, in fs/, the
// sealing decorator. Decorators own the store they wrap.
//
// Thread safety: every implementation is safe for concurrent calls from many
// threads. Commits are atomic and linearizable: a concurrent Get sees all of a
// batch or none of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blockstore/status.h"

namespace enclavefs {

inline constexpr size_t kMaxKeySize = 256;
inline constexpr size_t kMaxValueSize = 4u << 20;  // 4 MiB

// Guards a commit on the current value of one designated key.
struct CommitCondition {
  std::string key;
  // The value `key` must hold for the commit to apply; nullopt means `key`
  // must be absent.
  std::optional<std::string> expected;
};

// An atomic set of changes. A key may appear at most once across puts and
// deletes. Deleting an absent key is not an error.
struct CommitBatch {
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> deletes;
  std::optional<CommitCondition> condition;
  // true: the batch, and every batch of this store acknowledged before it,
  // is on stable storage (fsync'd) when Commit returns OK.
  // false: a crash of the host process or its OS may lose it (and every
  // non-durable batch after it), never an earlier durable one.
  bool durable = false;

  // Sum of key and value sizes of the puts.
  size_t PutBytes() const;
};

// A CommitBatch whose keys and values are views into buffers the holder
// keeps alive and unchanged while the view is in use, so that the host can
// apply a request frame's values without copying them out first.
struct CommitBatchView {
  std::vector<std::pair<std::string_view, std::string_view>> puts;
  std::vector<std::string_view> deletes;
  std::optional<CommitCondition> condition;
  bool durable = false;

  CommitBatchView() = default;
  explicit CommitBatchView(const CommitBatch& batch);  // views into `batch`
  size_t PutBytes() const;
};

struct StoreStats {
  uint64_t used_bytes = 0;   // sum of key + value sizes of stored blocks
  uint64_t block_count = 0;  // number of stored keys
  uint64_t quota_bytes = 0;  // 0 means unlimited
};

struct KeyPage {
  std::vector<std::string> keys;  // ascending byte order
  bool more = false;              // true if keys after keys.back() exist
};

// One entry per requested key, in request order; nullopt if absent.
using GetResult = std::vector<std::optional<std::string>>;

// A value read by GetShared. `owner` keeps `bytes` alive and may hold other
// values of the same call too (RemoteBlockStore: the whole reply frame), so
// a cached value keeps all of it alive. Each value's bytes are its own: a
// reader may decrypt them in place.
struct SharedValue {
  std::shared_ptr<void> owner;
  std::span<char> bytes;
};
using SharedGetResult = std::vector<std::optional<SharedValue>>;

class BlockStore {
 public:
  virtual ~BlockStore() = default;

  // Reads `keys`. Missing keys are nullopt, not an error.
  // Fails with InvalidArgument for an empty or oversized key, or the
  // transport/storage error that prevented the read.
  virtual Result<GetResult> Get(std::span<const std::string> keys) = 0;

  // Get without a copy per value where the store can avoid it (the remote
  // store hands out views into its reply frames). The default wraps Get's
  // strings, one buffer each.
  virtual Result<SharedGetResult> GetShared(std::span<const std::string> keys);

  // Applies `batch` atomically, or not at all.
  // Fails with Conflict if batch.condition does not hold, QuotaExceeded if
  // the volume would exceed its quota, InvalidArgument for a malformed batch
  // (bad key or value size, duplicate key), Fenced if this holder lost its
  // lease. On any failure nothing was applied -- except Unavailable from a
  // remote store, which means the outcome is unknown.
  virtual Status Commit(const CommitBatch& batch) = 0;

  virtual Result<StoreStats> Stat() = 0;

  // Restores a connection the store already knows it lost, waiting as long
  // as its calls would; OK at once when there is none to restore. Lets a
  // caller reconnect before it takes locks of its own. Default: OK.
  virtual Status RestoreConnection() { return Status::Ok(); }

  // Returns up to `limit` (>= 1) keys strictly greater than `start_after`, in
  // ascending order. Pass "" to start from the beginning.
  virtual Result<KeyPage> ListKeys(std::string_view start_after,
                                   size_t limit) = 0;

  // Convenience: Get of a single key. NotFound if absent.
  Result<std::string> GetOne(const std::string& key);
};

// Checks the shape rules shared by all implementations: key sizes, value
// sizes, no key repeated. Returns InvalidArgument describing the first
// violation.
Status ValidateBatch(const CommitBatch& batch);
Status ValidateBatch(const CommitBatchView& batch);
Status ValidateKey(std::string_view key);

}  // namespace enclavefs

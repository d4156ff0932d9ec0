// RocksDbVolumes: one RocksDB database holding many named volumes, and
// RocksDbBlockStore, the BlockStore view of one of them.
//
// Each volume has a quota, usage counters, an optional access-token hash and
// a fencing epoch with the id of the holder it was granted to, kept in a
// volume record. Blocks of all volumes share one column family, prefixed by
// the volume's never-reused numeric id. The tuning (no compression,
// integrated BlobDB, no WAL for bulk non-durable commits) is explained in
// docs/storage.md.
//
// Thread safety: all methods are safe to call concurrently. Commits to one
// volume are serialized by a per-volume mutex (it makes the quota and
// condition checks exact); commits to different volumes run in parallel and
// their WAL syncs group in RocksDB's write thread.
//
// Ownership: RocksDbBlockStore objects borrow their RocksDbVolumes, which
// must outlive them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blockstore/block_store.h"

namespace enclavefs {

struct VolumeInfo {
  std::string name;
  uint64_t id = 0;
  uint64_t quota_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t block_count = 0;
  bool token_bound = false;
  uint64_t epoch = 0;  // bumped by every Claim
};

// What Claim granted: the new epoch, and since which epoch every claim went
// to the same holder id (holder_since == epoch if the previous claim was
// another holder's, or the first).
struct EpochGrant {
  uint64_t epoch = 0;
  uint64_t holder_since = 0;
};

struct StoreOptions {
  // Read blocks with O_DIRECT, past the host's page cache. Faster cold
  // sequential reads on a fast local disk, but the host no longer caches
  // blocks the enclave has evicted (docs/storage.md). Compaction and
  // flushes stay buffered.
  bool direct_reads = false;
};

class RocksDbBlockStore;

class RocksDbVolumes {
 public:
  // Opens or creates the database in `dir`. IOError if another process holds
  // it ("store is in use by another process"), or if direct reads are asked
  // for on a file system without O_DIRECT.
  static Result<std::unique_ptr<RocksDbVolumes>> Open(
      const std::string& dir, const StoreOptions& store_options = {});
  ~RocksDbVolumes();  // flushes and closes the database

  // AlreadyExists if present; InvalidArgument for a bad name or zero quota.
  Status CreateVolume(const std::string& name, uint64_t quota_bytes);
  // Removes the volume and all its blocks. NotFound if absent.
  Status DeleteVolume(const std::string& name);
  // NotFound if absent; InvalidArgument if quota_bytes is zero.
  // Shrinking below current usage is allowed: later commits that grow the
  // volume fail with QuotaExceeded until usage drops.
  Status ResizeVolume(const std::string& name, uint64_t quota_bytes);
  Result<VolumeInfo> GetVolume(const std::string& name);
  Result<std::vector<VolumeInfo>> ListVolumes();  // sorted by name

  // OK if `token` matches the bound token hash or none is bound yet.
  // PermissionDenied otherwise; NotFound if the volume does not exist.
  Status VerifyToken(const std::string& name, const std::string& token);
  // Verifies `token` (binding its hash if none is bound yet), increments the
  // volume's epoch durably, records `holder_id` (opaque, 1..255 bytes) as the
  // holder of that epoch in the same write, and returns the grant. Every
  // commit made through a store opened with an older epoch then fails with
  // Fenced. InvalidArgument for a bad holder id; PermissionDenied, NotFound.
  Result<EpochGrant> Claim(const std::string& name, const std::string& token,
                           std::string_view holder_id);

  // A store for volume `name`. With `epoch`, each commit first checks that
  // the volume's epoch still equals it (else Fenced). NotFound if absent.
  Result<std::unique_ptr<RocksDbBlockStore>> OpenVolume(
      const std::string& name, std::optional<uint64_t> epoch = std::nullopt);

  // Everything committed so far becomes durable.
  Status MakeDurable();

 private:
  friend class RocksDbBlockStore;
  struct Impl;
  explicit RocksDbVolumes(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Blob garbage collection rewrites every live blob of the oldest blob files
// that a compaction meets, whether those files hold garbage or not; left on,
// it rewrote 1.6 bytes per byte flushed (docs/storage.md). So it runs only
// while garbage is at least kBlobGcOnRatio of the blob bytes, until it is
// back under kBlobGcOffRatio. Returns whether it should run, given whether
// it runs now.
inline constexpr double kBlobGcOnRatio = 0.5;
inline constexpr double kBlobGcOffRatio = 0.2;
bool WantBlobGc(bool on, uint64_t blob_bytes, uint64_t garbage_bytes);

// A non-durable commit with at least this many bytes of values skips the
// WAL; it reaches disk at the next flush, which the next durable commit
// forces (docs/storage.md).
inline constexpr size_t kUnloggedMinBytes = 1 << 20;

// Values read without copying them out of RocksDB: each view points into a
// buffer RocksDB pinned for the read (a blob's read buffer, or a block in
// the shared block cache). So the views are read-only, and valid for as
// long as `pins` lives, whatever is committed in the meantime.
struct PinnedValues {
  std::shared_ptr<void> pins;
  std::vector<std::optional<std::string_view>> values;  // nullopt: absent
};

class RocksDbBlockStore : public BlockStore {
 public:
  ~RocksDbBlockStore() override;
  Result<GetResult> Get(std::span<const std::string> keys) override;
  // Get without copying the values; fails as Get does.
  Result<PinnedValues> GetPinned(std::span<const std::string> keys);
  // Also fails with NotFound if the volume was deleted, Fenced as above.
  Status Commit(const CommitBatch& batch) override;
  // Commit of a batch whose values stay where they are (the request frame)
  // until RocksDB copies them into its write batch.
  Status Commit(const CommitBatchView& batch);
  Result<StoreStats> Stat() override;
  Result<KeyPage> ListKeys(std::string_view start_after, size_t limit) override;

 private:
  friend class RocksDbVolumes;
  RocksDbBlockStore(RocksDbVolumes::Impl* db, std::string name, uint64_t id,
                    std::optional<uint64_t> epoch);
  RocksDbVolumes::Impl* db_;
  std::string name_;
  uint64_t id_;
  std::optional<uint64_t> epoch_;
};

}  // namespace enclavefs

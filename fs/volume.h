// Volume: the authenticated, copy-on-write key/value and data-block store of
// one EnclaveFS volume, on top of an untrusted BlockStore.
//
// Host keys: "header" (the volume header, fs/volume_keys.h), "root" (the sealed
// root record) and 16-byte opaque names, each written once, for tree nodes and
// data blocks. One BTree holds all metadata; data blocks are separate sealed
// blocks referenced from the tree by extent keys. Every block read is checked
// against the tag its parent recorded, and the root record is replaced with a
// compare-and-swap on its exact bytes, so any alteration, swap, replay,
// deletion or rollback by the host surfaces as Corruption (reads) or
// Conflict (commits), never as wrong data. docs/design.md explains the
// protocol; docs/format.md the byte layouts.
//
// Key space of Get/Put/Delete/Scan: keys whose first byte is 0x00..0x7F
// belong to the caller (the FS layer); 0x80..0xFF are reserved (0xE0 holds
// extents) and rejected with InvalidArgument.
//
// Changes are buffered in memory until Commit (explicit, when the dirty bytes
// pass dirty_limit_bytes, or by the timer every commit_interval). Dropping a
// Volume does NOT commit: uncommitted changes vanish as in a crash. After a
// commit Conflict (another writer, or the host moved the root) the volume is
// failed: every later write and commit returns that Conflict; reads go on.
//
// Operations: writes made under a Volume::Operation (BeginOperation) are one
// unit for commits: no commit, explicit or automatic, lands while any
// Operation is active. Commit and the timer wait for active Operations to
// end, and hold off new ones meanwhile (writer-preferring, so a stream of
// overlapping Operations cannot starve them). A dirty-limit commit due while
// Operations are active is deferred to the end of the last one, and new
// Operations wait for it, so dirty memory stays bounded. Only past the
// limit plus kOperationHeadroom does a commit land inside Operations (the
// FS layer's Operations stay far below). With no Operation active, writes
// commit at the dirty limit at once.
//
// Thread safety: every method is safe to call concurrently. One
// shared_mutex: reads take it shared, writes and commits exclusive. Lock
// order: gate_mu_ (Operations) -> mu_ -> readahead_mu_ -> NodeCache's mutex;
// the timer thread only calls Commit. A commit stores its data blocks
// before it takes mu_, as the write-behind uploader does, and a connection
// the store knows it lost (the host closed it or died) is restored before
// that, so readers wait for neither. Known limitation: Commit then holds
// mu_ exclusively while it seals the tree and the host applies the root's
// batch, so writers (and readers) wait for that round trip.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "blockstore/block_store.h"
#include "fs/anchor.h"
#include "fs/btree.h"
#include "fs/node_cache.h"
#include "fs/read_ahead.h"
#include "fs/root_record.h"
#include "fs/volume_keys.h"

namespace enclavefs {

// Largest dirty_limit_bytes accepted. Commits go out in batches under the
// wire limits whatever their size; this only bounds the memory they hold.
inline constexpr size_t kMaxDirtyLimit = size_t{16} << 30;
// Dirty bytes active Operations may add past dirty_limit_bytes (or half the
// limit, if more) before a commit lands inside them: far above what one FS
// operation writes, so in practice commits hold whole operations.
inline constexpr size_t kOperationHeadroom = 48u << 20;

struct VolumeOptions {
  size_t cache_bytes = 64u << 20;
  size_t dirty_limit_bytes = 64u << 20;
  std::chrono::milliseconds commit_interval{5000};  // 0 disables the timer
  // Write-behind: once pending data blocks pass this many bytes, a
  // background uploader stores the least recently written ones until half
  // of it is left, so commits find little left to send. 0 disables it.
  size_t write_behind_bytes = 32u << 20;
  // Window ahead of a sequential reader, in bytes (whole blocks, at least
  // one); 0: off. Bytes, not blocks, so every block size reads ahead alike.
  size_t readahead_bytes = 4u << 20;
  std::optional<uint64_t> expect_generation;
  std::shared_ptr<Anchor> anchor;  // optional
};

// A range of a data block as Volume::SliceData returns it: `bytes`, then
// `zeros` zero bytes (past the block's stored length, or all of a hole).
// `bytes` points into `owner`, which keeps it alive and unchanged: a stored
// block's plaintext is shared with the cache, a block awaiting a commit is
// copied (writers patch those in place).
struct DataSlice {
  std::shared_ptr<const void> owner;
  std::string_view bytes;
  size_t zeros = 0;
};

struct GcReport {
  uint64_t scanned_keys = 0;      // host keys listed
  uint64_t reachable_blocks = 0;  // nodes + data blocks of the current root
  uint64_t deleted_blocks = 0;    // unreferenced blocks removed
};

class Volume : private NodeLoader {
 public:
  // RAII guard grouping the writes made while it lives into one unit for
  // commits (see the header comment). Not copyable or movable; must not
  // outlive its Volume. A thread holding one must not call Commit or
  // CollectGarbage, nor begin a second one on the same Volume (both would
  // wait for the Operation itself).
  class Operation {
   public:
    ~Operation();
    Operation(const Operation&) = delete;
    Operation& operator=(const Operation&) = delete;

   private:
    friend class Volume;
    explicit Operation(Volume& volume) : volume_(volume) {}
    Volume& volume_;
  };

  // Stores `header_bytes` and an empty volume (generation 1), the root
  // written on condition that it is absent. AlreadyExists "volume is already
  // formatted" if "header" or "root" exists; the store's error otherwise.
  static Status Format(BlockStore& store, std::string_view header_bytes,
                       const VolumeKeys& keys);

  // Reads "header" and "root" only. NotFound if the volume is not formatted;
  // Corruption if the root fails authentication, belongs to another volume,
  // or is older than / forked from the anchor; InvalidArgument for bad
  // options or a generation other than options.expect_generation.
  static Result<std::unique_ptr<Volume>> Open(std::shared_ptr<BlockStore> store,
                                              std::unique_ptr<VolumeKeys> keys,
                                              VolumeOptions options);

  ~Volume() override;
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // Metadata. Get: nullopt if absent. Put: InvalidArgument for a reserved or
  // oversized key (> 512 B) or a value over max_value_size().
  Result<std::optional<std::string>> Get(std::string_view key);
  Status Put(std::string_view key, std::string_view value);
  // Removing an absent key is not an error.
  Status Delete(std::string_view key);
  // Entries with start <= key < end ("" = up to the end of the caller's key
  // space), at most `limit`. Next page: start = last key + '\0'.
  Result<std::vector<std::pair<std::string, std::string>>> Scan(
      std::string_view start, std::string_view end, size_t limit);

  // Data blocks of file `file`. ReadData: nullopt for a hole. WriteData:
  // InvalidArgument if bytes exceed block_size(). DeleteData drops every
  // block with index >= first_index. ListData: indices of the stored blocks
  // in [first_index, end_index), ascending, at most `limit`; reads only
  // tree nodes, never data blocks.
  Result<std::optional<std::string>> ReadData(uint64_t file, uint64_t index);
  Status WriteData(uint64_t file, uint64_t index, std::string_view bytes);
  // Bytes [lo, hi) of block (file, index) without copying a sealed block's
  // plaintext: see DataSlice. REQUIRES lo <= hi <= block_size().
  Result<DataSlice> SliceData(uint64_t file, uint64_t index, size_t lo,
                              size_t hi);
  // Writes `bytes` at `offset` inside block (file, index), keeping its other
  // bytes; a gap past the old end reads as zeros. InvalidArgument past
  // block_size(). Repeated patches of a block between commits cost one
  // memcpy each: the block is sealed once, at the commit.
  Status PatchData(uint64_t file, uint64_t index, size_t offset,
                   std::string_view bytes);
  Status DeleteData(uint64_t file, uint64_t first_index);
  Result<std::vector<uint64_t>> ListData(uint64_t file, uint64_t first_index,
                                         uint64_t end_index, size_t limit);

  // Starts an Operation; waits while a commit is waiting or running. Never
  // fails. REQUIRES: the calling thread holds no Operation on this Volume.
  [[nodiscard]] Operation BeginOperation();

  // Makes all changes so far one atomic new generation on the host (durable:
  // fsync'd there; with an anchor every commit is durable). No-op when
  // nothing changed. Conflict fails the volume (see above). Waits until no
  // Operation is active. REQUIRES: the caller holds no Operation on this
  // Volume (asserted in debug builds).
  Status Commit(bool durable);

  // A persistent counter (starts at 1), committed with the next commit.
  Result<uint64_t> NextId();

  // Commits, then deletes every host block the current root does not reach.
  // Same wait and REQUIRES as Commit.
  Result<GcReport> CollectGarbage();
  // CollectGarbage's dry run, for fsck: commits and deletes nothing, walks
  // the committed tree (loading, so verifying, every node) and returns the
  // host keys it does not reach, "header" and "root" aside.
  // InvalidArgument if changes await a commit; Corruption at the first node
  // that fails verification.
  Result<std::vector<std::string>> ListUnreferenced();

  uint64_t generation() const;
  // BLAKE2b-256 of the sealed root record bytes, lowercase hex.
  std::string root_hash() const;
  // Bytes a data block holds: exactly the volume's block size (e.g. 65536),
  // since the sealed layout keeps its length field outside the class
  // (docs/format.md). Callers split files into blocks of this size.
  uint32_t block_size() const;
  size_t max_value_size() const;
  // Bytes of sealed state waiting for the next commit.
  size_t dirty_bytes() const;

  // Ok, unless this volume's last commit or upload failed (the host had no
  // room: QuotaExceeded, or ResourceExhausted when its disk is full; or it
  // could not be reached) and the dirty bytes have reached the limit or 40
  // MiB, whichever is less (so that a commit at the quota carries them in
  // its root batch): then that failure. Writers that add data call it
  // before their first change, so a refused write changes nothing and
  // memory stays bounded while commits fail. Deletes are never refused; at
  // the quota, the room they free lets the next commit fit.
  Status CheckRoom() const;

 private:
  // A data block written since the last commit: plaintext only, sealed by
  // the commit. The tree's extent entry names it with a placeholder tag
  // until then. Readers see `plain` under mu_ only, so writers may change it
  // in place under mu_ exclusive.
  struct PendingData {
    uint64_t file;
    uint64_t index;
    std::shared_ptr<std::string> plain;
    Tag tag{};             // set by the commit that seals it
    uint64_t written = 0;  // write_seq_ of its last write
    // Every byte came from writes since the block became pending (none was
    // loaded from the store). The kernel's page cache holds those pages
    // (writeback cache), so once sealed the block skips this cache.
    bool from_writes = false;
    // A commit that then failed stored it: the host holds it (and counts
    // it against the quota), so retiring it must delete it there.
    bool stored = false;
  };

  Volume(std::shared_ptr<BlockStore> store, std::unique_ptr<VolumeKeys> keys,
         std::unique_ptr<Sealer> sealer, VolumeOptions options, RootRecord root,
         std::string root_sealed);

  // Holds the commit gate for its lifetime: new Operations wait, and the
  // constructor waits until no Operation is active.
  class CommitPass {
   public:
    explicit CommitPass(Volume& volume);
    ~CommitPass();
    CommitPass(const CommitPass&) = delete;
    CommitPass& operator=(const CommitPass&) = delete;

   private:
    Volume& volume_;
  };

  void EndOperation();
  // Runs a dirty-limit commit that was deferred for Operations. REQUIRES
  // no gate_mu_, mu_ or Operation held by the caller.
  void RunDeferredCommit();
  Status CheckWritable() const;
  Status CheckUserKey(std::string_view key) const;
  // Commits if the dirty bytes passed the limit, or defers that commit to the
  // end of the active Operations. REQUIRES mu_ exclusive.
  Status MaybeCommitLocked();
  Status CommitLocked(bool durable);
  Status CommitDirtyLocked(bool durable);
  // A store that fenced this mount (the lease went to another client, or
  // the host lost commits in a crash) refuses every later call: the volume
  // turns read-only like after a refused root swap, and says so once.
  // REQUIRES mu_ exclusive.
  void FailIfFencedLocked(const Status& s);
  // QuotaExceeded or ResourceExhausted: the host had no room for a batch.
  static bool IsNoRoom(const Status& s);
  // Enters (saying so once) or leaves the stalled state of CheckRoom after
  // a commit or upload ended with `s`. REQUIRES mu_ exclusive.
  void NoteCommitLocked(const Status& s);
  // The store's RestoreConnection, which Commit and RunDeferredCommit call
  // before taking any lock: a reconnect that gives up takes seconds, and
  // readers, also of cached blocks, would wait for it behind mu_. Its failure
  // counts as a failed commit (stall, or read-only if fenced). REQUIRES no mu_
  // held.
  Status RestoreConnection();
  // Dirty bytes past which a stalled volume takes no more data.
  size_t StalledDirtyLimit() const;
  // The host refused a commit for room and blocks were retired since: a
  // commit is due to see whether it fits now. REQUIRES mu_ held.
  bool RoomFreedLocked() const;
  // Deletes the blocks stored since the last commit and retired since:
  // neither root reaches them, so deleting them first is safe, and at the
  // quota their room is what lets the rest of the commit in.
  // REQUIRES mu_ exclusive.
  Status DeleteRetiredUploadsLocked();
  // Host keys the committed tree does not reach. REQUIRES mu_ held.
  Result<std::vector<std::string>> ListUnreferencedLocked(GcReport& report);
  // Stores `blocks` (fresh names only), moving them out, in as many plain
  // batches as the wire limits need.
  Status UploadBlocks(std::vector<std::pair<std::string, std::string>>& blocks);
  Status SendBatch(CommitBatch& batch, const std::string& new_root);
  // Deletes `names` from the host in batches under the key limit; `deleted`
  // tells how many went, also when a batch fails.
  Status DeleteBlocks(std::span<const std::string> names, size_t& deleted);
  // Deletes `names` from the host; on failure logs what is left for
  // CollectGarbage (`what` names them in the log).
  void DeleteBestEffort(std::vector<std::string> names, std::string_view what);
  size_t DirtyBytesLocked() const;
  void Retire(const std::string& name);
  // Brings stored block (file, index) into the cache under a shared lock,
  // so that a read-modify-write does not wait for the host while holding
  // mu_ exclusively (and other files' writers and all readers wait).
  void CacheStoredBlock(uint64_t file, uint64_t index);
  // Pending block (file, index), made pending (under a new name, with the
  // stored contents if `keep_contents`) if it is not yet. REQUIRES mu_
  // exclusive.
  Result<PendingData*> PendingBlockLocked(uint64_t file, uint64_t index,
                                          bool keep_contents);
  // Where a block leaves the pending state once stored: the cache, unless
  // its bytes all came from writes (drop-behind, docs/performance.md).
  void CacheSealedLocked(const std::string& name, PendingData& block);
  // Seals and stores every pending block, then points its extent entry at
  // the sealed tag. The blocks stay pending (readable) until the commit
  // lands. REQUIRES mu_ exclusive.
  Status UploadPendingLocked();
  // Seals every pending block and points its extent entry at the sealed
  // tag, storing nothing: the puts for a commit's root batch.
  // REQUIRES mu_ exclusive.
  Result<std::vector<std::pair<std::string, std::string>>> SealPendingLocked();
  // Seals `blocks` (recording each tag) and stores them in one batch. Needs
  // no lock as long as nobody writes the plaintexts meanwhile.
  Status SealAndStore(
      std::span<const std::pair<const std::string*, PendingData*>> blocks);
  // Write-behind (volume_upload.cpp). The uploader thread runs UploadOnce
  // while pending data is over options_.write_behind_bytes.
  void UploaderLoop();
  // Moves the least recently written pending blocks, all but `keep_blocks`
  // of them and at most one batch, to uploading_, stores them without
  // holding mu_, then records their tags (or, on failure, makes them pending
  // again). False if there was nothing to do, or on failure.
  bool UploadOnce(size_t keep_blocks);
  // Stores every pending data block the way the uploader does, so that a
  // commit holds mu_ exclusively only for the tree and the root, and readers
  // do not wait for its data. Stops at the first failure, which the commit
  // then meets on its own path. With the commit gate held and no upload
  // running. REQUIRES no mu_ held.
  void UploadBeforeCommit();
  // Waits until no upload is running; with the commit gate held (so no new
  // one starts). REQUIRES no mu_ held.
  void WaitForUploads();
  // Makes blocks still being uploaded pending again under new names (the
  // uploader deletes its copies), for a commit that cannot wait.
  // REQUIRES mu_ exclusive.
  Status ReclaimUploadingLocked();
  void WakeUploaderLocked();
  // The plaintext of block (file, index); nullopt for a hole. `*unsealed`
  // (if given) tells whether it is a pending or uploading block, which
  // writers may change once mu_ is released. REQUIRES mu_ held.
  Result<std::optional<BlockData>> LoadExtentLocked(uint64_t file,
                                                    uint64_t index,
                                                    bool* unsealed = nullptr);
  // The pending or uploading block `name`, or nullptr if it is sealed
  // (stored, or never written). REQUIRES mu_ held.
  const PendingData* UnsealedLocked(const std::string& name) const;
  Result<BlockData> LoadData(const BlockPtr& ptr, uint64_t file, uint64_t index,
                             bool* unsealed = nullptr);
  // Queues read-ahead after a read of block `index` (named `name`) of
  // `file`, if the file is being read sequentially. Returns the names of the
  // blocks such a reader has left a window behind. REQUIRES mu_ held.
  std::vector<std::string> ReadAheadLocked(uint64_t file, uint64_t index,
                                           const std::string& name);
  // Fetches `ptrs` in one Get, verifies and caches them; returns the
  // plaintext of ptrs[0]. Failures of the others (read-ahead) only skip them.
  Result<BlockData> FetchData(const std::vector<BlockPtr>& ptrs);
  // NodeLoader: cache, else one Get verified against ptr.tag.
  Result<std::shared_ptr<const Node>> LoadNode(const BlockPtr& ptr,
                                               uint8_t level) override;
  void TimerLoop();

  const std::shared_ptr<BlockStore> store_;
  const std::unique_ptr<VolumeKeys> keys_;
  const std::unique_ptr<Sealer> sealer_;
  const VolumeOptions options_;
  NodeCache cache_;

  mutable std::shared_mutex mu_;
  BTree tree_;                                  // GUARDED_BY(mu_)
  RootRecord root_;                             // committed; GUARDED_BY(mu_)
  std::string root_sealed_;                     // GUARDED_BY(mu_)
  std::map<std::string, PendingData> pending_;  // by name; GUARDED_BY(mu_)
  uint64_t write_seq_ = 0;                      // GUARDED_BY(mu_)
  // Pending blocks the uploader is storing now (taken out of pending_).
  std::map<std::string, PendingData> uploading_;  // GUARDED_BY(mu_)
  // Blocks the uploader stored since the last commit.
  std::vector<std::string> uploaded_;      // GUARDED_BY(mu_)
  std::vector<std::string> retired_data_;  // GUARDED_BY(mu_)
  uint64_t next_id_;                       // GUARDED_BY(mu_)
  bool dirty_ = false;                     // GUARDED_BY(mu_)
  Status failed_;                          // GUARDED_BY(mu_)
  // The last commit or upload's failure (CheckRoom); Ok once one lands.
  // While set, dirty-limit commits and write-behind wait; fsync and the
  // timer still try (the host may be back, or the quota raised).
  Status stalled_;  // GUARDED_BY(mu_)
  // Data blocks were retired since a refusal for room: the next write or
  // delete commits to see whether the room suffices now.
  bool freed_since_stall_ = false;  // GUARDED_BY(mu_)

  // The commit gate (writer-preferring): Operations and commits exclude each
  // other; a waiting commit blocks new Operations.
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  // Written under gate_mu_; atomic so writes can read it under mu_ alone.
  std::atomic<size_t> active_ops_{0};
  size_t committers_ = 0;  // waiting or running; GUARDED_BY(gate_mu_)
  // A dirty-limit commit skipped for Operations; set under mu_.
  std::atomic<bool> commit_deferred_{false};

  struct ReadCursor {
    uint64_t front = 0;      // the furthest block the stream has read
    uint64_t scheduled = 0;  // read-ahead has been queued up to this block
    bool streaming = false;  // has read two consecutive blocks
    std::deque<std::pair<uint64_t, std::string>> read;  // index, name
  };
  std::mutex readahead_mu_;
  std::unordered_map<uint64_t, ReadCursor> cursors_;  // by file

  std::mutex upload_mu_;
  std::condition_variable upload_cv_;
  bool upload_wanted_ = false;    // GUARDED_BY(upload_mu_)
  bool upload_running_ = false;   // GUARDED_BY(upload_mu_)
  bool upload_stopping_ = false;  // GUARDED_BY(upload_mu_)
  std::thread uploader_;

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;  // GUARDED_BY(timer_mu_)
  std::thread timer_;
  // Last: its workers use the members above until it is destroyed.
  std::unique_ptr<ReadAhead> read_ahead_;
};

// The extent key of (file, index): 0xE0, file u64 BE, index u64 BE.
std::string ExtentKey(uint64_t file, uint64_t index);

}  // namespace enclavefs

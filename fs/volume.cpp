#include "fs/volume.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <iterator>
#include <limits>
#include <unordered_set>
#include <utility>

#include "blockstore/logging.h"
#include "blockstore/protocol.h"
#include "fs/crypto.h"

namespace enclavefs {
namespace {

constexpr uint8_t kExtentPrefix = 0xE0;
constexpr unsigned char kFirstReservedByte = 0x80;
constexpr size_t kScanChunk = 1024;
// Bytes per read-ahead fetch (whole blocks, at least one), and fetches
// running at once: four host Gets in flight keep a fast disk busy while the
// reader decrypts (docs/performance.md, read-ahead depth).
constexpr size_t kReadAheadBatchBytes = 512u << 10;
constexpr size_t kReadAheadWorkers = 4;
constexpr size_t kListPage = 4096;
constexpr size_t kMaxBatchKeys = protocol::kMaxKeysPerRequest;
// Buffered data a commit at the quota sends in its root batch: with the
// tree nodes and up to 65,535 deletes, under the wire's 64 MiB frame.
constexpr size_t kOneBatchDataBytes = 56u << 20;
// Dirty bytes past which a stalled volume takes no more data: writes under
// way when it is reached (up to 1 MiB each) stay under kOneBatchDataBytes.
constexpr size_t kRefusedDirtyBytes = 40u << 20;

std::string Hex(std::string_view bytes) { return HexEncode(AsBytes(bytes)); }

// Logs and returns a Corruption for a block that failed verification.
Status BlockFailure(std::string_view kind, std::string_view name,
                    std::string_view why) {
  spdlog::error("volume: {} block {} {}", kind, Hex(name), why);
  return Status::Corruption(std::string(kind) + " block " + Hex(name) + " " +
                            std::string(why));
}

// The first key after every extent of `file`.
std::string ExtentEnd(uint64_t file) {
  return ExtentKey(file, 0).substr(0, 9) + std::string(9, '\xff');
}

uint64_t ExtentIndex(std::string_view key) {
  uint64_t index = 0;
  for (size_t i = 9; i < 17; ++i)
    index = index << 8 | static_cast<uint8_t>(key[i]);
  return index;
}

bool IsExtentKey(std::string_view key) {
  return !key.empty() && static_cast<uint8_t>(key[0]) == kExtentPrefix;
}

#ifndef NDEBUG
// Volumes this thread holds an Operation on: checks the REQUIRES clauses.
thread_local std::vector<const void*> t_held_ops;
bool HoldsOperation(const void* volume) {
  return std::find(t_held_ops.begin(), t_held_ops.end(), volume) !=
         t_held_ops.end();
}
void NoteOperation(const void* volume, bool held) {
  if (held) {
    t_held_ops.push_back(volume);
  } else if (auto it = std::find(t_held_ops.begin(), t_held_ops.end(), volume);
             it != t_held_ops.end()) {
    t_held_ops.erase(it);
  }
}
#else
void NoteOperation(const void*, bool) {}
#endif

}  // namespace

std::string ExtentKey(uint64_t file, uint64_t index) {
  std::string key(1, static_cast<char>(kExtentPrefix));
  AppendBe64(key, file);
  AppendBe64(key, index);
  return key;
}

Status Volume::Format(BlockStore& store, std::string_view header_bytes,
                      const VolumeKeys& keys) {
  const std::string header_key(protocol::kPublicHeaderKey);
  const std::vector<std::string> probe{header_key, std::string(kRootKey)};
  EFS_ASSIGN_OR_RETURN(GetResult existing, store.Get(probe));
  const Status formatted = Status::AlreadyExists("volume is already formatted");
  if (existing[0] || existing[1]) return formatted;

  auto sealer = keys.NewSealer();
  RootRecord root;
  root.uuid = keys.uuid();
  root.generation = 1;
  root.node_blocks = 1;
  root.tree_root.name = sealer->NewBlockName();
  EFS_ASSIGN_OR_RETURN(
      SealedBlock leaf,
      sealer->Seal(BlockKind::kNode, root.tree_root.name, Node{}.Encode()));
  root.tree_root.tag = leaf.tag;
  EFS_ASSIGN_OR_RETURN(SealedBlock sealed_root,
                       sealer->Seal(BlockKind::kRoot, kRootKey, root.Encode()));
  CommitBatch batch;
  batch.puts = {{header_key, std::string(header_bytes)},
                {root.tree_root.name, std::move(leaf.bytes)},
                {std::string(kRootKey), std::move(sealed_root.bytes)}};
  batch.condition = CommitCondition{std::string(kRootKey), std::nullopt};
  batch.durable = true;
  Status s = store.Commit(batch);
  return s.code() == StatusCode::kConflict ? formatted : s;
}

Result<std::unique_ptr<Volume>> Volume::Open(std::shared_ptr<BlockStore> store,
                                             std::unique_ptr<VolumeKeys> keys,
                                             VolumeOptions options) {
  if (options.dirty_limit_bytes == 0 ||
      options.dirty_limit_bytes > kMaxDirtyLimit) {
    return Status::InvalidArgument("dirty limit must be 1.." +
                                   std::to_string(kMaxDirtyLimit) + " bytes");
  }
  const std::vector<std::string> wanted{std::string(protocol::kPublicHeaderKey),
                                        std::string(kRootKey)};
  EFS_ASSIGN_OR_RETURN(GetResult got, store->Get(wanted));
  if (!got[0] && !got[1]) return Status::NotFound("volume is not formatted");
  if (!got[0]) return BlockFailure("header", wanted[0], "is missing");
  if (!got[1]) return BlockFailure("root", kRootKey, "is missing");

  auto sealer = keys->NewSealer();
  Result<std::string> plain = sealer->Open(BlockKind::kRoot, kRootKey, *got[1]);
  if (!plain.ok())
    return BlockFailure("root", kRootKey, plain.status().message());
  Result<RootRecord> root = RootRecord::Decode(*plain);
  if (!root.ok())
    return BlockFailure("root", kRootKey, root.status().message());
  if (root->uuid != keys->uuid()) {
    return BlockFailure("root", kRootKey, "belongs to another volume");
  }
  const std::string hash = RootHash(*got[1]);
  const uint64_t gen = root->generation;
  if (options.expect_generation && *options.expect_generation != gen) {
    return Status::Corruption("volume generation is " + std::to_string(gen) +
                              ", expected " +
                              std::to_string(*options.expect_generation));
  }
  if (options.anchor) {
    EFS_ASSIGN_OR_RETURN(std::optional<AnchorState> anchored,
                         options.anchor->Load());
    if (anchored && anchored->generation > gen) {
      spdlog::error("volume: rollback detected (root {} < anchor {})", gen,
                    anchored->generation);
      return Status::Corruption(
          "volume was rolled back: host root generation " +
          std::to_string(gen) + " is older than the trusted anchor " +
          std::to_string(anchored->generation));
    }
    if (anchored && anchored->generation == gen &&
        anchored->root_hash != hash) {
      spdlog::error("volume: fork detected at generation {}", gen);
      return Status::Corruption("volume was forked: host root generation " +
                                std::to_string(gen) +
                                " differs from the trusted anchor's root");
    }
    // A root newer than the anchor is a commit whose anchor update was lost.
    if (!anchored || anchored->generation < gen) {
      EFS_RETURN_IF_ERROR(options.anchor->Store(gen, hash));
    }
  }
  std::string root_sealed = std::move(*got[1]);
  return std::unique_ptr<Volume>(
      new Volume(std::move(store), std::move(keys), std::move(sealer),
                 std::move(options), std::move(*root), std::move(root_sealed)));
}

Volume::Volume(std::shared_ptr<BlockStore> store,
               std::unique_ptr<VolumeKeys> keys, std::unique_ptr<Sealer> sealer,
               VolumeOptions options, RootRecord root, std::string root_sealed)
    : store_(std::move(store)),
      keys_(std::move(keys)),
      sealer_(std::move(sealer)),
      options_(std::move(options)),
      cache_(options_.cache_bytes),
      tree_(*this, sealer_->Capacity(BlockKind::kNode), root.tree_root,
            root.tree_height),
      root_(std::move(root)),
      root_sealed_(std::move(root_sealed)),
      next_id_(root_.next_id) {
  if (options_.readahead_bytes > 0) {
    read_ahead_ = std::make_unique<ReadAhead>(
        kReadAheadWorkers,
        [this](const std::vector<BlockPtr>& ptrs) { (void)FetchData(ptrs); });
  }
  if (options_.write_behind_bytes > 0) {
    uploader_ = std::thread([this] {
      NameThisThread("efs-uploader");
      UploaderLoop();
    });
  }
  if (options_.commit_interval.count() > 0) {
    timer_ = std::thread([this] {
      NameThisThread("efs-commit-tmr");
      TimerLoop();
    });
  }
}

Volume::~Volume() {
  {
    std::lock_guard lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  {
    std::lock_guard lock(upload_mu_);
    upload_stopping_ = true;
  }
  upload_cv_.notify_all();
  if (uploader_.joinable()) uploader_.join();
}

void Volume::TimerLoop() {
  std::unique_lock lock(timer_mu_);
  while (!timer_cv_.wait_for(lock, options_.commit_interval,
                             [this] { return stopping_; })) {
    lock.unlock();
    Status s = Commit(false);
    // A refusal for room was said once, when it began (NoteCommitLocked).
    if (!s.ok() && !IsNoRoom(s)) {
      spdlog::warn("volume: timed commit failed: {}", s.ToString());
    }
    lock.lock();
  }
}

Volume::Operation Volume::BeginOperation() {
  assert(!HoldsOperation(this));
  std::unique_lock gate(gate_mu_);
  while (committers_ > 0 || commit_deferred_) {
    if (committers_ == 0 && active_ops_ == 0) {
      // The deferred commit's last Operation ended before it was due.
      gate.unlock();
      RunDeferredCommit();
      gate.lock();
    } else {
      gate_cv_.wait(gate);
    }
  }
  ++active_ops_;
  NoteOperation(this, true);
  return Operation(*this);
}

Volume::Operation::~Operation() { volume_.EndOperation(); }

void Volume::EndOperation() {
  NoteOperation(this, false);
  bool last;
  {
    std::lock_guard gate(gate_mu_);
    last = --active_ops_ == 0;
  }
  if (!last) return;
  gate_cv_.notify_all();
  if (commit_deferred_) RunDeferredCommit();
}

Volume::CommitPass::CommitPass(Volume& volume) : volume_(volume) {
  std::unique_lock gate(volume_.gate_mu_);
  ++volume_.committers_;
  volume_.gate_cv_.wait(gate, [this] { return volume_.active_ops_ == 0; });
}

Volume::CommitPass::~CommitPass() {
  {
    std::lock_guard gate(volume_.gate_mu_);
    --volume_.committers_;
  }
  volume_.gate_cv_.notify_all();
}

void Volume::RunDeferredCommit() {
  // As in Commit; meanwhile new Operations wait for this commit, readers
  // do not.
  Status s = RestoreConnection();
  CommitPass pass(*this);
  if (!commit_deferred_.exchange(false)) return;  // another thread ran it
  if (s.ok()) {
    WaitForUploads();
    {
      std::shared_lock lock(mu_);
      if (!RoomFreedLocked() &&
          DirtyBytesLocked() < options_.dirty_limit_bytes) {
        return;
      }
    }
    UploadBeforeCommit();
    std::unique_lock lock(mu_);
    s = CommitLocked(false);
  }
  if (!s.ok() && !IsNoRoom(s)) {
    spdlog::warn("volume: deferred commit failed: {}", s.ToString());
  }
}

Status Volume::CheckWritable() const { return failed_; }

Status Volume::CheckUserKey(std::string_view key) const {
  if (key.empty() || key.size() > kMaxTreeKeySize) {
    return Status::InvalidArgument("key must be 1.." +
                                   std::to_string(kMaxTreeKeySize) + " bytes");
  }
  if (static_cast<unsigned char>(key[0]) >= kFirstReservedByte) {
    return Status::InvalidArgument(
        "keys starting with 0x80..0xFF are reserved");
  }
  return Status::Ok();
}

uint32_t Volume::block_size() const {
  return static_cast<uint32_t>(sealer_->Capacity(BlockKind::kData));
}

size_t Volume::max_value_size() const {
  return sealer_->Capacity(BlockKind::kNode) / 4;
}

Result<std::optional<std::string>> Volume::Get(std::string_view key) {
  EFS_RETURN_IF_ERROR(CheckUserKey(key));
  std::shared_lock lock(mu_);
  return tree_.Get(key);
}

Status Volume::Put(std::string_view key, std::string_view value) {
  EFS_RETURN_IF_ERROR(CheckUserKey(key));
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  EFS_RETURN_IF_ERROR(tree_.Put(key, value));
  dirty_ = true;
  return MaybeCommitLocked();
}

Status Volume::Delete(std::string_view key) {
  EFS_RETURN_IF_ERROR(CheckUserKey(key));
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  EFS_ASSIGN_OR_RETURN(bool existed, tree_.Delete(key));
  dirty_ = dirty_ || existed;
  return MaybeCommitLocked();
}

Result<std::vector<std::pair<std::string, std::string>>> Volume::Scan(
    std::string_view start, std::string_view end, size_t limit) {
  const std::string user_end(1, static_cast<char>(kFirstReservedByte));
  if (end.empty() || end > user_end) end = user_end;
  std::shared_lock lock(mu_);
  return tree_.Scan(start, end, limit);
}

Result<uint64_t> Volume::NextId() {
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  dirty_ = true;
  return next_id_++;
}

void Volume::Retire(const std::string& name) {
  freed_since_stall_ = true;
  if (auto it = pending_.find(name); it != pending_.end()) {
    const bool stored = it->second.stored;
    pending_.erase(it);
    if (!stored) return;
    uploaded_.push_back(name);  // on the host, like an uploader's block
  } else if (uploading_.erase(name) > 0) {
    return;  // the uploader deletes it once it is stored
  }
  retired_data_.push_back(name);
  cache_.Erase(name);
}

Result<Volume::PendingData*> Volume::PendingBlockLocked(uint64_t file,
                                                        uint64_t index,
                                                        bool keep_contents) {
  const std::string key = ExtentKey(file, index);
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> value, tree_.Get(key));
  std::optional<BlockPtr> old;
  if (value) {
    EFS_ASSIGN_OR_RETURN(old, BlockPtr::Decode(*value));
    if (auto it = pending_.find(old->name); it != pending_.end()) {
      it->second.written = ++write_seq_;
      return &it->second;
    }
  }
  auto plain = std::make_shared<std::string>();
  if (old && keep_contents) {
    EFS_ASSIGN_OR_RETURN(BlockData stored, LoadData(*old, file, index));
    plain->assign(stored.bytes);
  }
  std::string name = sealer_->NewBlockName();
  EFS_RETURN_IF_ERROR(tree_.Put(key, BlockPtr{name, Tag{}}.Encode()));
  if (old) Retire(old->name);
  dirty_ = true;
  const bool from_writes = !(old && keep_contents);
  auto [it, inserted] = pending_.emplace(
      std::move(name),
      PendingData{file, index, plain, Tag{}, ++write_seq_, from_writes});
  assert(inserted);
  return &it->second;
}

void Volume::CacheSealedLocked(const std::string& name, PendingData& block) {
  if (!block.from_writes) {
    std::string_view bytes = *block.plain;
    cache_.PutData(BlockPtr{name, block.tag},
                   BlockData{std::move(block.plain), bytes});
  }
}

Status Volume::WriteData(uint64_t file, uint64_t index,
                         std::string_view bytes) {
  if (bytes.size() > block_size()) {
    return Status::InvalidArgument("data block of " +
                                   std::to_string(bytes.size()) +
                                   " bytes exceeds the block capacity");
  }
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  EFS_ASSIGN_OR_RETURN(PendingData * block,
                       PendingBlockLocked(file, index, false));
  block->plain->assign(bytes);
  block->from_writes = true;
  return MaybeCommitLocked();
}

void Volume::CacheStoredBlock(uint64_t file, uint64_t index) {
  std::shared_lock lock(mu_);
  Result<std::optional<std::string>> value = tree_.Get(ExtentKey(file, index));
  if (!value.ok() || !*value) return;
  Result<BlockPtr> ptr = BlockPtr::Decode(**value);
  if (!ptr.ok() || UnsealedLocked(ptr->name) || cache_.Contains(*ptr)) return;
  (void)LoadData(*ptr, file, index);  // errors resurface under the lock
}

Status Volume::PatchData(uint64_t file, uint64_t index, size_t offset,
                         std::string_view bytes) {
  if (offset > block_size() || bytes.size() > block_size() - offset) {
    return Status::InvalidArgument("write past the end of a data block");
  }
  CacheStoredBlock(file, index);
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  EFS_ASSIGN_OR_RETURN(PendingData * block,
                       PendingBlockLocked(file, index, true));
  std::string* plain = block->plain.get();
  if (plain->size() < offset + bytes.size()) {
    plain->resize(offset + bytes.size(), '\0');
  }
  plain->replace(offset, bytes.size(), bytes);
  return MaybeCommitLocked();
}

Status Volume::DeleteData(uint64_t file, uint64_t first_index) {
  const std::string end = ExtentEnd(file);
  std::string start = ExtentKey(file, first_index);
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CheckWritable());
  while (true) {
    EFS_ASSIGN_OR_RETURN(auto extents, tree_.Scan(start, end, kScanChunk));
    if (extents.empty()) break;
    for (const auto& [key, value] : extents) {
      EFS_ASSIGN_OR_RETURN(BlockPtr ptr, BlockPtr::Decode(value));
      EFS_RETURN_IF_ERROR(tree_.Delete(key).status());
      Retire(ptr.name);
      dirty_ = true;
    }
    start = extents.back().first + '\0';
  }
  return MaybeCommitLocked();
}

Result<std::vector<uint64_t>> Volume::ListData(uint64_t file,
                                               uint64_t first_index,
                                               uint64_t end_index,
                                               size_t limit) {
  std::vector<uint64_t> indices;
  if (end_index <= first_index) return indices;
  std::shared_lock lock(mu_);
  EFS_ASSIGN_OR_RETURN(auto extents,
                       tree_.Scan(ExtentKey(file, first_index),
                                  ExtentKey(file, end_index), limit));
  indices.reserve(extents.size());
  for (const auto& [key, value] : extents) indices.push_back(ExtentIndex(key));
  return indices;
}

Result<std::optional<std::string>> Volume::ReadData(uint64_t file,
                                                    uint64_t index) {
  std::shared_lock lock(mu_);
  EFS_ASSIGN_OR_RETURN(std::optional<BlockData> data,
                       LoadExtentLocked(file, index));
  if (!data) return std::optional<std::string>();
  return std::optional<std::string>(data->bytes);
}

Result<DataSlice> Volume::SliceData(uint64_t file, uint64_t index, size_t lo,
                                    size_t hi) {
  assert(lo <= hi && hi <= block_size());
  std::shared_lock lock(mu_);
  bool unsealed = false;
  EFS_ASSIGN_OR_RETURN(std::optional<BlockData> data,
                       LoadExtentLocked(file, index, &unsealed));
  DataSlice slice;
  size_t bytes_end = lo;
  // A block may store fewer bytes than `lo`: then the range is all zeros.
  if (data && data->bytes.size() > lo) {
    bytes_end = std::min(hi, data->bytes.size());
    slice.bytes = data->bytes.substr(lo, bytes_end - lo);
    slice.owner = std::move(data->owner);
    if (unsealed) {
      auto copy = std::make_shared<const std::string>(slice.bytes);
      slice.bytes = *copy;
      slice.owner = std::move(copy);
    }
  }
  slice.zeros = hi - bytes_end;
  return slice;
}

Result<std::optional<BlockData>> Volume::LoadExtentLocked(uint64_t file,
                                                          uint64_t index,
                                                          bool* unsealed) {
  EFS_ASSIGN_OR_RETURN(std::optional<std::string> value,
                       tree_.Get(ExtentKey(file, index)));
  if (!value) return std::optional<BlockData>();
  EFS_ASSIGN_OR_RETURN(BlockPtr ptr, BlockPtr::Decode(*value));
  EFS_ASSIGN_OR_RETURN(BlockData data, LoadData(ptr, file, index, unsealed));
  return std::optional<BlockData>(std::move(data));
}

const Volume::PendingData* Volume::UnsealedLocked(
    const std::string& name) const {
  if (auto it = pending_.find(name); it != pending_.end()) return &it->second;
  if (auto it = uploading_.find(name); it != uploading_.end()) {
    return &it->second;
  }
  return nullptr;
}

Result<BlockData> Volume::LoadData(const BlockPtr& ptr, uint64_t file,
                                   uint64_t index, bool* unsealed) {
  // Drop-behind: a sequential reader does not come back for the blocks it
  // has left (the kernel's page cache holds those pages), and freeing them
  // lets the next fetches reuse their memory; touching fresh memory costs
  // more than the copy (docs/performance.md).
  for (const std::string& done : ReadAheadLocked(file, index, ptr.name)) {
    cache_.Erase(done);
  }
  if (const PendingData* pending = UnsealedLocked(ptr.name)) {
    if (unsealed) *unsealed = true;
    return BlockData{pending->plain, *pending->plain};
  }
  if (auto cached = cache_.GetData(ptr)) return *cached;
  if (read_ahead_) {
    read_ahead_->WaitFor(ptr.name);
    if (auto cached = cache_.GetData(ptr)) return *cached;
  }
  return FetchData({ptr});
}

std::vector<std::string> Volume::ReadAheadLocked(uint64_t file, uint64_t index,
                                                 const std::string& name) {
  const uint64_t window =
      std::max<uint64_t>(1, options_.readahead_bytes / block_size());
  const size_t batch_blocks =
      std::clamp<size_t>(kReadAheadBatchBytes / block_size(), 1, kMaxBatchKeys);
  if (!read_ahead_ || index >= std::numeric_limits<uint64_t>::max() - window) {
    return {};
  }
  std::vector<std::string> left;
  uint64_t from, to;  // blocks [from, to) to queue
  {
    std::lock_guard lock(readahead_mu_);
    // Forget old files rather than grow without bound.
    if (cursors_.size() > 4096) cursors_.clear();
    auto [it, inserted] = cursors_.try_emplace(file);
    ReadCursor& cursor = it->second;
    // The kernel answers one sequential reader with several concurrent
    // READs, so an established stream's blocks arrive a little out of
    // order: anything within a window of its front still belongs to it.
    const bool next = !inserted && index == cursor.front + 1;
    const bool near = !inserted && cursor.streaming &&
                      index + window >= cursor.front &&
                      index <= cursor.front + window;
    if (!next && !near) {  // random access, or a new stream starts here
      cursor = ReadCursor{index, index, false, {}};
      cursor.read.emplace_back(index, name);
      return {};
    }
    cursor.streaming = true;
    cursor.front = std::max(cursor.front, index);
    cursor.read.emplace_back(index, name);
    while (cursor.read.front().first + window < cursor.front) {
      left.push_back(std::move(cursor.read.front().second));
      cursor.read.pop_front();
    }
    // A reader going round the same few blocks never moves the front: keep
    // the list bounded (the blocks it forgets just stay cached).
    while (cursor.read.size() > 2 * window) cursor.read.pop_front();
    // Top the window up once half of it has been consumed.
    if (cursor.scheduled >= cursor.front + window / 2) return left;
    from = std::max(cursor.scheduled, cursor.front) + 1;
    to = cursor.front + window + 1;
    // Whole batches only: the remainder waits for the next top-up instead
    // of going out as a Get of a block or two.
    if (to - from >= batch_blocks) {
      to = from + (to - from) / batch_blocks * batch_blocks;
    }
    cursor.scheduled = to - 1;
  }
  Result<std::vector<std::pair<std::string, std::string>>> extents =
      tree_.Scan(ExtentKey(file, from), ExtentKey(file, to), window);
  if (!extents.ok()) return left;  // the reader's fetch reports the error
  std::vector<BlockPtr> batch;
  for (const auto& [key, value] : *extents) {
    Result<BlockPtr> next = BlockPtr::Decode(value);
    if (!next.ok()) return left;
    if (UnsealedLocked(next->name) || cache_.Contains(*next)) continue;
    batch.push_back(std::move(*next));
    if (batch.size() == batch_blocks) {
      read_ahead_->Schedule(std::move(batch));
      batch.clear();
    }
  }
  if (!batch.empty()) read_ahead_->Schedule(std::move(batch));
  return left;
}

Result<BlockData> Volume::FetchData(const std::vector<BlockPtr>& ptrs) {
  std::vector<std::string> names;
  names.reserve(ptrs.size());
  for (const auto& ptr : ptrs) names.push_back(ptr.name);
  // Decrypted where the reply landed: no copy of the sealed bytes.
  EFS_ASSIGN_OR_RETURN(SharedGetResult got, store_->GetShared(names));
  BlockData first;
  for (size_t i = 0; i < ptrs.size(); ++i) {
    Status failure;
    if (!got[i]) {
      failure = BlockFailure("data", ptrs[i].name, "is missing");
    } else {
      Result<std::span<char>> plain = sealer_->OpenInPlace(
          BlockKind::kData, ptrs[i].name, got[i]->bytes, &ptrs[i].tag);
      if (plain.ok()) {
        BlockData data{std::move(got[i]->owner),
                       std::string_view(plain->data(), plain->size())};
        cache_.PutData(ptrs[i], data);
        if (i == 0) first = std::move(data);
        continue;
      }
      failure = BlockFailure("data", ptrs[i].name, plain.status().message());
    }
    if (i == 0) return failure;
  }
  return first;
}

Result<std::shared_ptr<const Node>> Volume::LoadNode(const BlockPtr& ptr,
                                                     uint8_t level) {
  std::shared_ptr<const Node> node = cache_.GetNode(ptr);
  if (!node) {
    // Opened and decoded where the reply landed, as FetchData does.
    EFS_ASSIGN_OR_RETURN(
        SharedGetResult got,
        store_->GetShared(std::span<const std::string>(&ptr.name, 1)));
    if (!got[0]) return BlockFailure("node", ptr.name, "is missing");
    Result<std::span<char>> plain = sealer_->OpenInPlace(
        BlockKind::kNode, ptr.name, got[0]->bytes, &ptr.tag);
    if (!plain.ok())
      return BlockFailure("node", ptr.name, plain.status().message());
    Result<Node> decoded =
        Node::Decode(std::string_view(plain->data(), plain->size()));
    if (!decoded.ok()) {
      return BlockFailure("node", ptr.name, decoded.status().message());
    }
    node = std::make_shared<const Node>(std::move(*decoded));
    cache_.PutNode(ptr, node, keys_->node_size());
  }
  if (node->level != level) {
    return BlockFailure("node", ptr.name, "is at the wrong tree level");
  }
  return node;
}

size_t Volume::DirtyBytesLocked() const {
  return (pending_.size() + uploading_.size()) * block_size() +
         tree_.dirty_nodes() * keys_->node_size();
}

size_t Volume::dirty_bytes() const {
  std::shared_lock lock(mu_);
  return DirtyBytesLocked();
}

size_t Volume::StalledDirtyLimit() const {
  return std::min(options_.dirty_limit_bytes, kRefusedDirtyBytes);
}

bool Volume::RoomFreedLocked() const {
  return IsNoRoom(stalled_) && freed_since_stall_;
}

Status Volume::CheckRoom() const {
  std::shared_lock lock(mu_);
  if (stalled_.ok() || DirtyBytesLocked() < StalledDirtyLimit()) {
    return Status::Ok();
  }
  return stalled_;
}

bool Volume::IsNoRoom(const Status& s) {
  return s.code() == StatusCode::kQuotaExceeded ||
         s.code() == StatusCode::kResourceExhausted;
}

void Volume::NoteCommitLocked(const Status& s) {
  if (s.ok()) {
    if (!stalled_.ok()) spdlog::info("volume: commits succeed again");
    stalled_ = Status::Ok();
    return;
  }
  if (!failed_.ok()) return;  // read-only for good, said once already
  if (stalled_.ok()) {
    const size_t mib = StalledDirtyLimit() >> 20;
    if (IsNoRoom(s)) {
      spdlog::warn(
          "volume: the host refused to store more ({}); writes past {} MiB "
          "buffered fail with ENOSPC until a commit fits: delete files, or "
          "raise the volume's quota",
          s.ToString(), mib);
    } else {
      spdlog::warn(
          "volume: commits fail ({}); writes past {} MiB buffered fail until "
          "one succeeds",
          s.ToString(), mib);
    }
  }
  stalled_ = s;
  freed_since_stall_ = false;
}

Status Volume::MaybeCommitLocked() {
  // Stalled: the same commit would fail again, unless the host refused it
  // for room and blocks were freed since; then one is due to see whether it
  // fits now.
  const bool room_freed = RoomFreedLocked();
  if (!stalled_.ok() && !room_freed) return Status::Ok();
  if (options_.write_behind_bytes > 0 &&
      pending_.size() * block_size() > options_.write_behind_bytes) {
    WakeUploaderLocked();
  }
  const size_t dirty = DirtyBytesLocked();
  if (!room_freed && dirty < options_.dirty_limit_bytes) return Status::Ok();
  if (active_ops_ > 0) {
    const size_t headroom =
        std::max(kOperationHeadroom, options_.dirty_limit_bytes / 2);
    if (room_freed || dirty < options_.dirty_limit_bytes + headroom) {
      commit_deferred_ = true;
      return Status::Ok();
    }
    spdlog::warn("volume: {} dirty bytes inside operations, committing now",
                 dirty);
  }
  return CommitLocked(false);
}

Status Volume::RestoreConnection() {
  {
    std::shared_lock lock(mu_);
    if (!dirty_ || !failed_.ok()) return Status::Ok();  // no store call due
  }
  Status s = store_->RestoreConnection();
  if (s.ok()) return s;
  std::unique_lock lock(mu_);
  FailIfFencedLocked(s);
  if (dirty_) NoteCommitLocked(s);
  return failed_.ok() ? s : failed_;
}

Status Volume::Commit(bool durable) {
  assert(!HoldsOperation(this));
  EFS_RETURN_IF_ERROR(RestoreConnection());
  CommitPass pass(*this);
  WaitForUploads();
  UploadBeforeCommit();
  std::unique_lock lock(mu_);
  return CommitLocked(durable);
}

Status Volume::CommitLocked(bool durable) {
  EFS_RETURN_IF_ERROR(failed_);
  if (!dirty_) return Status::Ok();
  Status s = CommitDirtyLocked(durable);
  FailIfFencedLocked(s);
  NoteCommitLocked(s);
  return failed_.ok() ? s : failed_;
}

void Volume::FailIfFencedLocked(const Status& s) {
  if (s.code() != StatusCode::kFenced || !failed_.ok()) return;
  failed_ = Status::Fenced(s.message() + "; the volume is now read-only");
  spdlog::error("volume: {}", failed_.message());
}

Status Volume::CommitDirtyLocked(bool durable) {
  EFS_RETURN_IF_ERROR(ReclaimUploadingLocked());
  EFS_RETURN_IF_ERROR(DeleteRetiredUploadsLocked());
  // At the quota, new blocks stored ahead of the root batch would be judged
  // without the deletes that make room for them: they go in that batch,
  // which the host judges by its net growth.
  const bool one_batch = IsNoRoom(stalled_) &&
                         pending_.size() * block_size() <= kOneBatchDataBytes;
  std::vector<std::pair<std::string, std::string>> data_puts;
  if (one_batch) {
    EFS_ASSIGN_OR_RETURN(data_puts, SealPendingLocked());
  } else {
    EFS_RETURN_IF_ERROR(UploadPendingLocked());
  }
  EFS_ASSIGN_OR_RETURN(FlushedTree flushed, tree_.Flush(*sealer_));
  RootRecord next = root_;
  ++next.generation;
  next.tree_root = flushed.root;
  next.tree_height = flushed.height;
  next.next_id = next_id_;
  next.node_blocks += flushed.puts.size() - tree_.retired().size();
  // A block stored by the uploader and retired since is in both lists.
  next.data_blocks += pending_.size() + uploaded_.size() - retired_data_.size();
  EFS_ASSIGN_OR_RETURN(
      SealedBlock sealed_root,
      sealer_->Seal(BlockKind::kRoot, kRootKey, next.Encode()));

  // New data blocks (above) and nodes go first, in batches under the wire
  // limits: nothing references them until the root below lands, so a crash
  // or error in between leaves only garbage for CollectGarbage. The root's
  // batch carries the compare-and-swap, and when durable its fsync covers
  // the earlier, acknowledged batches too (block_store.h).
  std::vector<std::string> uploaded = uploaded_;
  uploaded.reserve(uploaded.size() + pending_.size() + flushed.puts.size());
  for (const auto& [name, pending] : pending_) uploaded.push_back(name);
  for (const auto& put : flushed.puts) uploaded.push_back(put.first);
  CommitBatch batch;
  batch.puts.emplace_back(std::string(kRootKey), sealed_root.bytes);
  if (one_batch) {
    std::move(data_puts.begin(), data_puts.end(),
              std::back_inserter(batch.puts));
    std::move(flushed.puts.begin(), flushed.puts.end(),
              std::back_inserter(batch.puts));
  } else {
    EFS_RETURN_IF_ERROR(UploadBlocks(flushed.puts));
  }
  // Deletes beyond the per-request key limit go out after the root moved.
  std::vector<std::string> deletes = tree_.retired();
  deletes.insert(deletes.end(), retired_data_.begin(), retired_data_.end());
  const size_t now =
      std::min(kMaxBatchKeys - batch.puts.size(), deletes.size());
  batch.deletes.assign(deletes.begin(), deletes.begin() + now);
  batch.condition = CommitCondition{std::string(kRootKey), root_sealed_};
  batch.durable = durable || options_.anchor != nullptr;

  Status sent = SendBatch(batch, sealed_root.bytes);
  if (sent.code() == StatusCode::kConflict) {
    DeleteBestEffort(std::move(uploaded), "blocks of a refused commit");
    failed_ = Status::Conflict(
        "root record changed under this mount (another writer or a host "
        "rollback); the volume is now read-only");
    spdlog::error("volume: commit of generation {} refused: {}",
                  next.generation, failed_.message());
    return failed_;
  }
  EFS_RETURN_IF_ERROR(sent);

  tree_.MarkClean(
      [this](const BlockPtr& ptr, std::shared_ptr<const Node> node) {
        cache_.PutNode(ptr, std::move(node), keys_->node_size());
      });
  for (auto& [name, pending] : pending_) CacheSealedLocked(name, pending);
  pending_.clear();
  uploaded_.clear();
  retired_data_.clear();
  root_ = next;
  root_sealed_ = std::move(sealed_root.bytes);
  dirty_ = false;
  commit_deferred_ = false;

  deletes.erase(deletes.begin(), deletes.begin() + now);
  DeleteBestEffort(std::move(deletes), "superseded blocks");
  if (options_.anchor) {
    Status anchored =
        options_.anchor->Store(root_.generation, RootHash(root_sealed_));
    if (!anchored.ok()) {
      spdlog::error(
          "volume: generation {} committed but the anchor was not updated: {}",
          root_.generation, anchored.ToString());
      return anchored.WithContext(
          "commit applied but the anchor update failed");
    }
  }
  return Status::Ok();
}

Status Volume::SendBatch(CommitBatch& batch, const std::string& new_root) {
  Status s = store_->Commit(batch);
  if (s.code() != StatusCode::kUnavailable) return s;
  // The outcome is unknown: the host's current root tells which it was.
  const std::string key(kRootKey);
  Result<GetResult> got = store_->Get(std::span<const std::string>(&key, 1));
  if (!got.ok() || !(*got)[0]) return s;
  if (*(*got)[0] == new_root) return Status::Ok();
  if (*(*got)[0] == root_sealed_) return s;
  return Status::Conflict("root record changed during an interrupted commit");
}

Result<GcReport> Volume::CollectGarbage() {
  assert(!HoldsOperation(this));
  CommitPass pass(*this);
  // No upload may store blocks while the host's keys are listed below.
  WaitForUploads();
  std::unique_lock lock(mu_);
  EFS_RETURN_IF_ERROR(CommitLocked(true));
  GcReport report;
  EFS_ASSIGN_OR_RETURN(std::vector<std::string> garbage,
                       ListUnreferencedLocked(report));
  // Guarded by the root: if another writer moved it, nothing is deleted.
  for (size_t i = 0; i < garbage.size(); i += kMaxBatchKeys) {
    CommitBatch batch;
    batch.deletes.assign(
        garbage.begin() + i,
        garbage.begin() + std::min(garbage.size(), i + kMaxBatchKeys));
    batch.condition = CommitCondition{std::string(kRootKey), root_sealed_};
    EFS_RETURN_IF_ERROR(store_->Commit(batch));
    report.deleted_blocks += batch.deletes.size();
  }
  spdlog::info("volume: garbage collection deleted {} of {} blocks",
               report.deleted_blocks, report.scanned_keys);
  return report;
}

Result<std::vector<std::string>> Volume::ListUnreferenced() {
  std::unique_lock lock(mu_);
  GcReport report;
  return ListUnreferencedLocked(report);
}

Result<std::vector<std::string>> Volume::ListUnreferencedLocked(
    GcReport& report) {
  std::unordered_set<std::string> reachable;
  Status walked = tree_.Walk(
      [&](uint8_t, const BlockPtr& ptr) { reachable.insert(ptr.name); },
      [&](const std::string& key, const std::string& value) {
        if (!IsExtentKey(key)) return;
        if (auto ptr = BlockPtr::Decode(value); ptr.ok())
          reachable.insert(ptr->name);
      });
  EFS_RETURN_IF_ERROR(walked);
  report.reachable_blocks = reachable.size();

  std::vector<std::string> garbage;
  std::string after;
  while (true) {
    EFS_ASSIGN_OR_RETURN(KeyPage page, store_->ListKeys(after, kListPage));
    for (auto& key : page.keys) {
      ++report.scanned_keys;
      if (key != protocol::kPublicHeaderKey && key != kRootKey &&
          !reachable.count(key)) {
        garbage.push_back(key);
      }
    }
    if (!page.more || page.keys.empty()) break;
    after = page.keys.back();
  }
  return garbage;
}

uint64_t Volume::generation() const {
  std::shared_lock lock(mu_);
  return root_.generation;
}

std::string Volume::root_hash() const {
  std::shared_lock lock(mu_);
  return RootHash(root_sealed_);
}

}  // namespace enclavefs

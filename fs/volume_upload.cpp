// Volume's uploads: the data and node blocks of a commit, the write-behind
// uploader that stores pending data blocks between commits, and deletes.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <unordered_set>

#include "blockstore/logging.h"
#include "blockstore/protocol.h"
#include "fs/volume.h"

namespace enclavefs {
namespace {

constexpr size_t kMaxBatchKeys = protocol::kMaxKeysPerRequest;
// Bytes per upload batch: well under the wire's frame limit, and large
// enough that the per-request cost vanishes.
constexpr size_t kUploadBatchBytes = 8u << 20;
// Commit-time seal+send workers: one per core of the 2-core target.
constexpr size_t kUploadWorkers = 2;

size_t BlocksPerBatch(size_t block_size) {
  return std::max<size_t>(1, kUploadBatchBytes / block_size);
}

// Runs `worker` on this thread and on up to kUploadWorkers - 1 more, one
// more for each further batch of `blocks`, so that sealing one batch
// overlaps the host storing another. Returns once all have returned.
void RunUploadWorkers(size_t blocks, size_t per_batch,
                      const std::function<void()>& worker) {
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < kUploadWorkers && i * per_batch < blocks; ++i) {
    helpers.emplace_back([&worker] {
      NameThisThread("efs-commit-seal");
      worker();
    });
  }
  worker();
  for (auto& helper : helpers) helper.join();
}

}  // namespace

Status Volume::UploadPendingLocked() {
  std::vector<std::pair<const std::string*, PendingData*>> blocks;
  blocks.reserve(pending_.size());
  for (auto& [name, pending] : pending_) blocks.emplace_back(&name, &pending);
  const size_t per_batch = BlocksPerBatch(block_size());
  std::atomic<size_t> next{0};
  std::mutex failure_mu;
  Status failure;
  auto worker = [&] {
    while (true) {
      const size_t first = next.fetch_add(per_batch);
      if (first >= blocks.size()) return;
      const size_t end = std::min(blocks.size(), first + per_batch);
      Status s = SealAndStore(std::span(blocks).subspan(first, end - first));
      if (!s.ok()) {
        std::lock_guard lock(failure_mu);
        failure = s;
        return;
      }
    }
  };
  RunUploadWorkers(blocks.size(), per_batch, worker);
  EFS_RETURN_IF_ERROR(failure);
  for (const auto& [name, pending] : blocks) {
    EFS_RETURN_IF_ERROR(tree_.Put(ExtentKey(pending->file, pending->index),
                                  BlockPtr{*name, pending->tag}.Encode()));
  }
  return Status::Ok();
}

Result<std::vector<std::pair<std::string, std::string>>>
Volume::SealPendingLocked() {
  std::vector<std::pair<std::string, std::string>> puts;
  puts.reserve(pending_.size());
  for (auto& [name, block] : pending_) {
    EFS_ASSIGN_OR_RETURN(SealedBlock sealed,
                         sealer_->Seal(BlockKind::kData, name, *block.plain));
    block.tag = sealed.tag;
    EFS_RETURN_IF_ERROR(tree_.Put(ExtentKey(block.file, block.index),
                                  BlockPtr{name, block.tag}.Encode()));
    puts.emplace_back(name, std::move(sealed.bytes));
  }
  return puts;
}

Status Volume::SealAndStore(
    std::span<const std::pair<const std::string*, PendingData*>> blocks) {
  CommitBatch batch;
  batch.puts.reserve(blocks.size());
  for (const auto& [name, block] : blocks) {
    EFS_ASSIGN_OR_RETURN(SealedBlock sealed,
                         sealer_->Seal(BlockKind::kData, *name, *block->plain));
    block->tag = sealed.tag;
    batch.puts.emplace_back(*name, std::move(sealed.bytes));
  }
  EFS_RETURN_IF_ERROR(store_->Commit(batch));
  for (const auto& [name, block] : blocks) block->stored = true;
  return Status::Ok();
}

Status Volume::UploadBlocks(
    std::vector<std::pair<std::string, std::string>>& blocks) {
  CommitBatch batch;
  size_t bytes = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    bytes += blocks[i].first.size() + blocks[i].second.size();
    batch.puts.push_back(std::move(blocks[i]));
    const bool last = i + 1 == blocks.size();
    if (last || batch.puts.size() == kMaxBatchKeys ||
        bytes >= kUploadBatchBytes) {
      EFS_RETURN_IF_ERROR(store_->Commit(batch));
      batch.puts.clear();
      bytes = 0;
    }
  }
  return Status::Ok();
}

Status Volume::DeleteRetiredUploadsLocked() {
  if (uploaded_.empty() || retired_data_.empty()) return Status::Ok();
  const std::unordered_set<std::string> retired(retired_data_.begin(),
                                                retired_data_.end());
  std::vector<std::string> unreachable;
  for (const std::string& name : uploaded_) {
    if (retired.contains(name)) unreachable.push_back(name);
  }
  size_t deleted = 0;
  EFS_RETURN_IF_ERROR(DeleteBlocks(unreachable, deleted));
  const std::unordered_set<std::string> gone(unreachable.begin(),
                                             unreachable.end());
  std::erase_if(uploaded_, [&](const auto& n) { return gone.contains(n); });
  std::erase_if(retired_data_, [&](const auto& n) { return gone.contains(n); });
  return Status::Ok();
}

Status Volume::DeleteBlocks(std::span<const std::string> names,
                            size_t& deleted) {
  for (deleted = 0; deleted < names.size();) {
    CommitBatch batch;
    const auto chunk =
        names.subspan(deleted, std::min(names.size() - deleted, kMaxBatchKeys));
    batch.deletes.assign(chunk.begin(), chunk.end());
    EFS_RETURN_IF_ERROR(store_->Commit(batch));
    deleted += chunk.size();
  }
  return Status::Ok();
}

void Volume::DeleteBestEffort(std::vector<std::string> names,
                              std::string_view what) {
  size_t deleted = 0;
  Status s = DeleteBlocks(names, deleted);
  if (!s.ok()) {
    spdlog::warn("volume: {} {} left for garbage collection: {}",
                 names.size() - deleted, what, s.ToString());
  }
}

void Volume::WakeUploaderLocked() {
  {
    std::lock_guard lock(upload_mu_);
    upload_wanted_ = true;
  }
  upload_cv_.notify_one();
}

void Volume::UploaderLoop() {
  std::unique_lock lock(upload_mu_);
  while (true) {
    upload_cv_.wait(lock,
                    [this] { return upload_stopping_ || upload_wanted_; });
    if (upload_stopping_) return;
    upload_wanted_ = false;
    upload_running_ = true;
    lock.unlock();
    bool more = true;
    while (more) {
      // A waiting commit goes first; it takes the pending blocks itself.
      {
        std::lock_guard gate(gate_mu_);
        if (committers_ > 0) break;
      }
      more = UploadOnce(options_.write_behind_bytes / 2 / block_size());
    }
    lock.lock();
    upload_running_ = false;
    upload_cv_.notify_all();
  }
}

void Volume::WaitForUploads() {
  std::unique_lock lock(upload_mu_);
  upload_cv_.wait(lock, [this] { return !upload_running_; });
}

void Volume::UploadBeforeCommit() {
  size_t pending;
  {
    std::shared_lock lock(mu_);
    pending = pending_.size();
  }
  RunUploadWorkers(pending, BlocksPerBatch(block_size()), [this] {
    while (UploadOnce(0)) {
    }
  });
}

bool Volume::UploadOnce(size_t keep_blocks) {
  std::vector<std::pair<std::string, PendingData>> batch;
  {
    std::unique_lock lock(mu_);
    // While commits fail, the next commit sends what it can.
    if (!failed_.ok() || !stalled_.ok() || pending_.size() <= keep_blocks) {
      return false;
    }
    std::vector<std::map<std::string, PendingData>::iterator> oldest;
    oldest.reserve(pending_.size());
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      oldest.push_back(it);
    }
    const size_t take = std::min({pending_.size() - keep_blocks, oldest.size(),
                                  BlocksPerBatch(block_size())});
    std::nth_element(oldest.begin(), oldest.begin() + (take - 1), oldest.end(),
                     [](const auto& a, const auto& b) {
                       return a->second.written < b->second.written;
                     });
    for (size_t i = 0; i < take; ++i) {
      auto node = pending_.extract(oldest[i]);
      batch.emplace_back(node.key(), node.mapped());  // shares the plaintext
      uploading_.insert(std::move(node));
    }
  }
  // The plaintexts are not written while uploading (writers copy them to a
  // new pending block), so they are sealed without the lock.
  std::vector<std::pair<const std::string*, PendingData*>> refs;
  refs.reserve(batch.size());
  for (auto& [name, block] : batch) refs.emplace_back(&name, &block);
  const Status stored = SealAndStore(refs);
  std::vector<std::string> superseded;
  {
    std::unique_lock lock(mu_);
    FailIfFencedLocked(stored);
    if (!stored.ok()) NoteCommitLocked(stored);
    for (auto& [name, block] : batch) {
      auto node = uploading_.extract(name);
      if (node.empty()) {
        superseded.push_back(name);  // retired or reclaimed meanwhile
      } else if (!stored.ok()) {
        pending_.insert(std::move(node));  // the next commit sends it
      } else {
        const BlockPtr ptr{name, block.tag};
        Status indexed =
            tree_.Put(ExtentKey(block.file, block.index), ptr.Encode());
        if (!indexed.ok()) {
          pending_.insert(std::move(node));
          continue;
        }
        CacheSealedLocked(name, block);
        uploaded_.push_back(name);
      }
    }
  }
  if (!stored.ok()) return false;  // NoteCommitLocked said why
  if (!superseded.empty()) {
    DeleteBestEffort(std::move(superseded),
                     "blocks superseded while uploading");
  }
  return true;
}

Status Volume::ReclaimUploadingLocked() {
  while (!uploading_.empty()) {
    auto node = uploading_.extract(uploading_.begin());
    PendingData& block = node.mapped();
    std::string name = sealer_->NewBlockName();
    EFS_RETURN_IF_ERROR(tree_.Put(ExtentKey(block.file, block.index),
                                  BlockPtr{name, Tag{}}.Encode()));
    pending_.emplace(std::move(name),
                     PendingData{block.file, block.index,
                                 std::make_shared<std::string>(*block.plain),
                                 Tag{}, block.written, block.from_writes});
  }
  return Status::Ok();
}

}  // namespace enclavefs
